// Decoder fine-tuning (issue 16): data formats and their errors, which tokens are targets, truncation,
// and training the tiny random Llama of the model fixtures: the loss falls, a resumed run equals an
// uninterrupted one bit for bit, exports load back; LoRA on SmolLM2 trains over a base kept in its GGUF
// blocks and writes PEFT's adapter folder beside the merged model.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import BonsaiTraining
import Foundation
import XCTest

/// The model fixtures (Tests/BonsaiModelsTests/Fixtures), read in place.
func modelFixture(_ name: String) -> URL {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("BonsaiModelsTests/Fixtures/\(name)")
}

final class LanguageModelTests: XCTestCase {
  func write(_ lines: [String], _ name: String, in folder: URL) throws -> String {
    let url = folder.appendingPathComponent(name)
    try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
    return url.path
  }

  /// 60 prompt -> completion pairs: "w1 and w2 ->" continues " w2 w1".
  func writeSwaps(in folder: URL) throws -> String {
    let words = ["red", "blue", "green", "cat", "dog", "tree", "sun", "moon"]
    let lines = (0..<60).map { i -> String in
      let (a, b) = (words[i % 8], words[(i * 3 + 1) % 8])
      return #"{"prompt": "\#(a) and \#(b) ->", "completion": " \#(b) \#(a)"}"#
    }
    return try write(lines, "swaps.jsonl", in: folder)
  }

