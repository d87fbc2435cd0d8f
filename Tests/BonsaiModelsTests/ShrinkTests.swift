// Shrink and Fine-Tune student initialisation: exact copies, identity when all layers are kept, clear errors.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiModels
import BonsaiNN
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

  /// A random 6-layer teacher with tiny-llama's shapes and tokenizer, as a GGUF file (F32) in `dir`.
  func sixLayerTeacher(in dir: URL) throws -> (model: LlamaForCausalLM, gguf: URL) {
    let fixture = try XCTUnwrap(Bundle.module.url(forResource: "tiny-llama", withExtension: nil, subdirectory: "Fixtures"))
    let (tiny, tokenizer) = try DecoderCheckpoint.load(fixture)
    var c = tiny.config
    c.numHiddenLayers = 6
    let model = LlamaForCausalLM(config: c, seed: 7)
    for (key, t) in model.namedParameters() where key.hasSuffix("norm.weight") {  // norms away from 1, so a copy is visible
      t.copyValues(from: Tensor((0..<t.count).map { 1 + 0.01 * Float($0 % 7) + 0.1 * Float(key.count % 5) }, shape: t.shape))
    }
    let gguf = dir.appendingPathComponent("teacher.gguf")
    try DecoderCheckpoint.saveGGUF(model, tokenizer: tokenizer, to: gguf.path, dtype: "f32")
    return (model, gguf)
  }

  func testDecoderStudentFromAGGUFCopiesItsLayersAndExports() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shrink-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let (teacher, gguf) = try sixLayerTeacher(in: dir)
    let out = dir.appendingPathComponent("student")
    try Shrink.makeDecoderStudent(teacher: gguf, layers: [0, 2, 5], output: out)
    let (student, tokenizer) = try DecoderCheckpoint.load(out)
    XCTAssertEqual(student.config.numHiddenLayers, 3)
    let t = Dictionary(uniqueKeysWithValues: teacher.namedParameters().map { ($0.key, $0.tensor.scalars) })
    for (key, tensor) in student.namedParameters() {
      var from = key
      for (j, i) in [(0, 0), (1, 2), (2, 5)] where key.hasPrefix("model.layers.\(j).") {
        from = "model.layers.\(i)." + key.dropFirst("model.layers.\(j).".count)
      }
      XCTAssertEqual(tensor.scalars, t[from], "\(key) <- \(from)")
    }
    let config = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("config.json"))) as! [String: Any]
    XCTAssertEqual((config["init_metadata"] as? [String: Any])?["copied_layers"] as? [Int], [0, 2, 5])
    // every layer kept: the teacher's logits; the student exports to GGUF and reads back the same
    let whole = dir.appendingPathComponent("whole")
    try Shrink.makeDecoderStudent(teacher: gguf, layers: Array(0..<6), output: whole)
    let x = TokenBatch(batch: 1, tokens: 5, ids: [3, 17, 42, 8, 99])
    XCTAssertEqual(withoutGrad { try! DecoderCheckpoint.load(whole).0(x) }.scalars, withoutGrad { teacher(x) }.scalars)
    let exported = dir.appendingPathComponent("student.gguf")
    try DecoderCheckpoint.saveGGUF(student, tokenizer: tokenizer, to: exported.path, dtype: "f32")
    XCTAssertEqual(withoutGrad { try! DecoderCheckpoint.load(exported).0(x) }.scalars, withoutGrad { student(x) }.scalars)
    // random initialisation: the same shapes, transformers' statistics, norms 1
    let random = try Shrink.decoderStudent(of: teacher, layers: [0, 5], randomInit: true, seed: 3)
    let q = try XCTUnwrap(random.namedParameters().first { $0.key == "model.layers.1.self_attn.q_proj.weight" }).tensor.scalars
    let std = (q.map { Double($0 * $0) }.reduce(0, +) / Double(q.count)).squareRoot()
    XCTAssertEqual(std, 0.02, accuracy: 0.002)
    XCTAssertEqual(Set(try XCTUnwrap(random.namedParameters().first { $0.key == "model.norm.weight" }).tensor.scalars), [1])
  }

  func testBlockInfluenceDropsALayerThatChangesNothing() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shrink-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let (teacher, _) = try sixLayerTeacher(in: dir)
    // layer 3 adds nothing to the residual stream: its output is its input
    for (key, t) in teacher.namedParameters() where key.hasPrefix("model.layers.3.") && (key.contains("o_proj") || key.contains("down_proj")) {
      t.mutableData.update(repeating: 0, count: t.count)
    }
    let bi = Shrink.blockInfluence(teacher, samples: [[3, 17, 42, 8, 99, 5], [11, 12, 13]])
    XCTAssertEqual(bi.count, 6)
    XCTAssertLessThan(bi[3], 1e-5, "\(bi)")
    for (l, v) in bi.enumerated() where l != 3 { XCTAssertGreaterThan(v, 1e-3, "layer \(l): \(bi)") }
    XCTAssertFalse(Shrink.influentialLayers(bi, count: 5).contains(3))
    XCTAssertEqual(Shrink.influentialLayers([0.3, 0.1, 0.5, 0.2], count: 2), [0, 2], "the largest, in order")
  }
}
