// Layer norm and RMS norm over the last axis, forward and backward side by side.
// Forward saves the per-row mean and reciprocal standard deviation; backward accumulates (+=).
import Foundation

/// y[N, C] = (x - mean) * rstd * gamma + beta; writes mean[N] and rstd[N] for the backward pass.
public func layerNormForward(
  _ y: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
  _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>, _ beta: UnsafePointer<Float>,
  rows: Int, cols c: Int, eps: Float
) {
  parallelFor(rows, grain: 32) { r in
    for row in r {
      let xr = x + row * c, yr = y + row * c
      var sv = V16(), s: Float = 0, j = 0
      while j + 16 <= c { sv += load16(xr, j); j += 16 }
      while j < c { s += xr[j]; j += 1 }
      let m = (s + hsum(sv)) / Float(c)
      var vv = V16(), v: Float = 0
      j = 0
      while j + 16 <= c { let d = load16(xr, j) - m; vv += d * d; j += 16 }
      while j < c { let d = xr[j] - m; v += d * d; j += 1 }
      let rs = 1 / (((v + hsum(vv)) / Float(c)) + eps).squareRoot()
      j = 0
      while j + 16 <= c { store16((load16(xr, j) - m) * rs * load16(gamma, j) + load16(beta, j), yr, j); j += 16 }
      while j < c { yr[j] = (xr[j] - m) * rs * gamma[j] + beta[j]; j += 1 }
      mean[row] = m
      rstd[row] = rs
    }
  }
}

/// dx[N, C] += ..., dgamma[C] += ..., dbeta[C] += ... (any of them may be nil).
/// Per-thread partial sums for dgamma/dbeta are added in a fixed order: deterministic.
public func layerNormBackward(
  _ dx: UnsafeMutablePointer<Float>?, _ dgamma: UnsafeMutablePointer<Float>?, _ dbeta: UnsafeMutablePointer<Float>?,
  _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ gamma: UnsafePointer<Float>,
  _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, rows: Int, cols c: Int
) {
  let threads = Swift.min(Engine.threads, Swift.max(rows / 32, 1))
  let partial = Storage(count: threads * 2 * c)
  let pp = partial.pointer
  parallelFor(threads) { chunks in
    for t in chunks {
      let dg = pp + t * 2 * c, db = dg + c
      for row in (rows * t / threads)..<(rows * (t + 1) / threads) {
        let xr = x + row * c, g = dy + row * c
        let m = mean[row], rs = rstd[row]
        var a = V16(), b = V16(), sa: Float = 0, sb: Float = 0, j = 0
        while j + 16 <= c {
          let xh = (load16(xr, j) - m) * rs, gg = load16(g, j) * load16(gamma, j)
          a += gg; b += gg * xh
          store16(load16(dg, j) + load16(g, j) * xh, dg, j)
          store16(load16(db, j) + load16(g, j), db, j)
          j += 16
        }
        while j < c {
          let xh = (xr[j] - m) * rs, gg = g[j] * gamma[j]
          sa += gg; sb += gg * xh; dg[j] += g[j] * xh; db[j] += g[j]; j += 1
        }
        guard let dx else { continue }
        let meanG = (sa + hsum(a)) / Float(c), meanGX = (sb + hsum(b)) / Float(c)
        let o = dx + row * c
        j = 0
        while j + 16 <= c {
          let xh = (load16(xr, j) - m) * rs
          store16(load16(o, j) + (load16(g, j) * load16(gamma, j) - meanG - xh * meanGX) * rs, o, j)
          j += 16
        }
        while j < c { let xh = (xr[j] - m) * rs; o[j] += (g[j] * gamma[j] - meanG - xh * meanGX) * rs; j += 1 }
      }
    }
  }
  for t in 0..<threads {
    let dg = pp + t * 2 * c, db = dg + c
    if let dgamma { for j in 0..<c { dgamma[j] += dg[j] } }
    if let dbeta { for j in 0..<c { dbeta[j] += db[j] } }
  }
}

