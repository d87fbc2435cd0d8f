// Softmax and log-softmax along the last axis, forward and backward side by side (SIMD16 rows).
import Foundation

/// y[R, D] = softmax(x[R, D]) row by row. x and y may alias.
public func softmaxRows(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Int, cols d: Int) {
  parallelFor(rows, grain: 64) { r in
    for row in r {
      let xr = x + row * d, yr = y + row * d
      let m = rowMax(xr, d)
      var sv = V16(), s: Float = 0, j = 0
      while j + 16 <= d { let e = vexp(load16(xr, j) - m); store16(e, yr, j); sv += e; j += 16 }
      while j < d { let e = Foundation.exp(xr[j] - m); yr[j] = e; s += e; j += 1 }
      s += hsum(sv)
      let inv = 1 / s
      j = 0
      while j + 16 <= d { store16(load16(yr, j) * inv, yr, j); j += 16 }
      while j < d { yr[j] *= inv; j += 1 }
    }
  }
}

/// The largest of x[0..<d], or 0 for a row of -inf (whose exp(x - max) is then 0, not NaN).
@inline(__always)
func rowMax(_ x: UnsafePointer<Float>, _ d: Int) -> Float {
  var mv = V16(repeating: -.infinity), j = 0
  while j + 16 <= d { mv = vmax(mv, load16(x, j)); j += 16 }
  var m = hmax(mv)
  while j < d { m = Swift.max(m, x[j]); j += 1 }
  return m == -.infinity ? 0 : m
}

/// The row's maximum and the sum of exp(x - max), as `softmaxRows` computes them (without storing the exps).
func maxAndExpSum(_ x: UnsafePointer<Float>, _ d: Int) -> (max: Float, sum: Float) {
  let m = rowMax(x, d)
  var sv = V16(), s: Float = 0, j = 0
  while j + 16 <= d { sv += vexp(load16(x, j) - m); j += 16 }
  while j < d { s += Foundation.exp(x[j] - m); j += 1 }
  return (m, s + hsum(sv))
}

/// dx[R, D] += y * (dy - sum(dy * y)) row by row, from the softmax output y.
public func softmaxBackwardRows(_ dx: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>, rows: Int, cols d: Int) {
  parallelFor(rows, grain: 64) { r in
    for row in r {
      let g = dy + row * d, p = y + row * d, o = dx + row * d
      var dv = V16(), dot: Float = 0, j = 0
      while j + 16 <= d { dv += load16(g, j) * load16(p, j); j += 16 }
      while j < d { dot += g[j] * p[j]; j += 1 }
      dot += hsum(dv)
      j = 0
      while j + 16 <= d { store16(load16(o, j) + load16(p, j) * (load16(g, j) - dot), o, j); j += 16 }
      while j < d { o[j] += p[j] * (g[j] - dot); j += 1 }
    }
  }
}

extension Tensor {
  /// Softmax along the last axis.
  public func softmax() -> Tensor {
    let d = shape.last ?? 1
    let out = Tensor(uninitialized: shape)
    softmaxRows(out.mutableData, data, rows: count / d, cols: d)
    let y = out.storage, target = gradTarget, n = count
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      softmaxBackwardRows(gx.mutableData, g.data, y.pointer, rows: n / d, cols: d)
    }
  }

  /// Log-softmax along the last axis.
  public func logSoftmax() -> Tensor {
    let d = shape.last ?? 1, rows = count / d
    let out = Tensor(uninitialized: shape)
    let p = data, q = out.mutableData
    for r in 0..<rows {
      let x = p + r * d, y = q + r * d
      var m = -Float.infinity
      for j in 0..<d { m = Swift.max(m, x[j]) }
      var s: Float = 0
      for j in 0..<d { s += Foundation.exp(x[j] - m) }
      let lse = m + Foundation.log(s)
      for j in 0..<d { y[j] = x[j] - lse }
    }
    let y = out.storage, target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let pg = g.data, py = y.pointer, pq = gx.mutableData
      for r in 0..<rows {
        var s: Float = 0
        for j in 0..<d { s += pg[r * d + j] }
        for j in 0..<d { pq[r * d + j] += pg[r * d + j] - Foundation.exp(py[r * d + j]) * s }
      }
    }
  }
}
