import BonsaiData
import BonsaiTraining
import Foundation
import XCTest

final class DataTests: XCTestCase {
  var dir: URL!
  override func setUpWithError() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-data-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

  func file(_ name: String, _ content: String) throws -> String {
    let url = dir.appendingPathComponent(name)
    try Data(content.utf8).write(to: url)
    return url.path
  }

  func testCSVQuotingNewlinesAndBOM() throws {
    let path = try file("a.csv", "\u{FEFF}label,text\npos,\"hello, \"\"world\"\"\nsecond line\"\r\nneg,plain\n")
    let ds = try Dataset.load(path: path)
    XCTAssertEqual(ds.examples.map(\.text), ["hello, \"world\"\nsecond line", "plain"])
    XCTAssertEqual(ds.examples.map(\.label), ["pos", "neg"])
    XCTAssertEqual(ds.examples.map(\.line), [2, 4], "lines count the newline inside the quoted field")
    XCTAssertEqual(ds.labelNames, ["neg", "pos"])
  }

  func testHeaderlessPangLeeFormatAndNumericLabels() throws {
    let ds = try Dataset.load(path: file("p.csv", "\"1\",\"good film\"\n\"-1\",\"bad film\"\n\"1\",\"fine\"\n"))
    XCTAssertEqual(ds.labelNames, ["-1", "1"], "numeric labels sort numerically")
    XCTAssertEqual(try ds.labelIds(ds.labelNames), [1, 0, 1])
  }

  func testTSVJSONLAndColumns() throws {
    let tsv = try Dataset.load(path: file("t.tsv", "sentence\tcategory\nhello world\tA\n"), columns: ColumnSpec(text: "sentence", label: "category"))
    XCTAssertEqual(tsv.examples.first?.label, "A")
    let jsonl = try Dataset.load(path: file("d.jsonl", "{\"text\": \"a\", \"pair\": \"b\", \"label\": 3}\n\n{\"text\": \"c\", \"pair\": \"d\", \"label\": 1}\n"),
                                 columns: ColumnSpec(pair: "pair"))
    XCTAssertEqual(jsonl.examples.map(\.pair), ["b", "d"])
    XCTAssertEqual(jsonl.labelNames, ["1", "3"])
    let bools = try Dataset.load(path: file("b.jsonl", "{\"text\": \"a\", \"label\": true}\n{\"text\": \"b\", \"label\": 0}\n"))
    XCTAssertEqual(bools.examples.map(\.label), ["true", "0"])
  }

  func testLabelFolders() throws {
    for (label, texts) in [("sport", ["goal!", "match"]), ("tech", ["chips"])] {
      try FileManager.default.createDirectory(at: dir.appendingPathComponent("bbc/\(label)"), withIntermediateDirectories: true)
      for (i, t) in texts.enumerated() { try Data(t.utf8).write(to: dir.appendingPathComponent("bbc/\(label)/\(i).txt")) }
    }
    let ds = try Dataset.load(path: dir.appendingPathComponent("bbc").path)
    XCTAssertEqual(ds.examples.map(\.label), ["sport", "sport", "tech"])
    XCTAssertEqual(ds.examples.map(\.line), [1, 2, 3], "each file its own id, for selections and --train-subset")
    try Data(" \n".utf8).write(to: dir.appendingPathComponent("bbc/tech/1.txt"))
    XCTAssertThrowsError(try Dataset.load(path: dir.appendingPathComponent("bbc").path)) { error in
      XCTAssertTrue("\(error.localizedDescription)".hasSuffix("bbc/tech/1.txt: empty text"), error.localizedDescription)
    }
  }

