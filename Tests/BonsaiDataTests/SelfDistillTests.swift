// Self-distillation from the previous mini-batch (DynSDPB / DLB): sampler, loss against PyTorch, the
// dynamic rule by hand, and alpha = 0 equal to plain fine-tuning on the same batches.
import BonsaiData
import BonsaiEngine
import BonsaiTraining
import Foundation
import XCTest

final class SelfDistillTests: XCTestCase {
  struct SDGolden: Decodable {
    let logits: [[Double]], previous: [[Double]], labels: [Int], alpha0: Double, t_min: Double, t_max: Double, t_static: Double
    let uncertainty: [Double], discrimination: [Double], alpha: [Double], temperature: [Double]
    let dynamic_loss: Double, dynamic_grad: [[Double]], static_loss: Double, static_grad: [[Double]]
  }
  struct Golden: Decodable { let dynsdpb: SDGolden }

  func testSamplerRepeatsExactlyThePreviousStepsExamples() {
    let indices = Array(0..<37), lengths = (0..<37).map { 5 + $0 % 7 }
    let batches = repeatHalfBatches(indices, lengths: lengths, batchSize: 8, seed: 3, epoch: 1)
    XCTAssertEqual(batches.count, 10, "37 examples in chunks of 4")
    XCTAssertTrue(batches[0].repeated.isEmpty, "the first step has nothing to repeat")
    for t in 1..<batches.count { XCTAssertEqual(batches[t].repeated, batches[t - 1].new, "step \(t) repeats step \(t - 1)'s new examples") }
    XCTAssertEqual(batches.flatMap(\.new).sorted(), indices, "every example is new exactly once per epoch")
    XCTAssertTrue(batches.allSatisfy { $0.new.count + $0.repeated.count <= 8 })
    XCTAssertEqual(repeatHalfBatches(indices, lengths: lengths, batchSize: 8, seed: 3, epoch: 1).map(\.new),
                   batches.map(\.new), "reproducible from (seed, epoch)")
  }

