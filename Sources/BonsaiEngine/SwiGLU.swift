// SwiGLU, the gate of LLaMA's MLP: silu(gate) * up in one pass (SIMD, spread over the threads), its
// backward beside it. Nothing is saved but the two inputs; sigmoid is recomputed in the backward pass.

extension Tensor {
  /// silu(gate) * up elementwise, silu(g) = g * sigmoid(g).
  public static func swiglu(gate g: Tensor, up u: Tensor) -> Tensor {
    precondition(g.shape == u.shape, "swiglu: gate \(g.shape) and up \(u.shape)")
    let out = Tensor(uninitialized: g.shape)
    let pg = g.data, pu = u.data, py = out.mutableData
    parallelFor(g.count, grain: 16384) { r in
      var i = r.lowerBound
      while i + 16 <= r.upperBound {
        let x = load16(pg, i)
        store16(x / (1 + vexp(-x)) * load16(pu, i), py, i)
        i += 16
      }
      while i < r.upperBound { py[i] = pg[i] / (1 + sexp(-pg[i])) * pu[i]; i += 1 }
    }
    let gateTarget = g.gradTarget, upTarget = u.gradTarget
    return record(out, inputs: [g, u]) { dy in
      let pg = g.data, pu = u.data  // the closure holds both inputs
      let dg = gateTarget.buffer()?.mutableData, du = upTarget.buffer()?.mutableData, pd = dy.data
      // d gate = dy * up * s (1 + g (1 - s)), d up = dy * g * s, with s = sigmoid(gate)
      parallelFor(dy.count, grain: 16384) { r in
        var i = r.lowerBound
        while i + 16 <= r.upperBound {
          let x = load16(pg, i), s = 1 / (1 + vexp(-x)), d = load16(pd, i)
          if let dg { store16(load16(dg, i) + d * load16(pu, i) * s * (1 + x * (1 - s)), dg, i) }
          if let du { store16(load16(du, i) + d * x * s, du, i) }
          i += 16
        }
        while i < r.upperBound {
          let x = pg[i], s = 1 / (1 + sexp(-x))
          dg?[i] += pd[i] * pu[i] * s * (1 + x * (1 - s))
          du?[i] += pd[i] * x * s
          i += 1
        }
      }
    }
  }
}
