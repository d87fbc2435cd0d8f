// Training dynamics, data maps and selection (dataset cartography / FTFT).
import BonsaiData
import BonsaiTraining
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest

final class DynamicsTests: XCTestCase {
  func rec(_ epoch: Int, _ id: Int, _ p: Double, _ correct: Bool) -> DynamicsRecord {
    DynamicsRecord(step: epoch * 10 + 1, epoch: epoch, id: id, p: p, correct: correct)
  }

  func testScoresByHand() throws {
    // id 1: p = 0.2, 0.4, 0.9 -> mean 0.5, population std sqrt(((.3)^2 + (.1)^2 + (.4)^2) / 3) = sqrt(0.26 / 3)
    // id 2: p = 0.8 every epoch -> std 0; correct 2 of 3. Epoch 3 is partial (id 2 missing) and dropped.
    let records = [rec(0, 1, 0.2, false), rec(0, 2, 0.8, true), rec(1, 1, 0.4, false), rec(1, 2, 0.8, false),
                   rec(2, 2, 0.8, true), rec(2, 1, 0.9, true), rec(3, 1, 0.1, false)]
    let s = try DataMap.scores(records, trainIds: [1, 2], run: "r")
    XCTAssertEqual(s.map(\.id), [1, 2])
    XCTAssertEqual(s[0].confidence, 0.5, accuracy: 1e-12)
    XCTAssertEqual(s[0].variability, (0.26 / 3).squareRoot(), accuracy: 1e-12)
    XCTAssertEqual(s[0].correctness, 1.0 / 3, accuracy: 1e-12)
    XCTAssertEqual(s[1].confidence, 0.8, accuracy: 1e-12)
    XCTAssertEqual(s[1].variability, 0, accuracy: 1e-12)
    XCTAssertEqual(s[1].correctness, 2.0 / 3, accuracy: 1e-12)
    // one complete epoch: variability is undefined
    XCTAssertThrowsError(try DataMap.scores([rec(0, 1, 0.2, false), rec(0, 2, 0.8, true), rec(1, 1, 0.3, true)], trainIds: [1, 2], run: "r")) {
      XCTAssertEqual($0 as? DynamicsError, .tooFewEpochs(path: "r", complete: 1))
      XCTAssertTrue(($0 as! DynamicsError).errorDescription!.contains("at least 2"))
    }
  }

  func testRecordsFromLogits() {
    let r = dynamicsRecords(logits: [0, 0, 1, 3], classes: 2, gold: [0, 0], ids: [7, 9], step: 5, epoch: 1)
    XCTAssertEqual(r[0].p, 0.5, accuracy: 1e-12)
    XCTAssertEqual(r[1].p, 1 / (1 + exp(2.0)), accuracy: 1e-12)
    XCTAssertEqual(r.map(\.correct), [true, false])  // a tie goes to the first class, like argmax
    XCTAssertEqual(r.map(\.id), [7, 9])
  }

  func testSelectionPicksExpectedIds() throws {
    let s = [ExampleScores(id: 10, confidence: 0.9, variability: 0.05, correctness: 1),
             ExampleScores(id: 11, confidence: 0.5, variability: 0.40, correctness: 0.5),
             ExampleScores(id: 12, confidence: 0.1, variability: 0.02, correctness: 0),
             ExampleScores(id: 13, confidence: 0.6, variability: 0.30, correctness: 0.5),
             ExampleScores(id: 14, confidence: 0.3, variability: 0.30, correctness: 0.25)]
    XCTAssertEqual(try DataMap.select(s, strategy: "ambiguous", fraction: 0.4), [11, 13], "highest variability; a tie goes to the lower id")
    XCTAssertEqual(try DataMap.select(s, strategy: "ambiguous", fraction: 0.5), [11, 13, 14], "0.5 * 5 rounds up to 3")
    XCTAssertEqual(try DataMap.select(s, strategy: "hard", fraction: 0.4), [12, 14])
    XCTAssertEqual(try DataMap.select(s, strategy: "easy", fraction: 0.2), [10])
    XCTAssertEqual(try DataMap.select(s, strategy: "random", fraction: 1), [10, 11, 12, 13, 14])
    XCTAssertEqual(try DataMap.select(s, strategy: "random", fraction: 0.6, seed: 3), try DataMap.select(s, strategy: "random", fraction: 0.6, seed: 3))
    XCTAssertEqual(try DataMap.select(s, strategy: "random", fraction: 0.6).count, 3)
    for bad in [0.0, -0.1, 1.5] { XCTAssertThrowsError(try DataMap.select(s, strategy: "hard", fraction: bad)) { XCTAssertEqual($0 as? DynamicsError, .badFraction(bad)) } }
    XCTAssertThrowsError(try DataMap.select(s, strategy: "median", fraction: 0.5))
  }

