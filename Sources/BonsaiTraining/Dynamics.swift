// Training dynamics and data maps (Swayamdipta et al. 2020, "Dataset Cartography"; FTFT, Du et al. 2023;
// shared/METHODS.md "FTFT"). Per training example and epoch, the probability of the gold label and
// whether the argmax was right, keyed by the example's line in the data file (stable across runs,
// de-duplication and resume). Over the complete epochs:
//   confidence  = mean_e p_e
//   variability = population standard deviation of p_e (numpy's np.std, as allenai/cartography;
//                 FTFT's utils.py uses the Bessel-corrected one)
//   correctness = fraction of epochs whose argmax is the gold label
import BonsaiData
import BonsaiModels
import Foundation

/// One training example at one epoch.
public struct DynamicsRecord: Codable, Equatable, Sendable {
  /// The optimizer step the record belongs to (for truncation on resume).
  public var step: Int
  public var epoch: Int
  /// The example's line in the data file.
  public var id: Int
  /// softmax(logits)[gold]
  public var p: Double
  public var correct: Bool

  public init(step: Int, epoch: Int, id: Int, p: Double, correct: Bool) {
    self.step = step; self.epoch = epoch; self.id = id; self.p = p; self.correct = correct
  }
}

/// The three cartography scores of one example.
public struct ExampleScores: Equatable, Sendable {
  public var id: Int
  public var confidence: Double
  public var variability: Double
  public var correctness: Double

  public init(id: Int, confidence: Double, variability: Double, correctness: Double) {
    self.id = id; self.confidence = confidence; self.variability = variability; self.correctness = correctness
  }
}

public enum DynamicsError: LocalizedError, Equatable {
  case noDynamics(path: String)
  case tooFewEpochs(path: String, complete: Int)
  case badFraction(Double)
  case unknownStrategy(String)
  case malformed(path: String, line: Int)
  case notInTrainingSplit(path: String, id: Int)
  case labelMismatch(selection: [String], data: [String])

  public var errorDescription: String? {
    switch self {
    case let .noDynamics(path): return "\(path): no dynamics.jsonl: train the run with --record-dynamics"
    case let .tooFewEpochs(path, n):
      return "\(path): dynamics cover \(n) complete epoch\(n == 1 ? "" : "s"); variability needs at least 2 (train with --epochs 2 or more)"
    case let .badFraction(f): return "--fraction must be in (0, 1], got \(f)"
    case let .unknownStrategy(s): return "--strategy must be ambiguous, hard, easy or random, got '\(s)'"
    case let .malformed(path, line): return "\(path): line \(line): not a dynamics record"
    case let .notInTrainingSplit(path, id): return "\(path): example at line \(id) is not in this run's training split (same data, --split-seed and fractions?)"
    case let .labelMismatch(s, d): return "the selection's labels \(s) differ from this run's labels \(d)"
    }
  }
}

/// dynamics.jsonl in a run folder, appended batch by batch; on resume, records past the checkpoint's step go.
public final class DynamicsLog {
  public let url: URL
  var handle: FileHandle?

  public init(url: URL, truncateAfter step: Int) throws {
    self.url = url
    var kept = Data()
    if let text = try? String(contentsOf: url, encoding: .utf8) {
      let decoder = JSONDecoder()
      for line in text.split(separator: "\n") {
        if let r = try? decoder.decode(DynamicsRecord.self, from: Data(line.utf8)), r.step <= step { kept += Data((line + "\n").utf8) }
      }
    }
    try kept.write(to: url, options: .atomic)
    handle = try FileHandle(forWritingTo: url)
    handle?.seekToEndOfFile()
  }

