// Elementwise unary ops, each with its derivative beside it. GELU and tanh have SIMD16 kernels
// (they sit on the hot path of every encoder layer); the rest are plain loops the compiler vectorises.
import Foundation

extension Tensor {
  /// Applies `f` elementwise; `df(x, y)` gives dy/dx from input and output.
  @inline(__always)
  public func unary(_ f: (Float) -> Float, _ df: @escaping (Float, Float) -> Float) -> Tensor {
    let out = Tensor(uninitialized: shape)
    let p = data, q = out.mutableData
    for i in 0..<count { q[i] = f(p[i]) }
    let y = out.storage
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = self.gradientBuffer() else { return }
      let pg = g.data, pq = gx.mutableData, px = self.data, py = y.pointer
      for i in 0..<g.count { pq[i] += pg[i] * df(px[i], py[i]) }
    }
  }

  public func exp() -> Tensor { unary({ Foundation.exp($0) }, { _, y in y }) }
  public func log() -> Tensor { unary({ Foundation.log($0) }, { x, _ in 1 / x }) }
  public func sqrt() -> Tensor { unary({ $0.squareRoot() }, { _, y in 0.5 / y }) }
  public func relu() -> Tensor { unary({ Swift.max($0, 0) }, { x, _ in x > 0 ? 1 : 0 }) }
  /// x * sigmoid(x), as LLaMA's SwiGLU uses.
  public func silu() -> Tensor {
    unary({ $0 / (1 + Foundation.exp(-$0)) }, { x, _ in
      let s = 1 / (1 + Foundation.exp(-x))
      return s * (1 + x * (1 - s))
    })
  }
  /// Elementwise power with a constant exponent.
  public func pow(_ e: Float) -> Tensor {
    unary({ Foundation.pow($0, e) }, { x, _ in e * Foundation.pow(x, e - 1) })
  }

  /// tanh (SIMD16 kernel).
  public func tanh() -> Tensor {
    let out = Tensor(uninitialized: shape)
    tanhForward(out.mutableData, data, count)
    let y = out.storage, target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let pg = g.data, pq = gx.mutableData, py = y.pointer
      for i in 0..<g.count { pq[i] += pg[i] * (1 - py[i] * py[i]) }
    }
  }

  /// GELU in the exact erf form, as BERT and MPNet use: x/2 * (1 + erf(x/sqrt 2)).
  public func gelu() -> Tensor {
    let out = Tensor(uninitialized: shape)
    geluForward(out.mutableData, data, count)
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = self.gradientBuffer() else { return }
      geluBackward(gx.mutableData, g.data, self.data, self.count)
    }
  }
}

// MARK: kernels

/// y[n] = tanh(x[n])
public func tanhForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
  parallelFor(n, grain: 32768) { r in
    var i = r.lowerBound
    while i + 16 <= r.upperBound { store16(vtanh(load16(x, i)), y, i); i += 16 }
    while i < r.upperBound { y[i] = Foundation.tanh(x[i]); i += 1 }
  }
}

/// y[n] = gelu(x[n]) (erf form)
public func geluForward(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
  parallelFor(n, grain: 32768) { r in
    var i = r.lowerBound
    while i + 16 <= r.upperBound {
      let v = load16(x, i)
      store16(v * 0.5 * (1 + verf(v * 0.70710678118654752)), y, i)
      i += 16
    }
    while i < r.upperBound { let v = x[i]; y[i] = v * 0.5 * (1 + Foundation.erf(v * 0.70710678118654752)); i += 1 }
  }
}

/// dx[n] += dy[n] * gelu'(x[n]), gelu'(x) = Phi(x) + x * phi(x)
public func geluBackward(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ n: Int) {
  parallelFor(n, grain: 32768) { r in
    var i = r.lowerBound
    while i + 16 <= r.upperBound {
      let v = load16(x, i)
      let cdf = 0.5 * (1 + verf(v * 0.70710678118654752))
      let pdf = vexp(v * v * -0.5) * 0.3989422804014327
      store16(load16(dx, i) + load16(dy, i) * (cdf + v * pdf), dx, i)
      i += 16
    }
    while i < r.upperBound {
      let v = x[i]
      let cdf = 0.5 * (1 + Foundation.erf(v * 0.70710678118654752))
      let pdf = Foundation.exp(-0.5 * v * v) * 0.3989422804014327
      dx[i] += dy[i] * (cdf + v * pdf)
      i += 1
    }
  }
}
