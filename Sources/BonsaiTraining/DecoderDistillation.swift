// Knowledge distillation for causal language models: the variants of Shrink and Fine-Tune
// (shared/METHODS.md section 1) at token level, for a student that shares its teacher's vocabulary:
// - logit KD: alpha_kd * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) over the target (completion)
//   tokens. The teacher's distribution of every training token is made once, before training, and kept as
//   its k most likely tokens plus one bucket for the rest of the vocabulary (TokenSelfDistillation's
//   TopKRow with alpha 1 and temperature T: exact probabilities of those k tokens under the full softmax,
//   the tail's mass 1 - sum; the student's bucket is its own mass outside those k tokens), cached in the
//   run folder (teacher_topk.safetensors) so the teacher is not run every step, and read back on resume;
// - hidden-state KD: alpha_hidden * sum_i MSE(h_s[i], h_t[map(i)]) on non-padding tokens, the teacher run
//   on each batch, map = the layers the student was copied from (init_metadata.copied_layers);
// - pseudo-labels: the training completions replaced by the teacher's greedy continuations of their
//   prompts (sequence-level KD), generated once and cached (teacher_generations.jsonl).
// The task loss is weighted by alpha_ce (TrainingRun.taskWeight). Before training the run prints the
// student's dev loss beside the teacher's (the paper's sanity rule: a copied student far behind its
// teacher at initialisation points to a bug).
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation

/// A decoder teacher: its model (GGUF blocks kept: it only runs forward), checked against the student's vocabulary.
final class DecoderTeacher {
  let model: LlamaForCausalLM
  let url: URL

  init(url: URL, studentTokenizer: ByteLevelBPETokenizer) throws {
    let (m, tok) = try DecoderCheckpoint.load(url, keepingBlocks: true)
    let probe = "Distillation check: Héllo, wörld! 123 <|im_start|>"
    guard tok.vocabularySize == studentTokenizer.vocabularySize,
          tok.encode(probe, addSpecialTokens: false) == studentTokenizer.encode(probe, addSpecialTokens: false) else {
      throw DistillError.decoderVocabularyMismatch(teacher: url.path)
    }
    model = m; self.url = url
  }

  /// Hidden states of a student batch (the same token ids), transformers' convention: embedding, each layer's output, the last normed.
  func hiddenStates(_ batch: TokenBatch) -> [Tensor] { withoutGrad { model.forward(batch, stateRows: []).hidden } }

  /// The teacher's compact next-token distribution of every target token of `indices`, by example, in target order.
  func topKRows(_ task: LanguageModelTask, indices: [Int], k: Int, temperature: Float) -> [Int: [TopKRow]] {
    var config = SelfDistillConfig()
    config.rule = "static"; config.alpha = 1; config.temperature = temperature
    let ordered = indices.sorted { task.lengths[$0] > task.lengths[$1] }
    var out: [Int: [TopKRow]] = [:]
    for start in stride(from: 0, to: ordered.count, by: 8) {
      let idx = Array(ordered[start..<min(start + 8, ordered.count)])
      let (inputs, rows, targets, rowExamples) = LanguageModelTask.batch(idx.map { task.data.encodings[$0] }, padId: task.padId)
      guard !rows.isEmpty else { continue }
      let z = withoutGrad { model.forward(inputs, logitRows: rows).logits }, V = z.size(-1)
      for i in rows.indices {
        let row = TokenSelfDistillation.row(UnsafeBufferPointer(start: z.data + i * V, count: V), target: targets[i], k: min(k, V), config: config)
        out[idx[rowExamples[i]], default: []].append(row)
      }
    }
    return out
  }
}

/// alpha_kd * (1/n) sum_i T^2 KL_i against the teacher's cached top-k rows of the batch's target tokens.
final class TokenLogitDistillation: LossTerm {
  let rows: [Int: [TopKRow]]
  let weight: Float

