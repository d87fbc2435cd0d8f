// Hidden-state KD into a narrower student through a learned projection, and the width checks.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation
import XCTest

/// A folder of MiniLM's tokenizer with a BERT of other sizes, randomly initialised, saved as a classifier.
func makeNarrowBERT(at dir: URL, hidden: Int, heads: Int, layers: Int, labels: [String]) throws {
  let minilm = Assets.home.appendingPathComponent("models/minilm")
  let fm = FileManager.default
  let source = dir.appendingPathExtension("source")
  try fm.createDirectory(at: source, withIntermediateDirectories: true)
  var config = try JSONSerialization.jsonObject(with: Data(contentsOf: minilm.appendingPathComponent("config.json"))) as! [String: Any]
  config["hidden_size"] = hidden; config["num_attention_heads"] = heads; config["intermediate_size"] = 2 * hidden
  config["num_hidden_layers"] = layers
  let data = try JSONSerialization.data(withJSONObject: config)
  try data.write(to: source.appendingPathComponent("config.json"))
  for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"] {
    let src = minilm.appendingPathComponent(name)
    if fm.fileExists(atPath: src.path) { try? fm.copyItem(at: src, to: source.appendingPathComponent(name)) }
  }
  let model = BertForSequenceClassification(config: try JSONDecoder().decode(BertConfig.self, from: data), numLabels: labels.count, seed: 3)
  try ModelFolder.save(model, labels: labels, source: source, to: dir)
}

final class ProjectionTests: XCTestCase {
  var tmp: URL!
  override func setUpWithError() throws {
    tmp = try makeTemporaryFolder("projection")
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

  func config(student: URL, teacher: URL, data: String) -> TrainConfig {
    var c = TrainConfig(model: student.path, data: data)
    c.epochs = 4; c.batchSize = 8; c.maxLength = 16; c.learningRate = 3e-4; c.threads = 2
    var d = DistillConfig(teacher: teacher.path)
    d.alphaCE = 0; d.alphaKD = 0; d.alphaHidden = 1; d.hiddenMap = [1, 5]
    c.distill = d
    return c
  }

  func testNarrowStudentTrainsAProjectionAndResumesIt() throws {
    let teacher = tmp.appendingPathComponent("teacher"), student = tmp.appendingPathComponent("student")
    let (clf, _, _) = try ModelFolder.loadClassifier(Assets.home.appendingPathComponent("models/minilm"), numLabels: 2, seed: 1)
    try ModelFolder.save(clf, labels: ["neg", "pos"], source: Assets.home.appendingPathComponent("models/minilm"), to: teacher)
    try makeNarrowBERT(at: student, hidden: 96, heads: 3, layers: 2, labels: ["neg", "pos"])
    let data = try writeTinyCSV(in: tmp, count: 48)
    let run = tmp.appendingPathComponent("run")
    try Trainer(config: config(student: student, teacher: teacher, data: data), modelFolder: student, runDir: run).run(resume: false)
    let losses = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double }
    XCTAssertGreaterThan(losses.count, 10)
    XCTAssertLessThan(losses.suffix(3).reduce(0, +), 0.8 * losses.prefix(3).reduce(0, +), "the hidden-state loss through the projection falls")
    let saved = try SafeTensorsFileProbe.keys(run.appendingPathComponent("checkpoint-last/distill_projection.safetensors"))
    XCTAssertEqual(saved, ["distill_projection.layers.0.bias", "distill_projection.layers.0.weight",
                           "distill_projection.layers.1.bias", "distill_projection.layers.1.weight"])
    XCTAssertFalse(try SafeTensorsFileProbe.keys(run.appendingPathComponent("best/model.safetensors")).contains { $0.hasPrefix("distill") },
                   "the exported student holds no projection")

    // an interrupted run resumes with its projection and ends where the whole run ended
    let first = config(student: student, teacher: teacher, data: data)
    let partial = tmp.appendingPathComponent("partial")
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "10", 1)
    defer { unsetenv("BONSAI_TEST_STOP_AFTER_STEP") }
    XCTAssertThrowsError(try Trainer(config: first, modelFolder: student, runDir: partial).run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    try Trainer(config: first, modelFolder: student, runDir: partial).run(resume: true)
    XCTAssertEqual(try Data(contentsOf: partial.appendingPathComponent("final/model.safetensors")),
                   try Data(contentsOf: run.appendingPathComponent("final/model.safetensors")), "resumed = uninterrupted, bit for bit")
  }

  func testStudentWiderThanTeacherIsRefused() throws {
    let teacher = tmp.appendingPathComponent("narrow-teacher")
    try makeNarrowBERT(at: teacher, hidden: 96, heads: 3, layers: 2, labels: ["neg", "pos"])
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    var c = config(student: minilm, teacher: teacher, data: try writeTinyCSV(in: tmp, count: 48))
    c.distill!.alphaHidden = 0; c.distill!.alphaKD = 1
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("wide")).run(resume: false)) {
      XCTAssertEqual($0 as? DistillError, .studentWider(student: 384, teacher: 96))
    }
  }

  func testStudentWithOtherLabelsIsRefused() throws {
    let teacher = tmp.appendingPathComponent("teacher"), student = tmp.appendingPathComponent("student3")
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    try ModelFolder.save(try ModelFolder.loadClassifier(minilm, numLabels: 2, seed: 1).0, labels: ["neg", "pos"], source: minilm, to: teacher)
    try makeNarrowBERT(at: student, hidden: 96, heads: 3, layers: 2, labels: ["neg", "neutral", "pos"])
    let c = config(student: student, teacher: teacher, data: try writeTinyCSV(in: tmp, count: 48))
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: student, runDir: tmp.appendingPathComponent("r")).run(resume: false)) {
      XCTAssertEqual($0 as? DistillError, .studentLabelMismatch(teacher: ["neg", "pos"], student: ["neg", "neutral", "pos"]))
    }
  }
}

enum SafeTensorsFileProbe {
  /// Tensor names in a safetensors file, sorted (read from its JSON header).
  static func keys(_ url: URL) throws -> [String] {
    let data = try Data(contentsOf: url)
    let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
    return header.keys.filter { $0 != "__metadata__" }.sorted()
  }
}
