// Causal language modelling as a training task: right-padded batches, logits at the target tokens only
// (the completion or the assistant's turns), cross-entropy averaged over them; dev and test loss and
// perplexity, greedy generations scored by ROUGE and exact match; Hugging Face folders (LoRA merged, plus
// PEFT's adapter folder) as exports, and the trained tensors as the model part of a checkpoint.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import BonsaiTokenizers
import Foundation

public final class LanguageModelTask: TrainingTask, ShardedEvaluation {
  public let lm: LlamaForCausalLM
  public let tokenizer: ByteLevelBPETokenizer
  public let data: LanguageModelData
  let runDir: URL
  /// New tokens of the greedy generations scored on dev (when the metric needs them) and test (0: none).
  let generationTokens: Int
  /// Whether dev evaluations generate (the selection metric is a generation metric).
  let devGenerates: Bool
  /// Padding of the first epoch's batches, length-grouped and in random order (made once, in `willStart`).
  var padding: (grouped: Double, random: Double)?
  /// --export-gguf: the matrix type of exports' model.gguf (nil: none).
  let ggufType: String?
  public let lengths: [Int]
  /// Whether the forward pass makes the logits because loss terms read them (token self-distillation);
  /// else the loss is computed from the final states without the logits of every target at once.
  public var logitsNeeded = false

  public init(model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer, data: LanguageModelData, runDir: URL, generationTokens: Int, metric: String,
              ggufType: String? = nil) {
    self.ggufType = ggufType
    lm = model; self.tokenizer = tokenizer; self.data = data; self.runDir = runDir; self.generationTokens = generationTokens
    devGenerates = LanguageEvaluation.generationMetrics.contains(metric)
    lengths = data.encodings.map(\.ids.count)
  }

  public var model: Module { lm }
  public var trainIndices: [Int] { data.split.train }
  public var devIndices: [Int] { data.split.dev }
  public var testIndices: [Int] { data.split.test }
  public var splitDescription: String {
    "\(data.split.train.count) train / \(data.split.dev.count) dev / \(data.split.test.count) test examples (\(data.dataset.format))"
  }
  /// A decoder gets no new head.
  public func isHead(_ key: String) -> Bool { false }
  /// `--method head` trains the LM head; when it is tied to the embedding (SmolLM2) that is the shared matrix,
  /// with the gradient of both its uses, as PyTorch computes it for a tied `lm_head.weight` that requires grad.
  public func isOutputLayer(_ key: String) -> Bool {
    key == "lm_head.weight" || (lm.config.tieWordEmbeddings && key == "model.embed_tokens.weight")
  }

  /// Right-padded ids (padding never reaches a real token under the causal mask) and, per scored row,
  /// the position whose logits predict a target token.
  /// (`length`: pad to it instead of the longest: a rank's share of a global batch.)
  static func batch(_ encodings: [TargetedEncoding], padId: Int, length: Int? = nil) -> (TokenBatch, rows: [Int], targets: [Int], rowExamples: [Int]) {
    let T = length ?? encodings.map(\.ids.count).max() ?? 0
    var ids: [Int] = [], mask: [Int] = [], rows: [Int] = [], targets: [Int] = [], rowExamples: [Int] = []
    for (b, e) in encodings.enumerated() {
      ids += e.ids + [Int](repeating: padId, count: T - e.ids.count)
      mask += [Int](repeating: 1, count: e.ids.count) + [Int](repeating: 0, count: T - e.ids.count)
      for t in 1..<max(e.ids.count, 1) where e.targets[t] { rows.append(b * T + t - 1); targets.append(e.ids[t]); rowExamples.append(b) }
    }
    return (TokenBatch(batch: encodings.count, tokens: T, ids: ids, attentionMask: mask), rows, targets, rowExamples)
  }

  var padId: Int { tokenizer.padId ?? tokenizer.eosId ?? 0 }