  init(rows: [Int: [TopKRow]], weight: Float) { self.rows = rows; self.weight = weight }

  func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let teacher = output.batch.indices.flatMap { rows[$0] ?? [] }
    guard !teacher.isEmpty else { return nil }
    precondition(teacher.count == output.targets.count, "token KD: \(teacher.count) cached rows for \(output.targets.count) target tokens")
    return TokenSelfDistillation.loss(current: output.logits, rows: teacher).scaled(by: weight)
  }
}

public enum DecoderDistillation {
  /// The loss terms of `d` for a decoder run, after the sanity check (pseudo-labels: `pseudoLabelled`, before the task is made).
  static func make(_ d: DistillConfig, teacher: DecoderTeacher, config: TrainConfig, task: LanguageModelTask, runDir: URL,
                   progress: ProgressSink) throws -> [LossTerm] {
    let dev = task.data.split.dev
    if !dev.isEmpty {
      let s = task.evaluate(task.lm, indices: dev, generate: false).loss ?? .nan, t = task.evaluate(teacher.model, indices: dev, generate: false).loss ?? .nan
      progress.message(String(format: "sanity check: dev loss %.4f for the student at initialisation, %.4f for the teacher (%.1f%% above it)%@", s, t,
                              100 * (s - t) / t, s > 1.5 * t ? "; a copied student this far behind its teacher may point to a bug" : ""))
    }
    var terms: [LossTerm] = []
    if d.alphaKD > 0 {
      let k = d.topK ?? 32
      let rows = try cachedTopK(teacher, task: task, k: k, temperature: d.temperature, runDir: runDir, progress: progress)
      terms.append(TokenLogitDistillation(rows: rows, weight: d.alphaKD))
      task.logitsNeeded = true
    }
    if d.alphaHidden > 0 {
      let map = try d.layerMap(studentFolder: URL(fileURLWithPath: config.model), studentLayers: task.lm.config.numHiddenLayers,
                                teacherLayers: teacher.model.config.numHiddenLayers)
      guard task.lm.config.hiddenSize == teacher.model.config.hiddenSize else {
        throw DistillError.badMap("hidden-state KD needs the teacher's width \(teacher.model.config.hiddenSize), the student has \(task.lm.config.hiddenSize)")
      }
      terms.append(HiddenStateDistillation(teacherStates: teacher.hiddenStates, weight: d.alphaHidden, map: map, normalize: d.normalizeHidden, projection: nil))
    }
    return terms
  }

  /// The teacher's top-k rows of the training tokens: read from the run folder when made before with the same
  /// teacher, k, temperature and tokens; else made now and written there (atomically).
  static func cachedTopK(_ teacher: DecoderTeacher, task: LanguageModelTask, k: Int, temperature: Float, runDir: URL,
                         progress: ProgressSink) throws -> [Int: [TopKRow]] {
    let url = runDir.appendingPathComponent("teacher_topk.safetensors"), train = task.data.split.train.sorted()
    let tokens = train.reduce(0) { $0 + task.data.encodings[$1].targets.dropFirst().filter { $0 }.count }
    let stamp = ["teacher": teacher.url.path, "k": "\(k)", "temperature": "\(temperature)", "tokens": "\(tokens)", "format": "pt"]
    if let file = try? SafeTensorsFile(path: url.path), file.metadata == stamp {
      let rows = try readTopK(file, k: k)
      progress.message("teacher top-\(k) distributions read from \(url.lastPathComponent) (\(rows.values.reduce(0) { $0 + $1.count }) tokens)")
      return rows
    }
    let started = Date()
    let rows = teacher.topKRows(task, indices: train, k: k, temperature: temperature)
    let (tensors, int32s) = TopKRow.entries(rows, k: k)
    try writeSafeTensors(tensors, int32: int32s, to: url.path, metadata: stamp)
    let bytes = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
    progress.message(String(format: "teacher top-%d distributions of %d training tokens cached in %.0f s: %@, %.2f MB (%d bytes a token; the rest of each distribution is one bucket)",
                            k, rows.values.reduce(0) { $0 + $1.count }, Date().timeIntervalSince(started), url.lastPathComponent, Double(bytes) / 1e6, 8 * k + 12))
    return rows
  }

