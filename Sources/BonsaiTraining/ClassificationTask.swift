// Sequence classification as a training task: padded batches of token ids, logits from the model's
// classification head, cross-entropy, accuracy / macro-F1 / loss on dev and test, and Hugging Face
// folders (that transformers loads) as exports and as the model part of a checkpoint.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import BonsaiTokenizers
import Foundation

public final class ClassificationTask: TrainingTask, ShardedEvaluation {
  public let classifier: SequenceClassifier
  public let tokenizer: WordPieceTokenizer
  public let data: PreparedData
  /// Where config.json and the tokenizer files of exports come from.
  let modelFolder: URL
  let runDir: URL
  let maxLength: Int
  /// The split of the data file as split.json records it (the training split before any teacher-labelled
  /// texts joined it), so that a resume finds it again.
  let recordedSplit: Split
  public let lengths: [Int]

  public init(classifier: SequenceClassifier, tokenizer: WordPieceTokenizer, data: PreparedData, recordedSplit: Split? = nil,
              modelFolder: URL, runDir: URL, maxLength: Int) {
    self.classifier = classifier; self.tokenizer = tokenizer; self.data = data; self.modelFolder = modelFolder
    self.runDir = runDir; self.maxLength = maxLength; self.recordedSplit = recordedSplit ?? data.split
    lengths = data.encodings.map(\.ids.count)
  }

  public var model: Module { classifier }
  public var trainIndices: [Int] { data.split.train }
  public var devIndices: [Int] { data.split.dev }
  public var testIndices: [Int] { data.split.test }
  public var splitDescription: String {
    "\(data.split.train.count) train / \(data.split.dev.count) dev / \(data.split.test.count) test examples, labels \(data.labels)"
  }
  /// The classifier (`classifier.*`): new for the task, so every plan trains it densely.
  public func isHead(_ key: String) -> Bool { ClassificationTask.isHead(key) }
  static func isHead(_ key: String) -> Bool { key.hasPrefix("classifier") }
  /// The example's line in the data file (stable across runs, de-duplication and resume); nil for an
  /// unlabelled text the teacher labelled (distill --unlabeled), which has no line in it.
  public func exampleID(_ index: Int) -> Int? { index < data.dataset.examples.count ? data.dataset.examples[index].line : nil }

  public func forward(_ batch: SampledBatch, rng: RandomSource?) -> TaskOutput {
    let inputs = TokenBatch(batch.indices.map { data.encodings[$0] }, tokenizer: tokenizer, length: batch.shard?.tokens)
    let hidden = classifier.encoderModel.hiddenStates(inputs, rng: rng)
    let last = hidden.last!.reshaped(to: [inputs.batch, inputs.tokens, classifier.encoderModel.hiddenSize])
    return TaskOutput(batch: batch, inputs: inputs, hiddenStates: hidden, logits: classifier.head(last, batch: inputs, rng: rng),
                      targets: batch.indices.map { data.labelIds[$0] }, rowExamples: batch.indices)
  }

  public func loss(_ output: TaskOutput) -> Tensor { Tensor.crossEntropy(logits: output.logits, labels: output.targets) }

  public func evaluate(_ indices: [Int]) -> Evaluation {
    ClassificationTask.evaluate(classifier, tokenizer: tokenizer, data: data, indices: indices)
  }

  public func evaluate(folder: URL, indices: [Int]) throws -> Evaluation {
    let (model, _, _) = try ModelFolder.loadClassifier(folder, numLabels: data.labels.count)
    return ClassificationTask.evaluate(model, tokenizer: tokenizer, data: data, indices: indices)
  }

  /// Predictions and mean loss of `model` on `indices`, longest first in batches of 64, dropout off.
  public static func evaluate(_ model: SequenceClassifier, tokenizer: WordPieceTokenizer, data: PreparedData, indices: [Int]) -> ClassificationMetrics {
    let (predicted, lossSum) = scores(model, tokenizer: tokenizer, data: data, indices: indices)
    return metrics(data: data, indices: indices, predicted: predicted, lossSum: lossSum)
  }

  static func metrics(data: PreparedData, indices: [Int], predicted: [Int: Int], lossSum: Double) -> ClassificationMetrics {
    ClassificationMetrics(gold: indices.map { data.labelIds[$0] }, predicted: indices.map { predicted[$0]! }, labels: data.labels,
                          loss: indices.isEmpty ? nil : lossSum / Double(indices.count))
  }

