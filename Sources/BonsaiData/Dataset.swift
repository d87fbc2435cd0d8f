// Labelled examples from a table, the label vocabulary, de-duplication and a seeded stratified split.
import Foundation

/// One labelled example; `line` is where it came from, for error messages.
public struct Example: Sendable, Equatable {
  public var text: String
  public var pair: String?
  public var label: String
  public var line: Int
}

/// Which columns hold what.
public struct ColumnSpec: Sendable {
  public var text: String?
  public var pair: String?
  public var label: String?
  public init(text: String? = nil, pair: String? = nil, label: String? = nil) { self.text = text; self.pair = pair; self.label = label }
}

/// Examples of one data source with their label vocabulary.
public struct Dataset: Sendable {
  public var examples: [Example]
  public let path: String

  /// Loads a CSV/TSV/JSONL file or a label-per-folder directory.
  public static func load(path: String, columns: ColumnSpec = ColumnSpec()) throws -> Dataset {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw DataError.unreadable(path: path, reason: "not found") }
    let table = isDir.boolValue ? try readLabelFolders(path: path) : try readTable(path: path)
    // Defaults: named columns `text`/`label`; a headerless two-column file is label,text (Pang & Lee).
    let headerless = table.columns == (0..<table.columns.count).map { "\($0)" }
    let textColumn = columns.text ?? (headerless && table.columns.count == 2 ? "1" : "text")
    let labelColumn = columns.label ?? (headerless && table.columns.count == 2 ? "0" : "label")
    for c in [textColumn, labelColumn] + (columns.pair.map { [$0] } ?? []) where !table.columns.contains(c) {
      throw DataError.missingColumn(path: path, column: c, available: table.columns)
    }
    var examples: [Example] = []
    for (row, line) in zip(table.rows, table.lines) {
      let text = row[textColumn] ?? ""
      guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
        if isDir.boolValue, let file = row["file"] { throw DataError.unreadable(path: (path as NSString).appendingPathComponent(file), reason: "empty text") }
        throw DataError.emptyText(path: path, line: line)
      }
      let label = (row[labelColumn] ?? "").trimmingCharacters(in: .whitespaces)
      guard !label.isEmpty else { throw DataError.malformed(path: path, line: line, reason: "empty label") }
      examples.append(Example(text: text, pair: columns.pair.flatMap { row[$0] }, label: label, line: line))
    }
    return Dataset(examples: examples, path: path)
  }

  /// Label names in id order: numerically sorted when all labels are numbers, else lexicographically.
  public var labelNames: [String] {
    let set = Set(examples.map(\.label))
    if set.allSatisfy({ Double($0) != nil }) { return set.sorted { Double($0)! < Double($1)! } }
    return set.sorted()
  }

  /// Drops examples whose (text, pair) appeared earlier; returns how many were dropped.
  @discardableResult
  public mutating func deduplicate() -> Int {
    var seen = Set<String>()
    let before = examples.count
    examples = examples.filter { seen.insert($0.text + "\u{1F}" + ($0.pair ?? "")).inserted }
    return before - examples.count
  }

  /// Label ids for `labels`; an unseen label is an error naming its line.
  public func labelIds(_ labels: [String]) throws -> [Int] {
    let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
    return try examples.map { e in
      guard let id = index[e.label] else { throw DataError.unknownLabel(path: path, line: e.line, label: e.label, known: labels) }
      return id
    }
  }
}

/// Train/dev/test indices into a dataset.
public struct Split: Codable, Sendable, Equatable {
  public var train: [Int]
  public var dev: [Int]
  public var test: [Int]

  public init(train: [Int], dev: [Int], test: [Int]) { self.train = train; self.dev = dev; self.test = test }

  /// A seeded stratified split: each label's examples are shuffled and cut by the fractions, so every
  /// part keeps the label proportions.
  public static func stratified(labels: [String], dev devFraction: Double, test testFraction: Double, seed: UInt64) -> Split {
    var byLabel: [String: [Int]] = [:]
    for (i, l) in labels.enumerated() { byLabel[l, default: []].append(i) }
    var s = Split(train: [], dev: [], test: [])
    var rng = SplitMix(seed: seed)
    for label in byLabel.keys.sorted() {
      var idx = byLabel[label]!
      rng.shuffle(&idx)
      let nTest = Int((Double(idx.count) * testFraction).rounded()), nDev = Int((Double(idx.count) * devFraction).rounded())
      s.test += idx.prefix(nTest)
      s.dev += idx.dropFirst(nTest).prefix(nDev)
      s.train += idx.dropFirst(nTest + nDev)
    }
    s.train.sort(); s.dev.sort(); s.test.sort()
    return s
  }
}

/// SplitMix64: a small seeded generator for shuffles that must be reproducible everywhere.
public struct SplitMix: RandomNumberGenerator, Sendable, Codable {
  public var state: UInt64
  public init(seed: UInt64) { state = seed }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Fisher-Yates with this generator (independent of the standard library's algorithm).
  public mutating func shuffle<T>(_ a: inout [T]) {
    guard a.count > 1 else { return }
    for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, Int(next() % UInt64(i + 1))) }
  }
}
