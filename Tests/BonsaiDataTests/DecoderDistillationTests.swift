// Distillation into a decoder student: token-level logit KD (top-k rows + one bucket) against PyTorch's
// KL, the teacher's top-k cache written once and read back the same, and a shrunk student trained with
// logit KD, hidden-state KD and pseudo-labels that resumes exactly.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation
import XCTest

extension DistillationTests {
  func testTokenLogitKDWithEveryTokenKeptIsPyTorchsKD() throws {
    let url = Bundle.module.url(forResource: "distill-golden", withExtension: "json", subdirectory: "Fixtures")!
    let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    var c = SelfDistillConfig()
    c.rule = "static"; c.alpha = 1; c.temperature = Float(g.temperature)
    let V = g.teacher[0].count
    let rows = g.teacher.map { z in z.map(Float.init).withUnsafeBufferPointer { TokenSelfDistillation.row($0, target: 0, k: V, config: c) } }
    let s = tensor(g.student, grad: true)
    let kd = TokenSelfDistillation.loss(current: s, rows: rows)
    XCTAssertEqual(Double(kd.item), g.kd, accuracy: 1e-5, "T^2 KL(teacher || student), batch mean")
    print("token KD (every token kept) against PyTorch: |loss error| \(abs(Double(kd.item) - g.kd))")
    kd.backward()
    assertClose(s.grad!, g.kd_grad, tolerance: 1e-5, "token KD gradient")

    // two tokens kept and the rest as one bucket: the gradient by central differences (Float64 sums of the loss)
    let kept = g.teacher.map { z in z.map(Float.init).withUnsafeBufferPointer { TokenSelfDistillation.row($0, target: 0, k: 2, config: c) } }
    let x = tensor(g.student, grad: true)
    TokenSelfDistillation.loss(current: x, rows: kept).backward()
    let values = g.student.flatMap { $0 }.map(Float.init)
    var worstDifference = 0.0
    for i in values.indices {
      func at(_ d: Float) -> Double {
        var v = values; v[i] += d
        return Double(withoutGrad { TokenSelfDistillation.loss(current: Tensor(v, shape: x.shape), rows: kept) }.item)
      }
      let numeric = (at(1e-2) - at(-1e-2)) / 2e-2
      XCTAssertEqual(Double(x.grad!.scalars[i]), numeric, accuracy: 2e-3, "element \(i)")
      worstDifference = max(worstDifference, abs(Double(x.grad!.scalars[i]) - numeric))
    }
    print("token KD (top-2 + bucket) gradient against central differences: largest difference \(worstDifference)")
  }
}

extension LanguageModelTests {
  func testDistillingAShrunkDecoderCachesItsTeacherAndResumesExactly() throws {
    let tmp = try makeTemporaryFolder("lmdistill")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let data = try writeSwaps(in: tmp)
    let teacher = modelFixture("tiny-llama"), student = tmp.appendingPathComponent("student")
    try Shrink.makeDecoderStudent(teacher: teacher, layers: [1], output: student)
    var c = config(data, model: student)
    c.epochs = 2; c.evalEvery = 0; c.generationTokens = 0
    c.distill = DistillConfig(teacher: teacher.path)
    c.distill!.alphaCE = 0.2; c.distill!.alphaKD = 0.8; c.distill!.alphaHidden = 1; c.distill!.pseudoLabels = true; c.distill!.topK = 4
    let whole = tmp.appendingPathComponent("whole"), cut = tmp.appendingPathComponent("cut")
    try Trainer(config: c, modelFolder: student, runDir: whole).run(resume: false)
    let losses = try stepLosses(whole)
    XCTAssertLessThan(losses.suffix(2).reduce(0, +), losses.prefix(2).reduce(0, +), "\(losses)")
    XCTAssertTrue(FileManager.default.fileExists(atPath: whole.appendingPathComponent("teacher_generations.jsonl").path))

    // the cache holds the teacher's rows of every training token, k of them each, and reads back the same
    let cache = try SafeTensorsFile(path: whole.appendingPathComponent("teacher_topk.safetensors").path)
    XCTAssertEqual(cache.metadata["k"], "4"); XCTAssertEqual(cache.metadata["teacher"], teacher.path)
    let split = try JSONDecoder().decode(Split.self, from: Data(contentsOf: whole.appendingPathComponent("split.json")))
    let cached = try DecoderDistillation.readTopK(cache, k: 4)
    XCTAssertEqual(Set(cached.keys), Set(split.train))
    XCTAssertTrue(cached.values.allSatisfy { $0.allSatisfy { $0.ids.count == 4 && $0.rest >= 0 && $0.temperature == 2 } })

    try stopAndResume(c, model: student, in: cut, afterStep: 5)
    XCTAssertEqual(try file(cut, "final/model.safetensors"), try file(whole, "final/model.safetensors"), "resumed = uninterrupted, bit for bit")
    XCTAssertEqual(try file(cut, "teacher_topk.safetensors"), try file(whole, "teacher_topk.safetensors"))
  }
}