  func testFormatsAndBadInputNameFileLineAndField() throws {
    let tmp = try makeTemporaryFolder("lmdata")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let text = try LanguageDataset.load(path: write([#"{"text": "one"}"#, "", #"{"text": "two"}"#], "t.jsonl", in: tmp))
    XCTAssertEqual(text.examples, [.text("one"), .text("two")]); XCTAssertEqual(text.lines, [1, 3]); XCTAssertEqual(text.format, "text")
    let pc = try LanguageDataset.load(path: write(["q,a", "\"hi, there\",yes"], "pc.csv", in: tmp), columns: LanguageColumns(prompt: "q", completion: "a"))
    XCTAssertEqual(pc.examples, [.completion(prompt: "hi, there", completion: "yes")])
    let chat = try LanguageDataset.load(path: write([#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}"#], "c.jsonl", in: tmp))
    XCTAssertEqual(chat.examples, [.chat([Turn(role: "system", content: "s"), Turn(role: "user", content: "u"), Turn(role: "assistant", content: "a")])])

    func message(_ lines: [String], _ columns: LanguageColumns = LanguageColumns()) throws -> String {
      let path = try write(lines, "bad.jsonl", in: tmp)
      do { _ = try LanguageDataset.load(path: path, columns: columns) } catch { return error.localizedDescription }
      XCTFail("accepted \(lines)"); return ""
    }
    let path = tmp.appendingPathComponent("bad.jsonl").path
    XCTAssertEqual(try message([#"{"prompt": "p", "completion": "c"}"#, #"{"prompt": "p"}"#]),
                   "\(path): line 2: no field 'completion' (the file's first example has it)")
    XCTAssertEqual(try message([#"{"prompt": "p", "completion": "  "}"#]), "\(path): line 1: field 'completion' is empty: nothing to learn from")
    XCTAssertEqual(try message([#"{"body": "p"}"#]), "\(path): line 1: no field 'text', 'prompt' + 'completion' or 'messages' (fields: body)")
    XCTAssertTrue(try message([#"{"messages": [{"role": "bot", "content": "x"}]}"#]).hasSuffix("line 1: messages: message 0 has unknown role 'bot' (system, user, assistant)"))
    XCTAssertTrue(try message([#"{"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}"#])
      .contains("line 1: messages: message 1 is 'user' where 'assistant' should come"))
    XCTAssertTrue(try message([#"{"messages": [{"role": "user", "content": "x"}]}"#]).contains("must end with the assistant's turn"))
    XCTAssertTrue(try message(["{\"text\": 3}"]).hasSuffix("line 1: field 'text' is not a string"))
  }

  func testTargetsAreTheCompletionAndLongPromptsLoseTheirMiddle() throws {
    let tokenizer = try DecoderCheckpoint.tokenizer(modelFixture("tiny-llama"))
    let eos = try XCTUnwrap(tokenizer.eosId)
    let example = LanguageExample.completion(prompt: "the cat sat on", completion: " the mat")
    let p = tokenizer.encode("the cat sat on", addSpecialTokens: false), c = tokenizer.encode(" the mat", addSpecialTokens: false)
    let bos = tokenizer.addsBOS ? [tokenizer.bosId!] : []
    let e = try LanguageEncoder(tokenizer: tokenizer, template: nil, maxLength: 64, trainOnAll: false).encode(example, path: "d", line: 1)
    XCTAssertEqual(e.ids, bos + p + c + [eos])
    XCTAssertEqual(e.targets, [Bool](repeating: false, count: bos.count + p.count) + [Bool](repeating: true, count: c.count + 1))
    XCTAssertEqual(e.promptLength, bos.count + p.count)
    let all = try LanguageEncoder(tokenizer: tokenizer, template: nil, maxLength: 64, trainOnAll: true).encode(example, path: "d", line: 1)
    XCTAssertEqual(all.targets, [false] + [Bool](repeating: true, count: e.ids.count - 1))

    // a long prompt keeps its start and its last tokens; the completion stays whole
    let long = LanguageExample.completion(prompt: (0..<200).map { "w\($0)" }.joined(separator: " ") + " ->", completion: " the mat")
    let full = tokenizer.encode((0..<200).map { "w\($0)" }.joined(separator: " ") + " ->", addSpecialTokens: false)
    let cut = try LanguageEncoder(tokenizer: tokenizer, template: nil, maxLength: 48, trainOnAll: false).encode(long, path: "d", line: 7)
    XCTAssertTrue(cut.truncated); XCTAssertEqual(cut.ids.count, 48)
    XCTAssertEqual(Array(cut.ids.suffix(c.count + 1)), c + [eos])
    let keep = 48 - c.count - 1, tail = min(LanguageEncoder.keptTail, keep / 2)
    XCTAssertEqual(Array(cut.ids.prefix(keep)), bos + Array(full.prefix(keep - tail - bos.count)) + Array(full.suffix(tail)))
    XCTAssertEqual(cut.targets.filter { $0 }.count, c.count + 1)
    XCTAssertThrowsError(try LanguageEncoder(tokenizer: tokenizer, template: nil, maxLength: 3, trainOnAll: false).encode(example, path: "d.jsonl", line: 7)) {
      XCTAssertEqual($0.localizedDescription, "d.jsonl: line 7: the completion takes \(c.count + 1) tokens, more than --max-length 3 leaves after one prompt token; raise --max-length or shorten it")
    }
  }

  func testChatTargetsAreTheAssistantTurns() throws {
    let tokenizer = try DecoderCheckpoint.tokenizer(modelFixture("tiny-qwen2"))
    let chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
      + "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    let template = try ChatTemplate(chatML, source: "test")
    let turns = [Turn(role: "user", content: "hi"), Turn(role: "assistant", content: "hello there"),
                 Turn(role: "user", content: "and?"), Turn(role: "assistant", content: "bye")]
    let e = try LanguageEncoder(tokenizer: tokenizer, template: template, maxLength: 128, trainOnAll: false).encode(.chat(turns), path: "c", line: 1)
    let rendered = template.render(turns.map { ChatMessage(role: $0.role, content: $0.content) }, addGenerationPrompt: false)
    XCTAssertEqual(tokenizer.decode(e.ids), String(rendered.dropLast()), "the conversation, without the newline after the last <|im_end|>")
    // the targets, read as runs of consecutive tokens, are exactly the assistant turns with their end token
    var runs: [String] = [], run: [Int] = []
    for (id, t) in zip(e.ids, e.targets) { if t { run.append(id) } else if !run.isEmpty { runs.append(tokenizer.decode(run)); run = [] } }
    if !run.isEmpty { runs.append(tokenizer.decode(run)) }
    XCTAssertEqual(runs, ["hello there<|im_end|>", "bye<|im_end|>"])
    XCTAssertEqual(tokenizer.decode(Array(e.ids.prefix(e.promptLength))),
                   template.render(turns.dropLast().map { ChatMessage(role: $0.role, content: $0.content) }, addGenerationPrompt: true))
    XCTAssertEqual(e.reference, "bye")
    // a last assistant turn that cannot fit: the chat ends at the one before
    let long = turns + [Turn(role: "user", content: "more"), Turn(role: "assistant", content: String(repeating: "word ", count: 300))]
    let cut = try LanguageEncoder(tokenizer: tokenizer, template: template, maxLength: e.ids.count + 4, trainOnAll: false).encode(.chat(long), path: "c", line: 2)
    XCTAssertTrue(cut.truncated); XCTAssertEqual(cut.ids, e.ids); XCTAssertEqual(cut.targets, e.targets); XCTAssertEqual(cut.reference, "bye")
    // a first assistant turn that cannot fit: trained on its start, after its context (cut to at most half the length)
    let reply = String(repeating: "word ", count: 300)
    let encoder32 = try LanguageEncoder(tokenizer: tokenizer, template: template, maxLength: 32, trainOnAll: false)
    let single = try LanguageEncoder(tokenizer: tokenizer, template: template, maxLength: 64, trainOnAll: false)
      .encode(.chat([Turn(role: "user", content: "hi"), Turn(role: "assistant", content: reply)]), path: "c.jsonl", line: 3)
    let context = template.render([ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true)
    XCTAssertTrue(single.cutTurn); XCTAssertEqual(single.ids.count, 64); XCTAssertEqual(single.reference, reply)
    XCTAssertEqual(tokenizer.decode(Array(single.ids.prefix(single.promptLength))), context)  // the whole context: under half
    XCTAssertEqual(single.targets, (0..<64).map { $0 >= single.promptLength })
    XCTAssertTrue(reply.hasPrefix(tokenizer.decode(Array(single.ids.suffix(from: single.promptLength)))))
    let wordy = try encoder32.encode(.chat([Turn(role: "user", content: reply), Turn(role: "assistant", content: reply)]), path: "c.jsonl", line: 4)
    XCTAssertTrue(wordy.cutTurn); XCTAssertEqual(wordy.ids.count, 32); XCTAssertEqual(wordy.promptLength, 16)
    XCTAssertEqual(wordy.targets.filter { $0 }.count, 16)
  }

  func testRougeMatchesRougeScore() throws {
    // made by scripts/make-golden-rouge.py with rouge-score 0.1.2 (use_stemmer=True)
    struct Case: Decodable { let prediction: String; let reference: String; let rouge1: Double; let rouge2: Double; let rougeL: Double }
    struct Golden: Decodable { let stems: [String: String]; let cases: [Case] }
    let url = try XCTUnwrap(Bundle.module.url(forResource: "rouge-golden", withExtension: "json", subdirectory: "Fixtures"))
    let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    for (word, stem) in g.stems { XCTAssertEqual(PorterStemmer.stem(word), stem, word) }
    for c in g.cases {
      let s = Rouge.scores(prediction: c.prediction, reference: c.reference)
      XCTAssertEqual(s.rouge1, c.rouge1, accuracy: 1e-12, c.prediction); XCTAssertEqual(s.rouge2, c.rouge2, accuracy: 1e-12, c.prediction)
      XCTAssertEqual(s.rougeL, c.rougeL, accuracy: 1e-12, c.prediction)
    }
    XCTAssertGreaterThan(g.stems.count, 100); XCTAssertGreaterThan(g.cases.count, 10)
  }

  func config(_ data: String, model: URL) -> TrainConfig {
    var c = TrainConfig(model: model.path, data: data)
    c.task = "causal-lm"; c.metric = "loss"; c.epochs = 3; c.batchSize = 8; c.learningRate = 2e-3; c.maxLength = 32; c.threads = 2
    c.evalEvery = 3; c.generationTokens = 4
    return c
  }

  /// Trains `c` in `runDir`, killed after `step` (as kill -9 would leave it), then resumed to the end.
  func stopAndResume(_ c: TrainConfig, model: URL, in runDir: URL, afterStep step: Int) throws {
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "\(step)", 1)
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: model, runDir: runDir).run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    try Trainer(config: c, modelFolder: model, runDir: runDir).run(resume: true)
  }

  func file(_ url: URL, _ path: String) throws -> Data { try Data(contentsOf: url.appendingPathComponent(path)) }

  func stepLosses(_ run: URL) throws -> [Double] {
    try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.compactMap { $0["loss"] as? Double }
  }

  func testFullFineTuningLearnsResumesExactlyAndExports() throws {
    let tmp = try makeTemporaryFolder("lmrun")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let model = modelFixture("tiny-llama")
    var c = config(try writeSwaps(in: tmp), model: model)
    c.maxGradNorm = 0  // no clipping: each tensor is updated during the backward pass (the LoRA test clips)
    let whole = tmp.appendingPathComponent("whole"), cut = tmp.appendingPathComponent("cut")
    let summary = try Trainer(config: c, modelFolder: model, runDir: whole).run(resume: false)
    let losses = try stepLosses(whole)
    XCTAssertEqual(losses.count, 18, "42 training examples in batches of 8, 3 epochs")
    XCTAssertLessThan(losses.suffix(3).reduce(0, +) / 3, 0.8 * losses.prefix(3).reduce(0, +) / 3, "the loss falls: \(losses)")
    let test = try XCTUnwrap(summary["test"] as? [String: Any])
    XCTAssertNotNil(test["rougeL"] as? Double); XCTAssertNotNil(test["perplexity"] as? Double)
    XCTAssertEqual(summary["format"] as? String, "completion")

    try stopAndResume(c, model: model, in: cut, afterStep: 7)
    XCTAssertEqual(try file(cut, "final/model.safetensors"), try file(whole, "final/model.safetensors"), "resumed = uninterrupted, bit for bit")
    XCTAssertEqual(try metricsWithoutTimes(cut), try metricsWithoutTimes(whole))
    // recomputing each layer (or the cheap ops between its products) in the backward pass changes nothing but memory
    for (policy, wholeLayers) in [(CheckpointPolicy.input, 0), (.products, 0), (.products, 1)] {
      var checkpointing = c
      checkpointing.gradientCheckpointing = policy; checkpointing.wholeRecomputedLayers = wholeLayers
      let recomputed = tmp.appendingPathComponent("recomputed-\(policy)-\(wholeLayers)")
      try Trainer(config: checkpointing, modelFolder: model, runDir: recomputed).run(resume: false)
      XCTAssertEqual(try file(recomputed, "final/model.safetensors"), try file(whole, "final/model.safetensors"), "checkpointing \(policy): the same weights")
    }

    // the export is a Hugging Face folder that reads back to the trained model, and it moved from the base
    let (trained, tokenizer) = try DecoderCheckpoint.load(whole.appendingPathComponent("final"))
    let (base, _) = try DecoderCheckpoint.load(model)
    let x = TokenBatch(batch: 1, tokens: 4, ids: tokenizer.encode("red and cat ->", addSpecialTokens: false).prefix(4).map { $0 })
    XCTAssertNotEqual(withoutGrad { trained(x) }.scalars, withoutGrad { base(x) }.scalars)
    XCTAssertTrue(FileManager.default.fileExists(atPath: whole.appendingPathComponent("best/config.json").path))
  }

  func testRunFoldersBeforeTheCheckpointingPoliciesStillResume() throws {
    func decoded(_ value: Any) throws -> CheckpointPolicy? {
      var json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(TrainConfig(model: "m", data: "d"))) as? [String: Any])
      json["gradient_checkpointing"] = value
      return try JSONDecoder().decode(TrainConfig.self, from: JSONSerialization.data(withJSONObject: json)).gradientCheckpointing
    }
    XCTAssertEqual(try decoded(true), .input); XCTAssertNil(try decoded(false))
    XCTAssertEqual(try decoded("products"), .products)
    var c = TrainConfig(model: "m", data: "d")
    c.gradientCheckpointing = .products
    XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: JSONEncoder().encode(c)), c)
  }

  /// `--method head` trains the LM head alone: lm_head.weight when it has its own (tiny-llama), the embedding it
  /// shares when tied (tiny-qwen2); every other tensor of the export is the base's, bit for bit.
  func testHeadMethodTrainsOnlyTheLMHeadOrTheEmbeddingItIsTiedTo() throws {
    let tmp = try makeTemporaryFolder("lmhead")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let data = try writeSwaps(in: tmp)
    for (fixture, head) in [("tiny-llama", "lm_head.weight"), ("tiny-qwen2", "model.embed_tokens.weight")] {
      let model = modelFixture(fixture)
      var c = config(data, model: model)
      c.method = "head"; c.evalEvery = 0; c.learningRate = 1e-2
      let run = tmp.appendingPathComponent(fixture)
      let summary = try Trainer(config: c, modelFolder: model, runDir: run).run(resume: false)
      let losses = try stepLosses(run)
      XCTAssertLessThan(losses.suffix(3).reduce(0, +), losses.prefix(3).reduce(0, +), "\(fixture): \(losses)")
      let base = try SafeTensorsFile(path: model.appendingPathComponent("model.safetensors").path)
      let trained = try SafeTensorsFile(path: run.appendingPathComponent("final/model.safetensors").path)
      XCTAssertEqual(Set(trained.keys), Set(base.keys), fixture)
      for key in base.keys {
        let same = try trained.tensor(key).scalars == base.tensor(key).scalars
        XCTAssertEqual(same, key != head, "\(fixture): \(key) \(same ? "unchanged" : "changed")")
      }
      let trainable = try XCTUnwrap(summary["trainable_parameters"] as? Int)
      XCTAssertEqual(trainable, try base.tensor(head).count, fixture)
    }
  }

  func testLoRAWritesPEFTAdaptersAndTrainsOverAQuantisedBase() throws {
    let tmp = try makeTemporaryFolder("lmlora")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let data = try writeSwaps(in: tmp)
    let gguf = Assets.modelPath("smollm2")  // SmolLM2-135M-Instruct, Q4_1 blocks with a Q8_0 embedding
    for quantized in [true] {  // (LoRA over fp32 weights is the encoders' path, tested there)
      var c = config(data, model: gguf)
      c.method = "lora"; c.lora = LoRAConfig(); c.lora!.rank = 4; c.quantizedBase = quantized; c.learningRate = 3e-3; c.epochs = 2
      c.evalEvery = 0; c.gradientCheckpointing = .products  // each layer's products (packed base, adapters) replayed in the backward pass
      let run = tmp.appendingPathComponent(quantized ? "q" : "f")
      try Trainer(config: c, modelFolder: gguf, runDir: run).run(resume: false)
      let losses = try stepLosses(run)
      XCTAssertLessThan(losses.suffix(3).reduce(0, +), losses.prefix(3).reduce(0, +), "quantized base \(quantized): \(losses)")
      let adapter = try SafeTensorsFile(path: run.appendingPathComponent("final/adapter/adapter_model.safetensors").path)
      XCTAssertTrue(adapter.keys.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), "\(adapter.keys.prefix(4))")
      XCTAssertEqual(adapter.keys.count, 2 * 7 * (try DecoderCheckpoint.load(gguf).0.config.numHiddenLayers))
      let cfg = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("final/adapter/adapter_config.json"))) as? [String: Any])
      XCTAssertEqual(cfg["task_type"] as? String, "CAUSAL_LM"); XCTAssertEqual(cfg["r"] as? Int, 4)
      XCTAssertEqual(cfg["target_modules"] as? [String], ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"])
      // the merged folder scores as the run's own model did on test
      let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("summary.json"))) as? [String: Any])
      XCTAssertLessThan(try XCTUnwrap((summary["test"] as? [String: Any])?["loss"] as? Double), losses[0])
    }
  }

  func testTopKSelfDistillationIsTheFullKLAtKEqualsVAndLessBelow() throws {
    let V = 12, n = 3
    var g = SplitMix(seed: 7)
    func uniform() -> Float { Float(g.next() % 10_000) / 10_000 * 6 - 3 }
    let previous = (0..<n).map { _ in (0..<V).map { _ in uniform() } }, now = (0..<(n * V)).map { _ in uniform() }
    let targets = [1, 5, 9]
    for rule in ["dynamic", "static"] {
      var c = SelfDistillConfig(); c.rule = rule
      let full = previous.enumerated().map { i, z in z.withUnsafeBufferPointer { TokenSelfDistillation.row($0, target: targets[i], k: V, config: c) } }
      let (alpha, temperature) = SelfDistillation.weights(previous: previous, labels: targets, config: c)
      XCTAssertEqual(full.map(\.alpha), alpha); XCTAssertEqual(full.map(\.temperature), temperature)
      let reference = SelfDistillation.loss(current: Tensor(now, shape: [n, V]), previous: previous, alpha: alpha, temperature: temperature).item
      let kept = withoutGrad { TokenSelfDistillation.loss(current: Tensor(now, shape: [n, V]), rows: full) }.item
      XCTAssertEqual(kept, reference, accuracy: 1e-5 * max(1, abs(reference)), "k = V is the full KL (\(rule))")
      var last = kept
      for k in [8, 4, 1] {
        let rows = previous.enumerated().map { i, z in z.withUnsafeBufferPointer { TokenSelfDistillation.row($0, target: targets[i], k: k, config: c) } }
        XCTAssertEqual(rows[0].probabilities.count, k)
        XCTAssertEqual(rows[0].rest + rows[0].probabilities.reduce(0, +), 1, accuracy: 1e-5)
        let v = withoutGrad { TokenSelfDistillation.loss(current: Tensor(now, shape: [n, V]), rows: rows) }.item
        XCTAssertGreaterThanOrEqual(v, -1e-6); XCTAssertLessThanOrEqual(v, last + 1e-5, "coarser buckets lose divergence (k \(k))")
        last = v
      }
    }
  }

  func testTokenSelfDistillationTrainsAndResumesExactly() throws {
    let tmp = try makeTemporaryFolder("lmsd")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let model = modelFixture("tiny-llama")
    var c = config(try writeSwaps(in: tmp), model: model)
    c.selfDistill = SelfDistillConfig(); c.selfDistill!.topK = 8; c.generationTokens = 0
    let whole = tmp.appendingPathComponent("whole"), cut = tmp.appendingPathComponent("cut")
    let summary = try Trainer(config: c, modelFolder: model, runDir: whole).run(resume: false)
    XCTAssertEqual(summary["sd_bytes_per_token"] as? Int, 8 * 8 + 12)
    XCTAssertGreaterThan(summary["sd_peak_kept_tokens"] as? Int ?? 0, 0)
    let lines = try String(contentsOf: whole.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["loss"] != nil }
    XCTAssertGreaterThan(lines.filter { $0["sd_alpha"] != nil }.count, lines.count / 2, "most steps self-distil")
    try stopAndResume(c, model: model, in: cut, afterStep: 5)
    XCTAssertEqual(try file(cut, "final/model.safetensors"), try file(whole, "final/model.safetensors"),
                   "the kept top-k rows survive the checkpoint: resumed = uninterrupted")
  }
}