  public func append(_ records: [DynamicsRecord]) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    var data = Data()
    for r in records { data += (try? encoder.encode(r)) ?? Data(); data += Data("\n".utf8) }
    handle?.write(data)
  }

  deinit { try? handle?.close() }

  /// All records of a run folder.
  public static func read(run: URL) throws -> [DynamicsRecord] {
    let url = run.appendingPathComponent("dynamics.jsonl")
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { throw DynamicsError.noDynamics(path: run.path) }
    let decoder = JSONDecoder()
    return try text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().compactMap { n, line in
      if line.isEmpty { return nil }
      guard let r = try? decoder.decode(DynamicsRecord.self, from: Data(line.utf8)) else { throw DynamicsError.malformed(path: url.path, line: n + 1) }
      return r
    }
  }
}

/// Records for one training batch from its logits [B, C] (row-major) and gold label ids.
public func dynamicsRecords(logits: [Float], classes: Int, gold: [Int], ids: [Int], step: Int, epoch: Int) -> [DynamicsRecord] {
  gold.indices.map { r in
    let row = logits[(r * classes)..<((r + 1) * classes)]
    let m = Double(row.max()!)
    let z = row.reduce(0.0) { $0 + exp(Double($1) - m) }
    let p = exp(Double(row[row.startIndex + gold[r]]) - m) / z
    let argmax = row.firstIndex(of: row.max()!)! - row.startIndex
    return DynamicsRecord(step: step, epoch: epoch, id: ids[r], p: p, correct: argmax == gold[r])
  }
}

public enum DataMap {
  /// Scores over the complete epochs: an epoch counts when every training id has exactly one record in
  /// it (later records of an id in the same epoch replace earlier ones); a trailing partial epoch is dropped.
  /// Throws when fewer than 2 epochs are complete.
  public static func scores(_ records: [DynamicsRecord], trainIds: Set<Int>, run: String) throws -> [ExampleScores] {
    var byEpoch: [Int: [Int: DynamicsRecord]] = [:]
    for r in records where trainIds.contains(r.id) { byEpoch[r.epoch, default: [:]][r.id] = r }
    let complete = byEpoch.keys.sorted().filter { byEpoch[$0]!.count == trainIds.count }
    guard complete.count >= 2 else { throw DynamicsError.tooFewEpochs(path: run, complete: complete.count) }
    return trainIds.sorted().map { id in
      let ps = complete.map { byEpoch[$0]![id]!.p }
      let mean = ps.reduce(0, +) / Double(ps.count)
      let variance = ps.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(ps.count)
      let correct = Double(complete.filter { byEpoch[$0]![id]!.correct }.count) / Double(complete.count)
      return ExampleScores(id: id, confidence: mean, variability: variance.squareRoot(), correctness: correct)
    }
  }

  public static let strategies = ["ambiguous", "hard", "easy", "random"]

  /// The ids of the chosen fraction (rounded up, at least one): ambiguous = highest variability, hard =
  /// lowest confidence, easy = highest confidence, random = a seeded shuffle. Ties go to the lower id.
  public static func select(_ scores: [ExampleScores], strategy: String, fraction: Double, seed: UInt64 = 42) throws -> [Int] {
    guard fraction > 0 && fraction <= 1 else { throw DynamicsError.badFraction(fraction) }
    let n = max(1, Int((fraction * Double(scores.count)).rounded(.up)))
    let ordered: [ExampleScores]
    switch strategy {
    case "ambiguous": ordered = scores.sorted { ($0.variability, -$0.id) > ($1.variability, -$1.id) }
    case "hard": ordered = scores.sorted { ($0.confidence, $0.id) < ($1.confidence, $1.id) }
    case "easy": ordered = scores.sorted { ($0.confidence, -$0.id) > ($1.confidence, -$1.id) }
    case "random":
      var rng = SplitMix(seed: seed)
      ordered = scores.sorted { $0.id < $1.id }.shuffled(using: &rng)
    default: throw DynamicsError.unknownStrategy(strategy)
    }
    return ordered.prefix(n).map(\.id).sorted()
  }
}

/// A chosen training subset (`bonsai select`), read by `finetune --train-subset`.
public struct Selection: Codable, Equatable, Sendable {
  public var run: String
  public var data: String
  public var labels: [String]
  public var strategy: String
  public var fraction: Double
  /// Lines of the chosen examples in the data file.
  public var ids: [Int]