  public func forward(_ batch: SampledBatch, rng: RandomSource?) -> TaskOutput {
    let (inputs, rows, targets, rowExamples) = LanguageModelTask.batch(batch.indices.map { data.encodings[$0] }, padId: padId, length: batch.shard?.tokens)
    let (hidden, states) = lm.forward(inputs, stateRows: rows)
    let output = TaskOutput(batch: batch, inputs: inputs, hiddenStates: hidden, headInput: states, logits: { [lm] in lm.logits($0) },
                            targets: targets, rowExamples: rowExamples.map { batch.indices[$0] })
    if logitsNeeded { _ = output.logits }
    return output
  }

  /// Mean cross-entropy over the batch's target tokens: without the logits of every token at once unless
  /// something has made them (the loss terms of `logitsNeeded`).
  public func loss(_ output: TaskOutput) -> Tensor {
    output.hasLogits ? Tensor.crossEntropy(logits: output.logits, labels: output.targets) : lm.loss(states: output.headInput!, labels: output.targets)
  }

  public func evaluate(_ indices: [Int]) -> Evaluation { evaluate(lm, indices: indices, generate: devGenerates) }

  public func evaluate(folder: URL, indices: [Int]) throws -> Evaluation {
    let (model, _) = try DecoderCheckpoint.load(folder)
    return evaluate(model, indices: indices, generate: true)
  }

  /// Token-weighted loss and perplexity of `model` on `indices` (longest first, batches of 8), and with
  /// `generate` greedy continuations of each prompt scored against its completion.
  func evaluate(_ model: LlamaForCausalLM, indices: [Int], generate: Bool) -> LanguageEvaluation {
    let s = scores(model, indices: indices, generate: generate)
    return evaluation(indices: indices, nll: s.nll, tokens: s.tokens, generations: s.generations)
  }

  /// Whether an evaluation with `generate` scores greedy continuations.
  func generates(_ generate: Bool) -> Bool { generate && generationTokens > 0 && data.dataset.format != "text" }

  func evaluation(indices: [Int], nll: Double, tokens: Int, generations: [Int: String]) -> LanguageEvaluation {
    var e = LanguageEvaluation(loss: tokens > 0 ? nll / Double(tokens) : nil, tokens: tokens, examples: indices.count)
    if !generations.isEmpty {
      e.score(predictions: indices.map { generations[$0] ?? "" }, references: indices.map { data.encodings[$0].reference ?? "" })
    }
    return e
  }

  /// A rank's part of a dev evaluation: its summed negative log-likelihood and target tokens, and its generations.
  public func evaluationPart(_ indices: [Int]) -> [UInt8] {
    let s = scores(lm, indices: indices, generate: devGenerates)
    var w = ByteWriter()
    w.double(s.nll); w.int(s.tokens); w.int(s.generations.count)
    for (i, g) in s.generations.sorted(by: { $0.key < $1.key }) { w.int(i); w.string(g) }
    return w.bytes
  }

  public func evaluation(of indices: [Int], parts: [[UInt8]]) -> Evaluation {
    var nll = 0.0, tokens = 0, generations: [Int: String] = [:]
    for part in parts {
      var r = ByteReader(part)
      nll += r.double(); tokens += r.int()
      for _ in 0..<r.int() { let i = r.int(); generations[i] = r.string() }
    }
    return evaluation(indices: indices, nll: nll, tokens: tokens, generations: generations)
  }