  /// The rows of a cache file written by `cachedTopK`, by example.
  public static func readTopK(_ file: SafeTensorsFile, k: Int) throws -> [Int: [TopKRow]] { try TopKRow.rows(in: file, k: k) }

  /// `data` with each training completion replaced by the teacher's greedy continuation of its prompt (as long as
  /// the longest training completion at most; the EOS kept when the teacher stopped), generated once and kept in
  /// teacher_generations.jsonl in the run folder (read back on resume).
  static func pseudoLabelled(_ data: LanguageModelData, teacher: DecoderTeacher, tokenizer: ByteLevelBPETokenizer, maxLength: Int,
                             runDir: URL, progress: ProgressSink) throws -> LanguageModelData {
    guard data.dataset.format != "text" else { throw TrainingError.unsupported("--pseudo-labels needs prompts to continue (prompt/completion or chat data)") }
    let train = data.split.train.sorted(), enc = data.encodings
    let longest = train.map { enc[$0].ids.count - enc[$0].promptLength }.max() ?? 0
    let url = runDir.appendingPathComponent("teacher_generations.jsonl")
    let stamp = String(decoding: try JSONSerialization.data(withJSONObject: ["teacher": teacher.url.path, "max_new_tokens": longest, "examples": train.count],
                                                            options: .sortedKeys), as: UTF8.self)
    var made: [Int: [Int]] = [:]
    if let text = try? String(contentsOf: url, encoding: .utf8), text.split(separator: "\n").first.map(String.init) == stamp {
      for line in text.split(separator: "\n").dropFirst() {
        let parts = line.split(separator: "\t")
        guard parts.count == 2, let i = Int(parts[0]) else { continue }
        made[i] = parts[1].split(separator: " ").compactMap { Int($0) }
      }
    }
    if made.count != train.count {
      let started = Date()
      var options = GenerationOptions()
      options.maxNewTokens = longest
      let generator = Generator(model: teacher.model, tokenizer: tokenizer), eos = tokenizer.eosId
      let ordered = train.sorted { enc[$0].promptLength > enc[$1].promptLength }
      for start in stride(from: 0, to: ordered.count, by: 8) {
        let at = Array(ordered[start..<min(start + 8, ordered.count)])
        let out = withoutGrad { generator.generate(at.map { Array(enc[$0].ids.prefix(enc[$0].promptLength)) }, options: options) }
        for (i, g) in zip(at, out) { made[i] = g.tokens + (g.finishReason == "stop" ? eos.map { [$0] } ?? [] : []) }
      }
      let lines = [stamp] + train.map { "\($0)\t\(made[$0]!.map(String.init).joined(separator: " "))" }
      try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
      progress.message(String(format: "teacher's greedy continuations of %d training prompts generated in %.0f s (%@)", train.count,
                              Date().timeIntervalSince(started), url.lastPathComponent))
    }
    var encodings = enc
    for i in train {
      let e = enc[i], room = max(0, maxLength - e.promptLength), tokens = Array(made[i]!.prefix(room))
      var p = TargetedEncoding(ids: Array(e.ids.prefix(e.promptLength)) + tokens,
                               targets: [Bool](repeating: false, count: e.promptLength) + [Bool](repeating: true, count: tokens.count),
                               promptLength: e.promptLength, reference: e.reference)
      p.truncated = e.truncated
      encodings[i] = p
    }
    progress.message("training on the teacher's continuations (pseudo-labels) instead of the data's completions")
    return LanguageModelData(dataset: data.dataset, encodings: encodings, split: data.split)
  }

}