  public init(run: String, data: String, labels: [String], strategy: String, fraction: Double, ids: [Int]) {
    self.run = run; self.data = data; self.labels = labels; self.strategy = strategy; self.fraction = fraction; self.ids = ids
  }

  public static func read(_ path: String) throws -> Selection {
    guard let data = FileManager.default.contents(atPath: path) else { throw DataError.unreadable(path: path, reason: "cannot read the selection file") }
    do { return try JSONDecoder().decode(Selection.self, from: data) } catch {
      throw DataError.unreadable(path: path, reason: "not a selection written by `bonsai select` (\(error))")
    }
  }
}


/// A finished (or running) run's data map: its config, data, labels and the scores of its training split.
public struct RunDataMap {
  public let run: URL
  public let config: TrainConfig
  public let dataset: Dataset
  public let labels: [String]
  public let scores: [ExampleScores]
  /// Example index by line.
  public let indexOfLine: [Int: Int]

  public static func load(run: URL) throws -> RunDataMap {
    let fm = FileManager.default
    guard let configData = fm.contents(atPath: run.appendingPathComponent("config.json").path) else {
      throw DataError.unreadable(path: run.appendingPathComponent("config.json").path, reason: "not a run folder (no config.json)")
    }
    let config = try JSONDecoder().decode(TrainConfig.self, from: configData)
    guard fm.fileExists(atPath: run.appendingPathComponent("dynamics.jsonl").path) else { throw DynamicsError.noDynamics(path: run.path) }
    var dataset = try Dataset.load(path: config.data, columns: ColumnSpec(text: config.textColumn, pair: config.pairColumn, label: config.labelColumn))
    if config.deduplicate { dataset.deduplicate() }
    guard let splitData = fm.contents(atPath: run.appendingPathComponent("split.json").path) else {
      throw DataError.unreadable(path: run.appendingPathComponent("split.json").path, reason: "missing")
    }
    let split = try JSONDecoder().decode(Split.self, from: splitData)
    guard split.train.allSatisfy({ $0 < dataset.examples.count }) else {
      throw DataError.unreadable(path: config.data, reason: "the data no longer matches the run's split.json")
    }
    let trainIds = Set(split.train.map { dataset.examples[$0].line })
    let scores = try DataMap.scores(try DynamicsLog.read(run: run), trainIds: trainIds, run: run.path)
    let labels = ModelFolder.labels(run.appendingPathComponent("best")) ?? dataset.labelNames
    return RunDataMap(run: run, config: config, dataset: dataset, labels: labels, scores: scores,
                      indexOfLine: Dictionary(dataset.examples.enumerated().map { ($1.line, $0) }, uniquingKeysWith: { a, _ in a }))
  }

  /// The per-example table: id, label, confidence, variability, correctness, text.
  public func csv() -> String {
    var out = "id,label,confidence,variability,correctness,text\n"
    for s in scores {
      let e = dataset.examples[indexOfLine[s.id]!]
      out += "\(s.id),\(csvField(e.label)),\(String(format: "%.6f,%.6f,%.4f", s.confidence, s.variability, s.correctness)),\(csvField(e.text))\n"
    }
    return out
  }

  /// The chosen examples as a data file `finetune` reads (label,text[,text_pair] CSV, or JSONL by extension).
  public func dataFile(ids: [Int], jsonl: Bool) throws -> String {
    let rows = ids.map { dataset.examples[indexOfLine[$0]!] }
    if jsonl {
      return try rows.map { e -> String in
        var obj: [String: String] = ["label": e.label, "text": e.text]
        if let p = e.pair { obj["text_pair"] = p }
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self) + "\n"
      }.joined()
    }
    let pair = rows.contains { $0.pair != nil }
    return (pair ? "label,text,text_pair\n" : "label,text\n") + rows.map { e in
      [e.label, e.text] .map(csvField).joined(separator: ",") + (pair ? "," + csvField(e.pair ?? "") : "") + "\n"
    }.joined()
  }
}

func csvField(_ s: String) -> String {
  s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}
