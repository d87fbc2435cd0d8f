// SIFT and LoRA: top-k selection, a SIFT step against PyTorch's AdamW restricted to the mask, frozen
// components bit-equal after training, deltas that rebuild the trained model exactly, LoRA merge = unmerged.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import BonsaiTraining
import Foundation
import XCTest

final class SparseTests: XCTestCase {
  struct SIFTGolden: Decodable {
    let weight: [[Double]], select_grad: [[Double]], grads: [[[Double]]], rate: Double, lr: Double, weight_decay: Double
    let indices: [Int], expected: [[Double]]
  }
  struct Golden: Decodable { let sift: SIFTGolden }

  func tensor(_ rows: [[Double]], grad: Bool = false) -> Tensor {
    Tensor(rows.flatMap { $0.map(Float.init) }, shape: [rows.count, rows[0].count], requiresGrad: grad)
  }

  func testTopKByHand() {
    XCTAssertEqual(SparseAdamW.topK([0.1, 0.9, 0.3, 0.9, 0.05, 0.7], 3), [1, 3, 5])
    XCTAssertEqual(SparseAdamW.topK([0.5, 0.5, 0.5, 0.5], 2), [0, 1], "ties go to the lower index")
    XCTAssertEqual(SparseAdamW.topK([2, 1], 2), [0, 1])
  }