  func testBadInputNamesFileLineAndColumn() throws {
    func message(_ body: () throws -> Void) -> String {
      do { try body(); return "" } catch { return error.localizedDescription }
    }
    let missing = try file("m.csv", "label,text\na,b\n")
    XCTAssertTrue(message { _ = try Dataset.load(path: missing, columns: ColumnSpec(text: "review")) }.contains("no column 'review'"))
    let empty = try file("e.csv", "")
    XCTAssertTrue(message { _ = try Dataset.load(path: empty) }.contains("no examples"))
    let emptyText = try file("et.csv", "label,text\na,x\nb,  \n")
    XCTAssertTrue(message { _ = try Dataset.load(path: emptyText) }.contains("line 3: empty text"))
    let ragged = try file("r.csv", "label,text\na,x\nb\n")
    XCTAssertTrue(message { _ = try Dataset.load(path: ragged) }.contains("line 3"))
    let unclosed = try file("u.csv", "label,text\na,\"never closed\n")
    XCTAssertTrue(message { _ = try Dataset.load(path: unclosed) }.contains("never closed"))
    let bad = dir.appendingPathComponent("bad.csv")
    try Data("label,text\na,ok\nb,".utf8 + [0xFF, 0xFE] + Data("\n".utf8)).write(to: bad)
    XCTAssertTrue(message { _ = try Dataset.load(path: bad.path) }.contains("line 3: not valid UTF-8"))
    let badJSON = try file("b.jsonl", "{\"text\": \"a\", \"label\": 1}\n[1, 2]\n")
    XCTAssertTrue(message { _ = try Dataset.load(path: badJSON) }.contains("line 2"))
    let ds = try Dataset.load(path: file("x.csv", "label,text\npos,a\nmaybe,b\n"))
    XCTAssertTrue(message { _ = try ds.labelIds(["neg", "pos"]) }.contains("line 3: label 'maybe' was not seen in training"))
  }

  func testDeduplicateAndStratifiedSplit() throws {
    var rows = "label,text\n"
    for i in 0..<100 { rows += "\(i % 4 == 0 ? "rare" : "common"),text \(i % 90)\n" }
    var ds = try Dataset.load(path: file("s.csv", rows))
    XCTAssertEqual(ds.deduplicate(), 10)
    let labels = ds.examples.map(\.label)
    let split = Split.stratified(labels: labels, dev: 0.1, test: 0.2, seed: 5)
    XCTAssertEqual(Set(split.train + split.dev + split.test).count, labels.count, "a partition")
    XCTAssertEqual(split.train.count + split.dev.count + split.test.count, labels.count)
    let rareShare = Double(split.test.filter { labels[$0] == "rare" }.count) / Double(split.test.count)
    let overall = Double(labels.filter { $0 == "rare" }.count) / Double(labels.count)
    XCTAssertEqual(rareShare, overall, accuracy: 0.06, "test keeps the label proportions")
    XCTAssertEqual(split, Split.stratified(labels: labels, dev: 0.1, test: 0.2, seed: 5), "seeded")
    XCTAssertNotEqual(split, Split.stratified(labels: labels, dev: 0.1, test: 0.2, seed: 6))
  }

  func testMetricsMatchScikitLearn() {
    // sklearn: y_true=[0,0,1,1,2,2], y_pred=[0,1,1,1,2,0]
    let m = ClassificationMetrics(gold: [0, 0, 1, 1, 2, 2], predicted: [0, 1, 1, 1, 2, 0], labels: ["a", "b", "c"])
    XCTAssertEqual(m.accuracy, 4.0 / 6.0, accuracy: 1e-12)
    XCTAssertEqual(m.perClass["b"]!.precision, 2.0 / 3.0, accuracy: 1e-12)
    XCTAssertEqual(m.perClass["a"]!.recall, 0.5, accuracy: 1e-12)
    XCTAssertEqual(m.macroF1, (0.5 + 0.8 + 2.0 / 3.0) / 3, accuracy: 1e-12)
    XCTAssertEqual(m.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
  }

  func testLengthGroupedBatchesCoverEachIndexOnceAndGroupLengths() {
    let lengths = (0..<1000).map { ($0 * 37) % 120 + 3 }
    let batches = lengthGroupedBatches(Array(0..<1000), lengths: lengths, batchSize: 16, seed: 1, epoch: 0)
    XCTAssertEqual(batches.flatMap { $0 }.sorted(), Array(0..<1000))
    let padding = batches.reduce(0) { acc, b in acc + b.map { lengths.max()! - lengths[$0] }.reduce(0, +) * 0 + b.map { (b.map { lengths[$0] }.max()! - lengths[$0]) }.reduce(0, +) }
    let randomPadding = stride(from: 0, to: 1000, by: 16).reduce(0) { acc, s in
      let b = Array(s..<min(s + 16, 1000)); return acc + b.map { b.map { lengths[$0] }.max()! - lengths[$0] }.reduce(0, +) }
    XCTAssertLessThan(padding * 5, randomPadding, "grouping cuts padding")
    XCTAssertEqual(batches, lengthGroupedBatches(Array(0..<1000), lengths: lengths, batchSize: 16, seed: 1, epoch: 0))
    XCTAssertNotEqual(batches, lengthGroupedBatches(Array(0..<1000), lengths: lengths, batchSize: 16, seed: 1, epoch: 1))
  }
}
