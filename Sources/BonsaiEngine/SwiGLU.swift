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
      // a new gradient is written (no zero-filling pass), an existing one accumulated into
      let gateBuffer = gateTarget.productBuffer(), upBuffer = upTarget.productBuffer()
      let dg = gateBuffer?.tensor.mutableData, du = upBuffer?.tensor.mutableData, pd = dy.data
      let gb = gateBuffer?.beta ?? 0, ub = upBuffer?.beta ?? 0
      // d gate = dy * up * s (1 + g (1 - s)), d up = dy * g * s, with s = sigmoid(gate)
      parallelFor(dy.count, grain: 16384) { r in
        var i = r.lowerBound
        while i + 16 <= r.upperBound {
          let x = load16(pg, i), s = 1 / (1 + vexp(-x)), d = load16(pd, i)
          if let dg { store16((gb == 0 ? V16() : load16(dg, i)) + d * load16(pu, i) * s * (1 + x * (1 - s)), dg, i) }
          if let du { store16((ub == 0 ? V16() : load16(du, i)) + d * x * s, du, i) }
          i += 16
        }
        while i < r.upperBound {
          let x = pg[i], s = 1 / (1 + sexp(-x))
          if let dg { dg[i] = (gb == 0 ? 0 : dg[i]) + pd[i] * pu[i] * s * (1 + x * (1 - s)) }
          if let du { du[i] = (ub == 0 ? 0 : du[i]) + pd[i] * x * s }
          i += 1
        }
      }
    }
  }
}
