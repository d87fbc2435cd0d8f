// Knowledge distillation plugged into a run (Distillation.swift has the losses and the teacher): logit
// KD against the teacher's cached logits and hidden-state KD through a learned projection, as loss
// terms; the teacher's labels (pseudo-labels, unlabelled texts) as a change to the training data made
// before the run starts; the task loss is weighted by alpha_ce (TrainingRun.taskWeight).
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation

/// alpha_kd * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), the teacher's logits cached per example.
final class LogitDistillation: LossTerm {
  let teacher: Teacher
  let weight: Float, temperature: Float

  public init(teacher: Teacher, weight: Float, temperature: Float) {
    self.teacher = teacher; self.weight = weight; self.temperature = temperature
  }

  public func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let rows = output.rowExamples, k = output.logits.size(-1)
    let target = Tensor(rows.flatMap { teacher.logits[$0] }, shape: [rows.count, k])
    return DistillationLoss.logitKD(student: output.logits, teacher: target, temperature: temperature).scaled(by: weight)
  }
}

/// alpha_hidden * sum over mapped layers of MSE(student state, teacher state) on non-padding tokens; a
/// narrower student's states go through a learned projection first, which the plan trains with the
/// student and checkpoints keep (distill_projection.safetensors), but exports leave out.
final class HiddenStateDistillation: LossTerm {
  /// The teacher's hidden states of a student batch (embedding, then each layer's output).
  let teacherStates: (TokenBatch) -> [Tensor]
  let weight: Float, map: [Int], normalize: Bool
  public let projection: HiddenProjection?
  static let prefix = "distill_projection"

  public init(teacherStates: @escaping (TokenBatch) -> [Tensor], weight: Float, map: [Int], normalize: Bool, projection: HiddenProjection?) {
    self.teacherStates = teacherStates; self.weight = weight; self.map = map; self.normalize = normalize; self.projection = projection
  }

  public var parameters: [(key: String, tensor: Tensor)] { projection?.namedParameters(prefix: Self.prefix) ?? [] }

  /// The MSE averages over the batch's real (non-padding) tokens.
  public func lossUnits(_ output: TaskOutput) -> Int { output.inputs.attentionMask.filter { $0 != 0 }.count }

  public func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let tokens = output.inputs.attentionMask.enumerated().filter { $0.element != 0 }.map(\.offset)
    return DistillationLoss.hiddenMSE(student: output.hiddenStates, teacher: teacherStates(output.inputs), map: map, tokens: tokens,
                                      normalize: normalize, projection: projection).scaled(by: weight)
  }

  public func saveState(to checkpoint: CheckpointWriter) throws {
    if projection != nil { try checkpoint.write(Self.prefix, tensors: parameters, metadata: ["format": "pt"]) }
  }

  public func restoreState(from checkpoint: CheckpointReader) throws {
    guard projection != nil else { return }
    let file = try checkpoint.tensors(Self.prefix)
    for (key, t) in parameters { try file.read(key, into: t) }
  }
}

/// Sets a distillation run up: checks the teacher against data and student, caches its logits, relabels
/// the training data where asked and returns the loss terms.
enum DistillationSetup {
  /// Labels of the new head: the teacher's when distilling (checked against the data later), else the data's.
  static func headLabelCount(_ config: TrainConfig, dataset: Dataset, studentFolder: URL) throws -> Int {
    if let d = config.distill, let labels = ModelFolder.labels(try Assets.model(d.teacher)) {
      if let own = ModelFolder.labels(studentFolder), own != labels { throw DistillError.studentLabelMismatch(teacher: labels, student: own) }
      return labels.count
    }
    return dataset.labelNames.count
  }

  static func make(_ d: DistillConfig, config: TrainConfig, student: SequenceClassifier, studentFolder: URL, tokenizer: WordPieceTokenizer,
                   data: inout PreparedData, progress: ProgressSink) throws -> [LossTerm] {
    let teacher = try Teacher(folder: try Assets.model(d.teacher), studentTokenizer: tokenizer)
    let hiddenMap = try teacher.validate(d, dataLabels: data.labels, student: student, studentFolder: studentFolder)
    let ws = student.encoderModel.hiddenSize, wt = teacher.model.encoderModel.hiddenSize
    var projection: HiddenProjection?
    if !hiddenMap.isEmpty && ws != wt {
      projection = HiddenProjection(count: hiddenMap.count, studentWidth: ws, teacherWidth: wt, rng: RandomSource(seed: config.seed &+ 29))
      progress.message("hidden-state KD through a learned \(ws) -> \(wt) projection per layer")
    }
    var examples = data.dataset.examples.map { (text: $0.text, pair: $0.pair) }
    var extra: [String] = []
    if let u = d.unlabeled {
      guard let text = FileManager.default.contents(atPath: u).flatMap({ String(data: $0, encoding: .utf8) }) else {
        throw DataError.unreadable(path: u, reason: "cannot read the unlabelled texts (one UTF-8 text per line)")
      }
      extra = text.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
      examples += extra.map { (text: $0, pair: nil) }
    }
    teacher.cacheLogits(examples, maxLength: config.maxLength, features: d.alignUniform != nil, progress: progress.message)
    if d.pseudoLabels || !extra.isEmpty { data = teacherLabelled(data, teacher: teacher, pseudoLabels: d.pseudoLabels, extra: extra, tokenizer: tokenizer, maxLength: config.maxLength, progress: progress) }
    var terms: [LossTerm] = []
    if d.alphaKD > 0 { terms.append(LogitDistillation(teacher: teacher, weight: d.alphaKD, temperature: d.temperature)) }
    if d.alphaHidden > 0 {
      terms.append(HiddenStateDistillation(teacherStates: teacher.hiddenStates, weight: d.alphaHidden, map: hiddenMap, normalize: d.normalizeHidden, projection: projection))
    }
    if let au = d.alignUniform {
      terms.append(AlignUniformDistillation(teacher: teacher, studentWidth: ws, config: au, rng: RandomSource(seed: config.seed &+ 37)))
      progress.message("alignment/uniformity distillation: sentence vectors through \(ws) -> \(au.dim) and \(wt) -> \(au.dim) projectors")
    }
    return terms
  }

  /// The teacher's argmax as the label of every training example (pseudo-labels) and of each unlabelled
  /// text, which joins the training split.
  static func teacherLabelled(_ data: PreparedData, teacher: Teacher, pseudoLabels: Bool, extra: [String], tokenizer: WordPieceTokenizer,
                              maxLength: Int, progress: ProgressSink) -> PreparedData {
    let argmax = teacher.logits.map { row in row.firstIndex(of: row.max()!)! }
    var ids = data.labelIds, split = data.split, encodings = data.encodings
    if pseudoLabels { for i in split.train { ids[i] = argmax[i] } }
    for (n, text) in extra.enumerated() {
      split.train.append(ids.count)
      ids.append(argmax[data.labelIds.count + n])
      encodings.append(tokenizer.encode(text, maxLength: maxLength))
    }
    progress.message("training on teacher labels\(extra.isEmpty ? "" : " (\(extra.count) unlabelled texts added)")")
    return PreparedData(dataset: data.dataset, labels: data.labels, labelIds: ids, split: split, encodings: encodings)
  }
}