  func testSIFTStepEqualsMaskedDenseAdamWFromPyTorch() throws {
    let url = Bundle.module.url(forResource: "methods-golden", withExtension: "json", subdirectory: "Fixtures")!
    let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url)).sift
    let w = tensor(g.weight, grad: true)
    let sparse = SparseAdamW([("layer.query.weight", w)], rate: g.rate, learningRate: Float(g.lr), weightDecay: Float(g.weight_decay))
    sparse.attach()
    defer { sparse.detach() }
    // d/dW sum(W * G) = G: the backward pass hands G to the sink, never to w.grad
    func backward(_ grad: [[Double]]) { (w * tensor(grad)).sum().backward(); XCTAssertNil(w.grad, "the dense gradient is not kept") }
    sparse.beginSelection()
    backward(g.select_grad)
    sparse.endSelection()
    XCTAssertEqual(sparse.entries[0].indices.map(Int.init), g.indices, "top-k of |gradient| of the selecting batch")
    XCTAssertEqual(sparse.entries[0].k, g.indices.count)
    let before = w.scalars
    for grad in g.grads { backward(grad); sparse.update() }
    let want = g.expected.flatMap { $0 }
    for i in 0..<w.count {
      if g.indices.contains(i) { XCTAssertEqual(Double(w.scalars[i]), want[i], accuracy: 1e-6, "component \(i)") }
      else { XCTAssertEqual(w.scalars[i], before[i], "unselected component \(i) is bit-equal") }
    }
    XCTAssertEqual(sparse.stateBytes, 12 * g.indices.count)
  }

  func testLoRAMergeEqualsUnmergedForward() throws {
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    let (model, tokenizer, _) = try ModelFolder.loadClassifier(minilm, numLabels: 2, seed: 5)
    let batch = TokenBatch(["a fine film", "not my kind of movie at all"].map { tokenizer.encode($0) }, tokenizer: tokenizer)
    let rng = RandomSource(seed: 9)
    var merged: [(Linear, Tensor)] = []
    for (key, linear) in model.namedLinears() where key.hasSuffix("query") || key.hasSuffix("value") || key.hasSuffix("output.dense") {
      let lora = LoRA(inFeatures: linear.weight.shape[1], outFeatures: linear.weight.shape[0], rank: 4, alpha: 8, rng: rng)
      rng.fillNormal(lora.B.mutableData, count: lora.B.count, std: 0.05)  // a trained-looking B (it starts at 0)
      linear.adapter.lora = lora
      merged.append((linear, lora.merged(into: linear.weight)))
    }
    XCTAssertEqual(merged.count, 24, "query, value, attention output and FFN output of 6 layers")
    let unmerged = withoutGrad { model(batch, rng: nil) }.scalars
    for (linear, w) in merged { linear.adapter.lora = nil; linear.weight.mutableData.update(from: w.data, count: w.count) }
    let mergedOut = withoutGrad { model(batch, rng: nil) }.scalars
    let worst = zip(unmerged, mergedOut).map { abs($0 - $1) }.max()!
    XCTAssertLessThan(worst, 1e-5)
    XCTAssertGreaterThan(zip(unmerged, withoutGrad { try! ModelFolder.loadClassifier(minilm, numLabels: 2, seed: 5).0(batch, rng: nil) }.scalars)
      .map { abs($0 - $1) }.max()!, 1e-4, "the adapters changed the output (the test is not vacuous)")
  }

  func testSIFTAndLoRARunsFreezeTheRestAndTheirDeltasRebuildTheModel() throws {
    let tmp = try makeTemporaryFolder("sparse")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    let base = try SafeTensorsFile(path: minilm.appendingPathComponent("model.safetensors").path)
    var c = TrainConfig(model: minilm.path, data: try writeTinyCSV(in: tmp))
    c.epochs = 1; c.batchSize = 8; c.maxLength = 16; c.learningRate = 1e-3; c.threads = 2
    c.method = "sift"; c.sift = SIFTConfig(); c.sift!.rate = 0.01; c.sift!.reselectEvery = 2
    let run = tmp.appendingPathComponent("sift")
    let summary = try Trainer(config: c, modelFolder: minilm, runDir: run).run(resume: false)
    XCTAssertEqual(summary["method"] as? String, "sift")
    let trained = try SafeTensorsFile(path: run.appendingPathComponent("final/model.safetensors").path)
    let delta = try SafeTensorsFile(path: run.appendingPathComponent("final/sift_delta.safetensors").path)
    var sparseKeys = 0, changed = 0
    for key in trained.keys where !key.hasPrefix("classifier") {
      let baseKey = base.keys.contains(key) ? key : String(key.dropFirst("bert.".count))
      let a = try trained.tensor(key).scalars, b = try base.tensor(baseKey).scalars
      if delta.keys.contains(key + ".indices") {
        sparseKeys += 1
        let allowed = Set(try delta.int32s(key + ".indices").map(Int.init))
        XCTAssertGreaterThanOrEqual(allowed.count, Int(0.01 * Double(a.count)) + 1, "k, or more after a reselection")
        XCTAssertLessThanOrEqual(allowed.count, 3 * (Int(0.01 * Double(a.count)) + 1), "at most the selection and two reselections")
        for i in 0..<a.count where a[i] != b[i] {
          changed += 1
          XCTAssertTrue(allowed.contains(i), "\(key)[\(i)] changed outside every selected set")
          if !allowed.contains(i) { break }
        }
      } else {
        XCTAssertEqual(a, b, "\(key) is frozen: bit-equal to the base")
      }
    }
    XCTAssertEqual(sparseKeys, 36, "query, key, value, attention output, intermediate and output matrices of 6 layers")
    XCTAssertGreaterThan(changed, 0)
    // the optimizer state is ~1% of dense AdamW's
    let dense = 8 * (summary["parameters"] as! Int)
    XCTAssertLessThan(Double(summary["optimizer_state_bytes"] as! Int), 0.03 * Double(dense))
    // the delta applied to the base gives the trained model exactly
    let rebuilt = tmp.appendingPathComponent("rebuilt")
    try Delta.apply(base: minilm, delta: run.appendingPathComponent("final/sift_delta.safetensors"), output: rebuilt)
    XCTAssertEqual(try Data(contentsOf: rebuilt.appendingPathComponent("model.safetensors")),
                   try Data(contentsOf: run.appendingPathComponent("final/model.safetensors")))

    // LoRA: the exported model is merged; the adapters alone rebuild it
    c.method = "lora"; c.sift = nil; c.lora = LoRAConfig()
    let lora = tmp.appendingPathComponent("lora")
    try Trainer(config: c, modelFolder: minilm, runDir: lora).run(resume: false)
    let rebuiltLoRA = tmp.appendingPathComponent("rebuilt-lora")
    try Delta.apply(base: minilm, delta: lora.appendingPathComponent("final/adapter_model.safetensors"), output: rebuiltLoRA)
    XCTAssertEqual(try Data(contentsOf: rebuiltLoRA.appendingPathComponent("model.safetensors")),
                   try Data(contentsOf: lora.appendingPathComponent("final/model.safetensors")))
    let loraModel = try SafeTensorsFile(path: lora.appendingPathComponent("final/model.safetensors").path)
    XCTAssertEqual(try loraModel.tensor("bert.encoder.layer.0.attention.self.key.weight").scalars,
                   try base.tensor("encoder.layer.0.attention.self.key.weight").scalars, "non-target weights stay frozen")
    XCTAssertNotEqual(try loraModel.tensor("bert.encoder.layer.0.attention.self.query.weight").scalars,
                      try base.tensor("encoder.layer.0.attention.self.query.weight").scalars, "target weights hold the merged update")

    // bad input: a delta applied to another base, a ratio out of range, targets that match nothing
    let other = tmp.appendingPathComponent("other-base")
    try ModelFolder.save(try ModelFolder.loadClassifier(minilm, numLabels: 2, seed: 99).0, labels: ["neg", "pos"], source: minilm, to: other)
    XCTAssertThrowsError(try Delta.apply(base: other, delta: run.appendingPathComponent("final/sift_delta.safetensors"), output: tmp.appendingPathComponent("x"))) {
      guard case .deltaBaseMismatch = $0 as? MethodError else { return XCTFail("\($0)") }
    }
    c.method = "sift"; c.lora = nil; c.sift = SIFTConfig(); c.sift!.rate = 1.5
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("bad1")).run(resume: false)) {
      XCTAssertEqual($0 as? MethodError, .badRate(1.5))
    }
    c.sift!.rate = 0.01; c.sift!.targets = ["nonexistent"]
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("bad2")).run(resume: false)) {
      XCTAssertEqual($0 as? MethodError, .noMatch(option: "--sparse-target", targets: ["nonexistent"]))
    }
    c.sift!.targets = nil; c.gradientCheckpointing = .input  // decoders only: refused, not silently ignored
    XCTAssertThrowsError(try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("bad3")).run(resume: false)) {
      XCTAssertEqual($0.localizedDescription.contains("--gradient-checkpointing and --selective-checkpointing are available for decoders only"), true, $0.localizedDescription)
    }
  }
}
