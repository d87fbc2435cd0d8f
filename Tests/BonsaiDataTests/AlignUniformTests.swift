// Alignment/uniformity distillation's loss against PyTorch (scripts/make-golden-align-uniform.py, the
// official code's formulas in float64): the projected features, the loss and the gradients with respect to
// both features and every projector parameter; a random-init student distilled with it across widths trains
// both projectors, checkpoints them and resumes exactly.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation
import XCTest

final class AlignUniformTests: XCTestCase {
  func testLossAndGradientsEqualPyTorch() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/align-uniform-golden.json")
    let g = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    func floats(_ key: String) throws -> [Float] { try XCTUnwrap(g[key] as? [Double], key).map(Float.init) }
    let b = try XCTUnwrap(g["batch"] as? Int), ds = try XCTUnwrap(g["student_width"] as? Int), dt = try XCTUnwrap(g["teacher_width"] as? Int)
    let out = try XCTUnwrap(g["out"] as? Int)
    let fs = Tensor(try floats("student_features"), shape: [b, ds]).requiringGrad(), ft = Tensor(try floats("teacher_features"), shape: [b, dt]).requiringGrad()
    let rng = RandomSource(seed: 1)
    let ps = AlignUniformProjector(width: ds, out: out, rng: rng), pt = AlignUniformProjector(width: dt, out: out, rng: rng)
    let params = ps.projectorParameters(prefix: "student.") + pt.projectorParameters(prefix: "teacher.")
    for (key, t) in params { let v = try floats(key); XCTAssertEqual(v.count, t.count, key); t.mutableData.update(from: v, count: v.count) }
    let s = ps(fs), t = pt(ft)
    let align = DistillationLoss.alignment(s, t).item, uniform = (DistillationLoss.uniformity(s).item + DistillationLoss.uniformity(t).item) / 2
    XCTAssertEqual(Double(align), try XCTUnwrap(g["align"] as? Double), accuracy: 1e-5)
    XCTAssertEqual(Double(uniform), try XCTUnwrap(g["uniform"] as? Double), accuracy: 1e-5)
    let loss = DistillationLoss.alignUniform(student: s, teacher: t), expectedLoss = try XCTUnwrap(g["loss"] as? Double)
    XCTAssertEqual(Double(loss.item), expectedLoss, accuracy: 1e-5)
    loss.backward()
    var worstGradient: Float = 0
    for (key, tensor) in [("student_features", fs), ("teacher_features", ft)] + params.map({ ($0.key, $0.tensor) }) {
      let expected = try floats("grad_" + key), got = try XCTUnwrap(tensor.grad, key).scalars
      let scale = expected.map { abs($0) }.max() ?? 1
      for (x, y) in zip(got, expected) {
        XCTAssertEqual(x, y, accuracy: 1e-5 * max(scale, 1), "d loss / d \(key)")
        worstGradient = max(worstGradient, abs(x - y) / max(scale, 1))
      }
    }
    print("align-uniform against PyTorch (float64): |loss error| \(abs(Double(loss.item) - expectedLoss)), "
      + "largest gradient error relative to its tensor's largest entry (at least 1) \(worstGradient)")
  }

  func testARandomInitStudentDistilsWithAlignUniformAndResumesExactly() throws {
    let tmp = try makeTemporaryFolder("align-uniform")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    let teacher = tmp.appendingPathComponent("teacher"), student = tmp.appendingPathComponent("student")
    let (clf, _, _) = try ModelFolder.loadClassifier(minilm, numLabels: 2, seed: 1)
    try ModelFolder.save(clf, labels: ["neg", "pos"], source: minilm, to: teacher)
    try RandomInit.makeBERT(like: minilm, shape: RandomInit.Shape(layers: 2, hidden: 96, heads: 3), seed: 5, output: student)
    var c = TrainConfig(model: student.path, data: try writeTinyCSV(in: tmp, count: 40))
    c.epochs = 3; c.batchSize = 8; c.maxLength = 16; c.learningRate = 3e-4; c.threads = 2
    var d = DistillConfig(teacher: teacher.path)
    d.alphaCE = 1; d.alphaKD = 1; d.temperature = 4; d.alignUniform = AlignUniformConfig()
    c.distill = d
    let whole = tmp.appendingPathComponent("whole"), cut = tmp.appendingPathComponent("cut")
    try Trainer(config: c, modelFolder: student, runDir: whole).run(resume: false)
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "4", 1)
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: student, runDir: cut).run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    try Trainer(config: c, modelFolder: student, runDir: cut).run(resume: true)
    let file = { (run: URL, path: String) in try Data(contentsOf: run.appendingPathComponent(path)) }
    XCTAssertEqual(try file(cut, "final/model.safetensors"), try file(whole, "final/model.safetensors"), "resumed = uninterrupted, bit for bit")
    XCTAssertEqual(try file(cut, "checkpoint-last/align_uniform.safetensors"), try file(whole, "checkpoint-last/align_uniform.safetensors"),
                   "both projectors resumed exactly")
    XCTAssertEqual(try metricsWithoutTimes(cut), try metricsWithoutTimes(whole))
    let keys = try SafeTensorsFileProbe.keys(whole.appendingPathComponent("checkpoint-last/align_uniform.safetensors"))
    XCTAssertEqual(keys.count, 8); XCTAssertTrue(keys.contains("align_uniform.teacher.projector.2.weight"))
    XCTAssertFalse(try SafeTensorsFileProbe.keys(whole.appendingPathComponent("final/model.safetensors")).contains { $0.hasPrefix("align") },
                   "the exported student holds no projector")
    let steps = try metricsWithoutTimes(whole).compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["loss"] != nil }
    XCTAssertEqual(steps.count, 12, "3 epochs of 4 batches")
    for s in steps {
      let align = try XCTUnwrap(s["align_loss"] as? Double), uniform = try XCTUnwrap(s["uniform_loss"] as? Double)
      XCTAssertTrue((0...4).contains(align), "unit vectors are at most 2 apart: \(align)")
      XCTAssertTrue((-4...0).contains(uniform), "log of a mean of exp(-2 d^2) with d^2 <= 4: \(uniform)")
    }
    XCTAssertLessThan(try XCTUnwrap(steps.last?["align_loss"] as? Double), try XCTUnwrap(steps.first?["align_loss"] as? Double), "the projections align")
  }
}