  /// Summed negative log-likelihood and count of the target tokens of `indices` (longest first, batches of 8),
  /// and with `generate` each prompt's greedy continuation.
  func scores(_ model: LlamaForCausalLM, indices: [Int], generate: Bool) -> (nll: Double, tokens: Int, generations: [Int: String]) {
    let ordered = indices.sorted { lengths[$0] > lengths[$1] }
    var nll = 0.0, tokens = 0
    for start in stride(from: 0, to: ordered.count, by: 8) {
      let idx = Array(ordered[start..<min(start + 8, ordered.count)])
      let (inputs, rows, targets, _) = LanguageModelTask.batch(idx.map { data.encodings[$0] }, padId: padId)
      guard !rows.isEmpty else { continue }
      let loss = withoutGrad { Tensor.crossEntropy(logits: model.forward(inputs, logitRows: rows).logits, labels: targets) }
      nll += Double(loss.item) * Double(rows.count); tokens += rows.count
    }
    let made = generates(generate) ? Dictionary(uniqueKeysWithValues: zip(indices, generations(model, indices: indices))) : [:]
    return (nll, tokens, made)
  }

  /// `bonsai eval` for a decoder: every example of `dataset` scored (loss, perplexity and, unless
  /// `generationTokens` is 0 or the data is plain text, generation metrics).
  public static func evaluate(_ model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer, dataset: LanguageDataset, maxLength: Int,
                              generationTokens: Int, source: String) throws -> LanguageEvaluation {
    let encoder = try LanguageEncoder(for: dataset, tokenizer: tokenizer, model: source, maxLength: maxLength, trainOnAll: false)
    let encodings = try encoder.encode(dataset)
    let all = Array(dataset.examples.indices)
    let data = LanguageModelData(dataset: dataset, encodings: encodings, split: Split(train: [], dev: [], test: all))
    let task = LanguageModelTask(model: model, tokenizer: tokenizer, data: data, runDir: URL(fileURLWithPath: "."), generationTokens: generationTokens, metric: "loss")
    return task.evaluate(model, indices: all, generate: true)
  }

  /// Greedy continuations (special tokens dropped, trimmed) of the prompts of `indices`, in their order.
  public func generations(_ model: LlamaForCausalLM, indices: [Int]) -> [String] {
    var options = GenerationOptions()
    options.maxNewTokens = generationTokens
    let generator = Generator(model: model, tokenizer: tokenizer)
    let ordered = indices.indices.sorted { data.encodings[indices[$0]].promptLength > data.encodings[indices[$1]].promptLength }
    var out = [String](repeating: "", count: indices.count)
    for start in stride(from: 0, to: ordered.count, by: 8) {
      let at = Array(ordered[start..<min(start + 8, ordered.count)])
      let prompts = at.map { let e = data.encodings[indices[$0]]; return Array(e.ids.prefix(e.promptLength)) }
      let made = withoutGrad { generator.generate(prompts, options: options) }
      for (i, g) in zip(at, made) { out[i] = tokenizer.decode(g.tokens, skipSpecialTokens: true).trimmingCharacters(in: .whitespacesAndNewlines) }
    }
    return out
  }

  /// A Hugging Face folder transformers loads (LoRA merged), with PEFT's adapter folder in adapter/ for LoRA
  /// and model.gguf (the same weights in `ggufType`) when asked.
  public func export(to folder: URL, plan: ParameterPlan) throws {
    var extra: [String: (URL) throws -> Void] = [:]
    if let lora = plan as? LoRAPlan { extra["adapter"] = { try lora.writePEFTAdapter(to: $0, taskType: "CAUSAL_LM") } }
    if let dtype = ggufType {
      extra["model.gguf"] = { try DecoderCheckpoint.saveGGUF(self.lm, tokenizer: self.tokenizer, to: $0.path, dtype: dtype, overrides: plan.mergedWeightMakers()) }
    }
    try DecoderCheckpoint.save(lm, tokenizer: tokenizer, to: folder, overrides: plan.mergedWeightMakers(), extraFiles: extra)
  }

  /// A fresh run records its split; the log says how much padding length-grouping saves.
  public func willStart(_ run: TrainingRun, resumed: Bool) throws {
    if !resumed && run.isWriter { try JSONEncoder.pretty.encode(data.split).write(to: runDir.appendingPathComponent("split.json")) }
    let p = data.paddingFractions(batchSize: run.config.batchSize, seed: run.config.seed)
    padding = p
    run.progress.message(String(format: "batches length-grouped: %.1f%% of their tokens are padding (%.1f%% in random order)", 100 * p.grouped, 100 * p.random))
  }

