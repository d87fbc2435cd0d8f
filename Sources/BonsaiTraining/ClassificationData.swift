// A classification run's data: examples, label ids, the train/dev/test split (or FTFT's selected subset
// of its training part) and token ids, made once before training and checked again on resume.
import BonsaiData
import BonsaiModels
import BonsaiTokenizers
import Foundation

/// Everything a run reads: examples, labels, split and token ids.
public struct PreparedData {
  public let dataset: Dataset
  public let labels: [String]
  public let labelIds: [Int]
  public let split: Split
  public let encodings: [Encoding]

  public init(dataset: Dataset, labels: [String], labelIds: [Int], split: Split, encodings: [Encoding]) {
    self.dataset = dataset; self.labels = labels; self.labelIds = labelIds; self.split = split; self.encodings = encodings
  }

  /// Maps labels, makes the split (or, when resuming, checks that the data still gives the saved one in
  /// `runDir`/split.json) and tokenises. `modelFolder`'s labels must match a `trainSubset` selection's.
  public static func prepare(_ loaded: Dataset, tokenizer: WordPieceTokenizer, config: TrainConfig, modelFolder: URL, runDir: URL,
                             resume: Bool, progress: ProgressSink) throws -> PreparedData {
    var dataset = loaded
    if config.deduplicate {
      let dropped = dataset.deduplicate()
      if dropped > 0 { progress.message("dropped \(dropped) duplicate texts") }
    }
    let labels = dataset.labelNames
    let ids = try dataset.labelIds(labels)
    let splitURL = runDir.appendingPathComponent("split.json")
    var split = Split.stratified(labels: dataset.examples.map(\.label), dev: config.devFraction, test: config.testFraction, seed: config.splitSeed ?? config.seed)
    if let subsetPath = config.trainSubset {
      // FTFT's main model: the reference run's selection, inside the same split
      let selection = try Selection.read(subsetPath)
      guard selection.labels == labels else { throw DynamicsError.labelMismatch(selection: selection.labels, data: labels) }
      if let own = ModelFolder.labels(modelFolder), own != selection.labels { throw DynamicsError.labelMismatch(selection: selection.labels, data: own) }
      let indexOfLine = Dictionary(dataset.examples.enumerated().map { ($1.line, $0) }, uniquingKeysWith: { a, _ in a })
      let train = Set(split.train)
      var chosen = Set<Int>()
      for id in selection.ids {
        guard let i = indexOfLine[id], train.contains(i) else { throw DynamicsError.notInTrainingSplit(path: subsetPath, id: id) }
        chosen.insert(i)
      }
      split.train = split.train.filter { chosen.contains($0) }
      progress.message("training on \(split.train.count) selected examples (\(selection.strategy), fraction \(selection.fraction))")
    }
    if resume, let data = FileManager.default.contents(atPath: splitURL.path) {
      let saved = try JSONDecoder().decode(Split.self, from: data)
      guard saved == split else { throw TrainingError.badResume(path: splitURL.path, reason: "the data no longer gives the saved split") }
      split = saved
    }
    let encodings = dataset.examples.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: config.maxLength) }
    return PreparedData(dataset: dataset, labels: labels, labelIds: ids, split: split, encodings: encodings)
  }
}
