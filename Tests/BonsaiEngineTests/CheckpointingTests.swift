// Activation checkpointing: both policies give the gradients of the block on the tape, bit for bit.
import BonsaiEngine
import XCTest

final class CheckpointingTests: XCTestCase {
  override func setUp() { Engine.threads = 2 }

  /// A small decoder-like block: RMS norm, two products (one dense with a bias, one packed), SwiGLU,
  /// a product back, a residual sum.
  /// `unread`: the last product, which only the residual sum reads, is marked so (`Tensor.unreadByBackward`).
  func block(_ norm: Tensor, _ gate: Tensor, _ bias: Tensor, _ up: PackedMatrix, _ down: Tensor, unread: Bool = true) -> (Tensor) -> Tensor {
    { x in
      let h = x.rmsNorm(weight: norm, eps: 1e-5)
      let a = Tensor.swiglu(gate: h.linear(weight: gate, bias: bias), up: h.linear(packed: up, bias: nil))
      return x + (unread ? Tensor.unreadByBackward { a.linear(weight: down, bias: nil) } : a.linear(weight: down, bias: nil))
    }
  }

  func testBothPoliciesGiveTheGradientsOfTheTape() {
    // inner sizes above KeptProducts.cheapInner (64), so that the products are kept
    let norm = tensor([96], seed: 1), gate = tensor([128, 96], seed: 2, scale: 0.1), bias = tensor([128], seed: 3)
    let up = PackedMatrix(quantizing: tensor([128, 96], seed: 4, scale: 0.1, grad: false), to: .q8_0)
    let down = tensor([96, 128], seed: 5, scale: 0.1)
    let parameters = [norm, gate, bias, down]
    for rows in [5, 24] {  // a few rows take the small-product path without the tape; the kept products must not
      let body = block(norm, gate, bias, up, down)
      func gradients(_ policy: CheckpointPolicy?) -> [[Float]] {
        let x = tensor([rows, 96], seed: 9)
        // two blocks in a row: the second's input gradient flows into the first
        let y = policy.map { p in Tensor.checkpointed(Tensor.checkpointed(x, parameters: parameters, keeping: p, body), parameters: parameters, keeping: p, body) }
          ?? body(body(x))
        (y * y).sum().backward()
        defer { Tensor.clearGrad(parameters + [x]) }
        return (parameters + [x]).map { $0.grad!.scalars }
      }
      let tape = gradients(nil)
      for policy in CheckpointPolicy.allCases {
        let recomputed = gradients(policy)
        if rows > 8 { XCTAssertEqual(recomputed, tape, "\(policy), \(rows) rows"); continue }
        // without the tape a few rows take the decoding path (another order of sums; the packed product's input
        // in 16-bit codes): the same gradients up to that rounding (values up to ~8)
        for (r, t) in zip(recomputed, tape) { assertClose(Tensor(r, shape: [r.count]), t, atol: 1e-3) }
      }
    }
  }

  func testProductsAreKeptNotRecomputed() {
    // the replay hands back the forward pass's products: a weight changed in between leaves the
    // kept products as they were (so the input gradient through them is unchanged), while a block
    // that keeps only its input recomputes them from the new weight
    let w = tensor([8, 96], seed: 11, scale: 0.1), x = tensor([16, 96], seed: 12)
    func inputGradient(_ policy: CheckpointPolicy) -> [Float] {
      let y = Tensor.checkpointed(x, parameters: [w], keeping: policy) { $0.linear(weight: w, bias: nil).silu() }
      let saved = w.scalars
      w.mutableData.update(repeating: 0.5, count: w.count)
      y.sum().backward()
      w.copyValues(from: Tensor(saved, shape: w.shape))
      defer { Tensor.clearGrad([w, x]) }
      return x.grad!.scalars
    }
    let kept = inputGradient(.products), recomputed = inputGradient(.input)
    XCTAssertNotEqual(kept, recomputed, "the products were recomputed")
  }

  /// A product marked unread is not kept by a block keeping its products (its output's bytes are not held
  /// after the forward pass) and the gradients stay those of the tape (above).
  func testAProductUnreadByBackwardIsNotKept() {
    let norm = tensor([96], seed: 1), gate = tensor([128, 96], seed: 2, scale: 0.1), bias = tensor([128], seed: 3)
    let up = PackedMatrix(quantizing: tensor([128, 96], seed: 4, scale: 0.1, grad: false), to: .q8_0)
    let down = tensor([96, 128], seed: 5, scale: 0.1), rows = 64
    let x = tensor([rows, 96], seed: 9)
    func heldAfterForward(unread: Bool) -> Int {
      let before = liveStorageBytes.load(ordering: .relaxed)
      let y = Tensor.checkpointed(x, parameters: [norm, gate, bias, down], keeping: .products, block(norm, gate, bias, up, down, unread: unread))
      let held = liveStorageBytes.load(ordering: .relaxed) - before - 4 * y.count
      y.sum().backward()
      Tensor.clearGrad([norm, gate, bias, down, x])
      return held
    }
    let all = heldAfterForward(unread: false), lessOne = heldAfterForward(unread: true)
    XCTAssertEqual(all - lessOne, 4 * rows * 96, "the last product's output is not held")
  }
}