extension Tensor {
  /// Layer norm over the last axis with weight `gamma` and bias `beta` (both [C]).
  public func layerNorm(weight gamma: Tensor, bias beta: Tensor, eps: Float) -> Tensor {
    let c = shape.last!, rows = count / c
    precondition(gamma.shape == [c] && beta.shape == [c], "layerNorm: weight \(gamma.shape), bias \(beta.shape) for input \(shape)")
    let out = Tensor(uninitialized: shape)
    let stats = Storage(count: 2 * rows, zeroed: false)
    layerNormForward(out.mutableData, stats.pointer, stats.pointer + rows, data, gamma.data, beta.data, rows: rows, cols: c, eps: eps)
    return Tensor.record(out, inputs: [self, gamma, beta]) { g in
      layerNormBackward(self.gradientBuffer()?.mutableData, gamma.gradientBuffer()?.mutableData, beta.gradientBuffer()?.mutableData,
                        g.data, self.data, gamma.data, stats.pointer, stats.pointer + rows, rows: rows, cols: c)
    }
  }

  /// RMS norm over the last axis: x / sqrt(mean(x^2) + eps) * weight (LLaMA). Rows are split over the
  /// threads both ways; the weight's gradient sums per-thread partials in a fixed order (deterministic).
  public func rmsNorm(weight: Tensor, eps: Float) -> Tensor {
    let c = shape.last!, rows = count / c
    precondition(weight.shape == [c], "rmsNorm: weight \(weight.shape) for input \(shape)")
    let out = Tensor(uninitialized: shape)
    let rstd = Storage(count: rows, zeroed: false)
    let x = data, w = weight.data, y = out.mutableData, rp = rstd.pointer
    parallelFor(rows, grain: 32) { range in
      for r in range {
        let xr = x + r * c, yr = y + r * c
        let rs = 1 / (dot(xr, xr, c) / Float(c) + eps).squareRoot()
        rp[r] = rs
        let sv = V16(repeating: rs)
        var j = 0
        while j + 16 <= c { store16(load16(xr, j) * sv * load16(w, j), yr, j); j += 16 }
        while j < c { yr[j] = xr[j] * rs * w[j]; j += 1 }
      }
    }
    return Tensor.record(out, inputs: [self, weight]) { g in
      rmsNormBackward(self.gradientBuffer()?.mutableData, weight.gradientBuffer()?.mutableData, g.data, x, w, rstd.pointer, rows: rows, cols: c)
    }
  }
}

/// gx += rs (g w - x rs^2 (g.(w x)) / C) and gw += sum over rows of g x rs, for rows of C values.
func rmsNormBackward(_ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?, _ g: UnsafePointer<Float>,
                     _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, rows: Int, cols c: Int) {
  let threads = Swift.min(Engine.threads, Swift.max(rows / 32, 1))
  let partial = gw == nil ? nil : Storage(count: threads * c)
  parallelFor(threads) { chunks in
    for t in chunks {
      let acc = partial.map { $0.pointer + t * c }
      for r in (rows * t / threads)..<(rows * (t + 1) / threads) {
        let gr = g + r * c, xr = x + r * c, rs = rstd[r]
        if let acc {
          let sv = V16(repeating: rs)
          var j = 0
          while j + 16 <= c { store16(load16(acc, j) + load16(gr, j) * load16(xr, j) * sv, acc, j); j += 16 }
          while j < c { acc[j] += gr[j] * xr[j] * rs; j += 1 }
        }
        guard let gx else { continue }
        var d = V16(), j = 0
        while j + 16 <= c { d += load16(gr, j) * load16(w, j) * load16(xr, j); j += 16 }
        var dot = hsum(d)
        while j < c { dot += gr[j] * w[j] * xr[j]; j += 1 }
        let k = rs * rs * dot / Float(c), gxr = gx + r * c
        let rv = V16(repeating: rs), kv = V16(repeating: k)
        j = 0
        while j + 16 <= c { store16(load16(gxr, j) + rv * (load16(gr, j) * load16(w, j) - load16(xr, j) * kv), gxr, j); j += 16 }
        while j < c { gxr[j] += rs * (gr[j] * w[j] - xr[j] * k); j += 1 }
      }
    }
  }
  if let gw, let partial { for t in 0..<threads { addScaled(gw, 1, partial.pointer + t * c, c) } }
}