  /// The model's part of a checkpoint: the tensors the plan trains (frozen ones are the base's, read again on resume).
  public func saveState(to checkpoint: CheckpointWriter) throws {
    try checkpoint.write("model", tensors: lm.namedParameters().filter { $0.tensor.requiresGrad })
  }

  public func restoreState(from checkpoint: CheckpointReader) throws {
    let file = try checkpoint.tensors("model")
    for (key, t) in lm.namedParameters() where t.requiresGrad { try file.read(key, into: t) }
  }

  public func summary(_ run: TrainingRun) -> [String: Any] {
    let p = padding ?? data.paddingFractions(batchSize: run.config.batchSize, seed: run.config.seed)
    return ["parameters": lm.parameterCount, "train_examples": data.split.train.count, "dev_examples": data.split.dev.count,
            "test_examples": data.split.test.count, "format": data.dataset.format, "truncated_examples": data.encodings.filter(\.truncated).count,
            "padding_fraction": p.grouped, "padding_fraction_random_order": p.random]
  }
}

/// Loss and perplexity over target tokens, and generation metrics when scored.
public struct LanguageEvaluation: Evaluation, Codable {
  public var loss: Double?
  public var perplexity: Double? { loss.map { Foundation.exp($0) } }
  public var tokens: Int
  public var examples: Int
  /// ROUGE-1/2/L F-measures (rouge-score with stemming), averaged over examples, in [0, 1].
  public var rouge1: Double?, rouge2: Double?, rougeL: Double?
  /// Fraction of generations equal to their reference (both trimmed).
  public var exactMatch: Double?

  /// Metrics that need generations.
  public static let generationMetrics: Set<String> = ["rouge1", "rouge2", "rougeL", "exact_match"]
  /// Every metric a causal-LM run can select on; loss and perplexity are better lower.
  public static let metrics = ["loss", "perplexity", "rouge1", "rouge2", "rougeL", "exact_match"]

  init(loss: Double?, tokens: Int, examples: Int) { self.loss = loss; self.tokens = tokens; self.examples = examples }

  mutating func score(predictions: [String], references: [String]) {
    guard !references.isEmpty else { return }
    let scores = zip(predictions, references).map { Rouge.scores(prediction: $0, reference: $1) }
    let n = Double(scores.count)
    rouge1 = scores.reduce(0) { $0 + $1.rouge1 } / n
    rouge2 = scores.reduce(0) { $0 + $1.rouge2 } / n
    rougeL = scores.reduce(0) { $0 + $1.rougeL } / n
    exactMatch = Double(zip(predictions, references).filter { $0 == $1.trimmingCharacters(in: .whitespacesAndNewlines) }.count) / n
  }

  public func value(_ metric: String) -> Double? {
    switch metric {
    case "loss": return loss
    case "perplexity": return perplexity
    case "rouge1": return rouge1
    case "rouge2": return rouge2
    case "rougeL": return rougeL
    case "exact_match": return exactMatch
    default: return nil
    }
  }

  public func jsonObject() throws -> Any {
    var o: [String: Any] = ["tokens": tokens, "examples": examples]
    for m in LanguageEvaluation.metrics { if let v = value(m) { o[m] = v } }
    return o
  }

  public func describe(metric: String, value: Double) -> String {
    var s = String(format: "dev %@ %.4f (loss %.4f, perplexity %.3f", metric, value, loss ?? .nan, perplexity ?? .nan)
    if let r = rougeL { s += String(format: ", ROUGE-L %.4f", r) }
    if let x = exactMatch { s += String(format: ", exact match %.4f", x) }
    return s + ")"
  }
}
