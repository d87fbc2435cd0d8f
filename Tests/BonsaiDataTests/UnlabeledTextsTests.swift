// Distillation with unlabelled texts the teacher labels: they train, get no training-dynamics records
// (they have no line in the data file), are not written into split.json, and the run resumes exactly.
import BonsaiData
import BonsaiTraining
import Foundation
import XCTest

final class UnlabeledTextsTests: XCTestCase {
  func testTeacherLabelledTextsResumeExactlyAndStayOutOfTheDataMap() throws {
    let tmp = try makeTemporaryFolder("unlabeled")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let teacher = tmp.appendingPathComponent("teacher"), student = tmp.appendingPathComponent("student")
    try makeNarrowBERT(at: teacher, hidden: 96, heads: 3, layers: 2, labels: ["neg", "pos"])
    try makeNarrowBERT(at: student, hidden: 64, heads: 2, layers: 1, labels: ["neg", "pos"])
    let unlabeled = tmp.appendingPathComponent("unlabeled.txt")
    try "a truly wonderful film\nboring and dull\n\nthe music was lovely\nan awful mess\nwarm and funny\n".write(to: unlabeled, atomically: true, encoding: .utf8)
    var c = TrainConfig(model: student.path, data: try writeTinyCSV(in: tmp))
    c.epochs = 2; c.batchSize = 8; c.maxLength = 16; c.learningRate = 3e-4; c.threads = 2; c.evalEvery = 3; c.recordDynamics = true
    var d = DistillConfig(teacher: teacher.path)
    d.unlabeled = unlabeled.path
    c.distill = d
    let whole = tmp.appendingPathComponent("whole"), cut = tmp.appendingPathComponent("cut")
    let summary = try Trainer(config: c, modelFolder: student, runDir: whole).run(resume: false)
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "3", 1)
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: student, runDir: cut).run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    try Trainer(config: c, modelFolder: student, runDir: cut).run(resume: true)

    for file in ["final/model.safetensors", "dynamics.jsonl"] {
      XCTAssertEqual(try Data(contentsOf: cut.appendingPathComponent(file)), try Data(contentsOf: whole.appendingPathComponent(file)),
                     "\(file): resumed = uninterrupted")
    }
    XCTAssertEqual(try metricsWithoutTimes(cut), try metricsWithoutTimes(whole), "metrics.jsonl: resumed = uninterrupted")
    let split = try JSONDecoder().decode(Split.self, from: Data(contentsOf: whole.appendingPathComponent("split.json")))
    XCTAssertEqual(summary["train_examples"] as? Int, split.train.count + 5, "the five non-empty texts join the training split")
    let dataset = try Dataset.load(path: c.data, columns: ColumnSpec(text: nil, pair: nil, label: nil))
    XCTAssertTrue(split.train.allSatisfy { $0 < dataset.examples.count }, "split.json holds only the data file's examples")
    let lines = Set(split.train.map { dataset.examples[$0].line })
    let records = try DynamicsLog.read(run: whole)
    XCTAssertEqual(records.count, 2 * split.train.count, "one record per data-file training example and epoch")
    XCTAssertTrue(records.allSatisfy { lines.contains($0.id) })
  }
}
