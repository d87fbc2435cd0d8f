// Shrink and Fine-Tune student initialisation: exact copies, identity when all layers are kept, clear errors.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiModels
import Foundation
import XCTest

final class ShrinkTests: XCTestCase {
  func testPaperTableAndGeneralRule() {
    XCTAssertEqual(Shrink.defaultLayers(teacher: 12, student: 3), [0, 6, 11])
    XCTAssertEqual(Shrink.defaultLayers(teacher: 12, student: 6), [0, 2, 4, 7, 9, 11])
    XCTAssertEqual(Shrink.defaultLayers(teacher: 6, student: 3), [0, 2, 5])
    XCTAssertEqual(Shrink.defaultLayers(teacher: 16, student: 4), [0, 5, 10, 15])
    XCTAssertEqual(Shrink.defaultLayers(teacher: 10, student: 4), [0, 3, 6, 9], "spread evenly, first and last kept")
    XCTAssertEqual(Shrink.defaultLayers(teacher: 8, student: 1), [0])
  }

  func testCopiesChosenLayersBitEqual() throws {
    let teacher = try modelFolder("minilm")
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("shrink-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: out) }
    try Shrink.makeStudent(teacher: teacher, layers: [0, 2, 5], output: out)
    let t = try SafeTensorsFile(path: teacher.appendingPathComponent("model.safetensors").path)
    let s = try SafeTensorsFile(path: out.appendingPathComponent("model.safetensors").path)
    XCTAssertEqual(try Shrink.layerCount(s), 3)
    for (studentLayer, teacherLayer) in [(0, 0), (1, 2), (2, 5)] {
      for suffix in ["attention.self.query.weight", "intermediate.dense.bias", "output.LayerNorm.weight"] {
        XCTAssertEqual(try s.tensor("encoder.layer.\(studentLayer).\(suffix)").scalars,
                       try t.tensor("encoder.layer.\(teacherLayer).\(suffix)").scalars, "layer \(studentLayer) <- \(teacherLayer) \(suffix)")
      }
    }
    XCTAssertEqual(try s.tensor("embeddings.word_embeddings.weight").scalars, try t.tensor("embeddings.word_embeddings.weight").scalars)
    XCTAssertEqual(try s.tensor("pooler.dense.weight").scalars, try t.tensor("pooler.dense.weight").scalars)
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
    XCTAssertEqual(config["num_hidden_layers"] as? Int, 3)
    XCTAssertEqual((config["init_metadata"] as? [String: Any])?["copied_layers"] as? [Int], [0, 2, 5])
  }

  func testStudentWithAllLayersGivesTheTeachersLogits() throws {
    let base = try modelFolder("minilm")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shrink-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let (clf, tokenizer, _) = try ModelFolder.loadClassifier(base, numLabels: 3, seed: 4)
    let teacher = dir.appendingPathComponent("teacher"), student = dir.appendingPathComponent("student")
    try ModelFolder.save(clf, labels: ["a", "b", "c"], source: base, to: teacher)
    try Shrink.makeStudent(teacher: teacher, layers: Array(0..<6), output: student)
    let (t, _, _) = try ModelFolder.loadClassifier(teacher, numLabels: 3)
    let (s, _, report) = try ModelFolder.loadClassifier(student, numLabels: 3)
    XCTAssertTrue(report.initialisedFresh.isEmpty, "the head is copied")
    let batch = TokenBatch(["a fine film", "not my kind of movie at all"].map { tokenizer.encode($0) }, tokenizer: tokenizer)
    XCTAssertEqual(withoutGrad { s(batch, rng: nil) }.scalars, withoutGrad { t(batch, rng: nil) }.scalars)
  }

  func testBadLayerChoices() {
    XCTAssertThrowsError(try Shrink.validate([0, 12], teacherLayers: 12)) { XCTAssertEqual($0 as? ShrinkError, .layerOutOfRange(12, layers: 12)) }
    XCTAssertThrowsError(try Shrink.validate([0, 6, 6], teacherLayers: 12)) { XCTAssertEqual($0 as? ShrinkError, .notIncreasing([0, 6, 6])) }
    XCTAssertThrowsError(try Shrink.validate([6, 0], teacherLayers: 12))
    XCTAssertThrowsError(try Shrink.validate([], teacherLayers: 12))
    XCTAssertThrowsError(try Shrink.validate([-1], teacherLayers: 12))
  }
}
