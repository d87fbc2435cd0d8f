// Activation checkpointing: both policies give the gradients of the block on the tape, bit for bit.
import BonsaiEngine
import XCTest

final class CheckpointingTests: XCTestCase {
  override func setUp() { Engine.threads = 2 }

  /// A small decoder-like block: RMS norm, two products (one dense with a bias, one packed), SwiGLU,
  /// a product back, a residual sum.
  func block(_ norm: Tensor, _ gate: Tensor, _ bias: Tensor, _ up: PackedMatrix, _ down: Tensor) -> (Tensor) -> Tensor {
    { x in
      let h = x.rmsNorm(weight: norm, eps: 1e-5)
      return x + Tensor.swiglu(gate: h.linear(weight: gate, bias: bias), up: h.linear(packed: up, bias: nil)).linear(weight: down, bias: nil)
    }
  }

  func testBothPoliciesGiveTheGradientsOfTheTape() {
    let norm = tensor([32], seed: 1), gate = tensor([48, 32], seed: 2, scale: 0.2), bias = tensor([48], seed: 3)
    let up = PackedMatrix(quantizing: tensor([48, 32], seed: 4, scale: 0.2, grad: false), to: .q8_0)
    let down = tensor([32, 48], seed: 5, scale: 0.2)
    let parameters = [norm, gate, bias, down]
    for rows in [5, 24] {  // a few rows take the small-product path without the tape; the kept products must not
      let body = block(norm, gate, bias, up, down)
      func gradients(_ policy: CheckpointPolicy?) -> [[Float]] {
        let x = tensor([rows, 32], seed: 9)
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
}
