import BonsaiEngine
import BonsaiNN
import XCTest

final class OptimizerTests: XCTestCase {
  /// Two AdamW steps against the closed form of torch.optim.AdamW.
  func testAdamWMatchesPyTorchFormula() {
    let w = Tensor([1, -2, 0.5] + [Float](repeating: 0.25, count: 29), shape: [32], requiresGrad: true)
    let b = Tensor([0.1], shape: [1], requiresGrad: true)
    let opt = AdamW([("layer.weight", w), ("layer.bias", b)], learningRate: 0.1, weightDecay: 0.01)
    var ref = Double(w.data[1]), m = 0.0, v = 0.0
    for step in 1...2 {
      let g = step == 1 ? 0.5 : -1.5
      w.grad = Tensor([Float](repeating: Float(g), count: 32), shape: [32])
      b.grad = Tensor([Float(g)], shape: [1])
      opt.update()
      m = 0.9 * m + 0.1 * g; v = 0.999 * v + 0.001 * g * g
      let mh = m / (1 - pow(0.9, Double(step))), vh = v / (1 - pow(0.999, Double(step)))
      ref = ref * (1 - 0.1 * 0.01) - 0.1 * mh / (vh.squareRoot() + 1e-8)
    }
    XCTAssertEqual(Double(w.data[1]), ref, accuracy: 1e-5)
    XCTAssertEqual(Double(w.data[20]), Double(w.data[31]), accuracy: 0)  // vector body == scalar tail
  }

  /// Updating each parameter during the backward pass, when its gradient is complete, gives bitwise the
  /// update after the pass, also for a parameter used twice (a tied embedding); each sink fires once.
  func testUpdatesDuringBackwardEqualUpdateAfter() {
    func make() -> (w: Tensor, v: Tensor, opt: AdamW) {
      let rng = RandomSource(seed: 5)
      let w = rng.normalTensor([24, 24], std: 0.3).requiringGrad(true), v = rng.normalTensor([24, 24], std: 0.3).requiringGrad(true)
      return (w, v, AdamW([("w", w), ("norm.weight", v)], learningRate: 0.05, weightDecay: 0.1))
    }
    let x = RandomSource(seed: 6).normalTensor([7, 24], std: 1)
    func loss(_ w: Tensor, _ v: Tensor) -> Tensor {
      let y = x.linear(weight: w, bias: nil).linear(weight: v, bias: nil).linear(weight: w, bias: nil)  // w used twice
      return (y * y).sum()
    }
    let after = make(), during = make()
    var fired: [Int] = []
    for _ in 0..<3 {
      loss(after.w, after.v).backward()
      after.opt.update()
      Tensor.clearGrad([after.w, after.v])
      during.opt.beginStep()
      Tensor.gradientSinks = during.opt.updatingDuringBackward().enumerated().map { i, sink in
        (sink.0, { g in fired.append(i); sink.1(g) })
      }
      loss(during.w, during.v).backward()
      Tensor.gradientSinks = []
      XCTAssertNil(during.w.grad)
    }
    XCTAssertEqual(fired, [1, 0, 1, 0, 1, 0])  // v completes first (the last use of w comes first in backward)
    XCTAssertEqual(during.w.scalars, after.w.scalars)
    XCTAssertEqual(during.v.scalars, after.v.scalars)
    XCTAssertNotEqual(after.w.scalars, make().w.scalars)
  }

  /// AdamW's row sinks update a parameter a block of rows at a time exactly as one update of the whole gradient
  /// (blocks that cut the vector body of 16 anywhere).
  func testAdamWUpdatedByRowBlocksEqualsTheWholeUpdate() {
    let rng = RandomSource(seed: 9)
    let grads = (0..<2).map { _ in rng.normalTensor([13, 7], std: 0.5) }
    func make() -> (w: Tensor, opt: AdamW) {
      let w = RandomSource(seed: 3).normalTensor([13, 7], std: 0.3).requiringGrad(true)
      return (w, AdamW([("embed_tokens.weight", w)], learningRate: 0.01, weightDecay: 0.1))
    }
    let whole = make(), byRows = make()
    for g in grads {
      whole.opt.beginStep()
      whole.opt.update(0, gradient: g)
      byRows.opt.beginStep()
      let sink = byRows.opt.updatingRowsDuringBackward()[0].1
      for rows in [0..<3, 3..<8, 8..<13] { sink(rows, g.data + rows.lowerBound * 7) }
    }
    XCTAssertEqual(byRows.w.scalars, whole.w.scalars)
    XCTAssertNotEqual(whole.w.scalars, make().w.scalars)
  }

  func testParameterTreeNamesFollowProperties() {
    final class Inner: Module { let dense = Linear(2, 3, rng: RandomSource(seed: 1)) }
    final class Outer: Module {
      let layer = [Inner(), Inner()]
      let selfPart = Inner()
      override var keyOverrides: [String: String] { ["selfPart": "self"] }
    }
    let keys = Outer().namedParameters().map(\.key)
    XCTAssertEqual(keys, ["layer.0.dense.weight", "layer.0.dense.bias", "layer.1.dense.weight", "layer.1.dense.bias",
                          "self.dense.weight", "self.dense.bias"])
  }

  func testBackwardFreesAndAccumulates() {
    let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
    (x * x).sum().backward()
    (x * 2).sum().backward()
    XCTAssertEqual(x.grad!.scalars, [4, 6, 8])
  }
}