  func testSVGIsWellFormedAndShowsEveryExample() throws {
    let s = (0..<57).map { (i: Int) -> ExampleScores in
      let confidence = Double(i) / 57, variability = Double(i % 9) / 20, correctness = Double(i % 4) / 3
      return ExampleScores(id: i * 3 + 2, confidence: confidence, variability: variability, correctness: correctness)
    }
    let svg = DataMap.svg(s, title: "a <tiny> & odd title")
    final class Counter: NSObject, XMLParserDelegate {
      var circles = 0, titles: [String] = [], inTitle = false
      func parser(_ p: XMLParser, didStartElement e: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
        if e == "circle" { circles += 1 }
        if e == "title" { inTitle = true; titles.append("") }
      }
      func parser(_ p: XMLParser, foundCharacters s: String) { if inTitle { titles[titles.count - 1] += s } }
      func parser(_ p: XMLParser, didEndElement e: String, namespaceURI: String?, qualifiedName: String?) { if e == "title" { inTitle = false } }
    }
    let parser = XMLParser(data: Data(svg.utf8))
    let counter = Counter()
    parser.delegate = counter
    XCTAssertTrue(parser.parse(), "well-formed XML: \(String(describing: parser.parserError))")
    XCTAssertEqual(Set(counter.titles), Set(s.map { "line \($0.id)" }), "one dot per example, named by its line")
    XCTAssertEqual(counter.circles, 57 + 5, "the examples plus five legend swatches")
    for region in ["easy-to-learn", "ambiguous", "hard-to-learn"] { XCTAssertTrue(svg.contains(region)) }
  }

  func testDynamicsSurviveResumeWithoutGapsOrDuplicates() throws {
    let tmp = try makeTemporaryFolder("dynamics")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    var c = TrainConfig(model: minilm.path, data: try writeTinyCSV(in: tmp))
    c.epochs = 3; c.batchSize = 8; c.maxLength = 16; c.learningRate = 1e-4; c.recordDynamics = true; c.evalEvery = 2; c.threads = 2
    let whole = tmp.appendingPathComponent("whole"), cut = tmp.appendingPathComponent("cut")
    try Trainer(config: c, modelFolder: minilm, runDir: whole).run(resume: false)
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "5", 1)
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: cut).run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    // a kill after the checkpoint leaves records of later batches: resume must drop and redo them
    let beforeResume = try DynamicsLog.read(run: cut)
    XCTAssertFalse(beforeResume.isEmpty)
    let h = try FileHandle(forWritingTo: cut.appendingPathComponent("dynamics.jsonl"))
    h.seekToEndOfFile()
    h.write(Data("{\"correct\":true,\"epoch\":1,\"id\":\(beforeResume[0].id),\"p\":0.5,\"step\":\(beforeResume.last!.step + 1)}\n".utf8))
    try h.close()
    try Trainer(config: c, modelFolder: minilm, runDir: cut).run(resume: true)
    let a = try DynamicsLog.read(run: whole), b = try DynamicsLog.read(run: cut)
    let split = try JSONDecoder().decode(Split.self, from: Data(contentsOf: whole.appendingPathComponent("split.json")))
    XCTAssertEqual(a.count, 3 * split.train.count, "one record per example and epoch")
    let keys = b.map { "\($0.epoch)/\($0.id)" }
    XCTAssertEqual(keys.count, Set(keys).count, "no duplicates after resume")
    XCTAssertEqual(Set(keys), Set(a.map { "\($0.epoch)/\($0.id)" }), "no gaps after resume")
    XCTAssertEqual(b, a, "the resumed run records what the whole run recorded")
    // the data map of the run covers the training split; a run without dynamics is refused
    let map = try RunDataMap.load(run: cut)
    XCTAssertEqual(map.scores.count, split.train.count)
    c.recordDynamics = false
    let plain = tmp.appendingPathComponent("plain")
    c.maxSteps = 2
    try Trainer(config: c, modelFolder: minilm, runDir: plain).run(resume: false)
    XCTAssertThrowsError(try RunDataMap.load(run: plain)) { XCTAssertEqual($0 as? DynamicsError, .noDynamics(path: plain.path)) }
    // a selection with other labels is refused before training
    let sel = Selection(run: cut.path, data: c.data, labels: ["neg", "neutral", "pos"], strategy: "ambiguous", fraction: 0.33, ids: [2, 3])
    try JSONEncoder().encode(sel).write(to: tmp.appendingPathComponent("sel.json"))
    c.trainSubset = tmp.appendingPathComponent("sel.json").path
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("sub")).run(resume: false)) {
      XCTAssertTrue(($0 as? LocalizedError)?.errorDescription?.contains("labels") ?? false, "\($0)")
    }
  }
}