  /// A rank's part of a dev evaluation: its summed loss and each example's prediction.
  public func evaluationPart(_ indices: [Int]) -> [UInt8] {
    let (predicted, lossSum) = ClassificationTask.scores(classifier, tokenizer: tokenizer, data: data, indices: indices)
    var w = ByteWriter()
    w.double(lossSum); w.int(predicted.count)
    for (i, p) in predicted.sorted(by: { $0.key < $1.key }) { w.int(i); w.int(p) }
    return w.bytes
  }

  public func evaluation(of indices: [Int], parts: [[UInt8]]) -> Evaluation {
    var predicted: [Int: Int] = [:], lossSum = 0.0
    for part in parts {
      var r = ByteReader(part)
      lossSum += r.double()
      for _ in 0..<r.int() { let i = r.int(); predicted[i] = r.int() }
    }
    return ClassificationTask.metrics(data: data, indices: indices, predicted: predicted, lossSum: lossSum)
  }

  /// The prediction of each of `indices` and the sum of their losses (longest first in batches of 64, dropout off).
  static func scores(_ model: SequenceClassifier, tokenizer: WordPieceTokenizer, data: PreparedData, indices: [Int]) -> (predicted: [Int: Int], lossSum: Double) {
    let ordered = indices.sorted { data.encodings[$0].ids.count > data.encodings[$1].ids.count }
    var predicted: [Int: Int] = [:]
    var lossSum = 0.0
    for start in stride(from: 0, to: ordered.count, by: 64) {
      let idx = Array(ordered[start..<min(start + 64, ordered.count)])
      let batch = TokenBatch(idx.map { data.encodings[$0] }, tokenizer: tokenizer)
      let logits = withoutGrad { model(batch, rng: nil) }
      let loss = withoutGrad { Tensor.crossEntropy(logits: logits, labels: idx.map { data.labelIds[$0] }) }
      lossSum += Double(loss.item) * Double(idx.count)
      let k = data.labels.count, p = logits.scalars
      for (r, i) in idx.enumerated() {
        let row = p[(r * k)..<((r + 1) * k)]
        predicted[i] = row.firstIndex(of: row.max()!)! - r * k
      }
    }
    return (predicted, lossSum)
  }

  /// An ordinary Hugging Face folder (LoRA merged), plus the plan's delta or adapters.
  public func export(to folder: URL, plan: ParameterPlan) throws {
    let metadata = ["labels": String(decoding: try JSONEncoder().encode(data.labels), as: UTF8.self), "max_length": "\(maxLength)"]
    try ModelFolder.save(classifier, labels: data.labels, source: modelFolder, to: folder, overrides: plan.mergedWeights(),
                         extraFiles: try plan.deltaFiles(metadata: metadata), maxLength: maxLength)
  }

  /// A fresh run records its split (a resume checked it against the data in `PreparedData.prepare`).
  public func willStart(_ run: TrainingRun, resumed: Bool) throws {
    if !resumed && run.isWriter { try JSONEncoder.pretty.encode(recordedSplit).write(to: runDir.appendingPathComponent("split.json")) }
  }

  /// The model's part of a checkpoint: a Hugging Face folder (config.json, model.safetensors, tokenizer).
  public func saveState(to checkpoint: CheckpointWriter) throws {
    try ModelFolder.write(classifier, labels: data.labels, source: modelFolder, into: checkpoint.folder, maxLength: maxLength)
  }

  public func restoreState(from checkpoint: CheckpointReader) throws {
    _ = try classifier.load(from: checkpoint.tensors("model"))
  }

  public func summary(_ run: TrainingRun) -> [String: Any] {
    ["labels": data.labels, "parameters": classifier.parameterCount, "train_examples": data.split.train.count,
     "dev_examples": data.split.dev.count, "test_examples": data.split.test.count]
  }
}

extension ClassificationMetrics: Evaluation {
  public func jsonObject() throws -> Any { try BonsaiTraining.jsonObject(self) }
  public func describe(metric: String, value: Double) -> String {
    String(format: "dev %@ %.4f (accuracy %.4f, macro-F1 %.4f)", metric, value, accuracy, macroF1)
  }
}