  func testLossAndGradientMatchPyTorch() throws {
    let url = Bundle.module.url(forResource: "methods-golden", withExtension: "json", subdirectory: "Fixtures")!
    let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url)).dynsdpb
    let previous = g.previous.map { $0.map(Float.init) }
    for rule in ["dynamic", "static"] {
      var c = SelfDistillConfig()
      c.rule = rule; c.alpha = Float(g.alpha0); c.tMin = Float(g.t_min); c.tMax = Float(g.t_max); c.temperature = Float(g.t_static)
      let (alpha, temperature) = SelfDistillation.weights(previous: previous, labels: Array(g.labels.prefix(4)), config: c)
      if rule == "dynamic" {
        for i in 0..<4 {
          XCTAssertEqual(Double(alpha[i]), g.alpha[i], accuracy: 1e-6, "alpha \(i)")
          XCTAssertEqual(Double(temperature[i]), g.temperature[i], accuracy: 1e-6, "T \(i)")
        }
      } else {
        XCTAssertEqual(alpha, [Float](repeating: Float(g.alpha0), count: 4)); XCTAssertEqual(temperature, [Float](repeating: Float(g.t_static), count: 4))
      }
      let z = Tensor(g.logits.flatMap { $0.map(Float.init) }, shape: [6, 3], requiresGrad: true)
      let loss = Tensor.crossEntropy(logits: z, labels: g.labels)
        + SelfDistillation.loss(current: z.gatherRows(Array(0..<4)), previous: previous, alpha: alpha, temperature: temperature)
      loss.backward()
      XCTAssertEqual(Double(loss.item), rule == "dynamic" ? g.dynamic_loss : g.static_loss, accuracy: 1e-5, rule)
      let want = (rule == "dynamic" ? g.dynamic_grad : g.static_grad).flatMap { $0 }
      let worst = zip(z.grad!.scalars, want).map { abs(Double($0) - $1) }.max()!
      XCTAssertLessThan(worst, 1e-5, "\(rule) gradient")
    }
  }

  func testDynamicRuleByHand() {
    var c = SelfDistillConfig()
    c.alpha = 0.5; c.tMin = 1; c.tMax = 5
    // an undecided previous prediction: u = 1 -> alpha 0, T = T_min
    // a sure and right one: u ~ 0, d ~ 1 -> alpha ~ alpha0, T ~ T_max; sure and wrong: d ~ -1 -> alpha ~ 0
    // p = (0.75, 0.25) with gold 0: u = H / log 2, d = 0.5
    let p0 = Float(log(3.0))
    let (a, t) = SelfDistillation.weights(previous: [[0, 0], [30, -30], [30, -30], [p0, 0]], labels: [1, 0, 1, 0], config: c)
    XCTAssertEqual(a[0], 0, accuracy: 1e-7); XCTAssertEqual(t[0], 1, accuracy: 1e-6)
    XCTAssertEqual(a[1], 0.5, accuracy: 1e-6); XCTAssertEqual(t[1], 5, accuracy: 1e-5)
    XCTAssertEqual(a[2], 0, accuracy: 1e-6)
    let u = -(0.75 * log(0.75) + 0.25 * log(0.25)) / log(2.0)
    XCTAssertEqual(Double(a[3]), 0.5 * (1 - u) * 1.5 / 2, accuracy: 1e-6)
    XCTAssertEqual(Double(t[3]), 1 + 4 * (1 - u), accuracy: 1e-5)
  }

  func testAlphaZeroIsPlainFineTuningStepForStep() throws {
    let tmp = try makeTemporaryFolder("sd")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    var c = TrainConfig(model: minilm.path, data: try writeTinyCSV(in: tmp))
    c.epochs = 1; c.batchSize = 8; c.maxLength = 16; c.threads = 2; c.batchSampler = "repeat-half"
    try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("plain")).run(resume: false)
    var sd = SelfDistillConfig()
    sd.alpha = 0
    c.selfDistill = sd
    try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("sd0")).run(resume: false)
    func losses(_ run: String) throws -> [Double] {
      try String(contentsOf: tmp.appendingPathComponent("\(run)/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        .compactMap { (try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["loss"] as? Double }
    }
    XCTAssertEqual(try losses("sd0"), try losses("plain"), "the same loss at every step")
    XCTAssertGreaterThan(try losses("plain").count, 5)
    XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("sd0/final/model.safetensors")),
                   try Data(contentsOf: tmp.appendingPathComponent("plain/final/model.safetensors")), "bit-equal weights")
    // with alpha > 0 the run differs, and its metrics carry the mean alpha and temperature
    c.selfDistill!.alpha = 1; c.evalEvery = 3
    let sd1 = tmp.appendingPathComponent("sd1")
    try Trainer(config: c, modelFolder: minilm, runDir: sd1).run(resume: false)
    // a run stopped mid-epoch resumes with the kept logits and ends bit-equal
    let cut = tmp.appendingPathComponent("cut")
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "3", 1)
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: cut).run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    try Trainer(config: c, modelFolder: minilm, runDir: cut).run(resume: true)
    XCTAssertEqual(try Data(contentsOf: cut.appendingPathComponent("final/model.safetensors")),
                   try Data(contentsOf: sd1.appendingPathComponent("final/model.safetensors")), "resumed = uninterrupted")
    let lines = try String(contentsOf: sd1.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    XCTAssertNil(lines.first { ($0["step"] as? Int) == 1 && $0["loss"] != nil }?["sd_alpha"], "step 1 has nothing to repeat")
    XCTAssertNotNil(lines.first { ($0["step"] as? Int) == 2 && $0["loss"] != nil }?["sd_temperature"])
    XCTAssertNotEqual(try losses("sd1").dropFirst().first, try losses("plain").dropFirst().first)
    XCTAssertTrue(try String(contentsOf: sd1.appendingPathComponent("learning-curve.svg"), encoding: .utf8).contains("mean alpha"))
  }
}
