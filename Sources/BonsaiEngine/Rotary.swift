// Rotary position embeddings as transformers' LLaMA applies them (modeling_llama.apply_rotary_pos_emb):
// within each head of D channels, channel i pairs with channel i + D/2 ("rotate_half"), rotated by the
// angle position * invFreq[i]:
//   y[i]       = x[i] cos - x[i + D/2] sin
//   y[i + D/2] = x[i + D/2] cos + x[i] sin
// Backward is the inverse rotation of the gradient. Angles and their cos/sin are computed in fp32 as
// torch does (inv_freq = 1 / base^(2i/D), angle = position * inv_freq).
import Foundation

/// The inverse frequencies of a rotary embedding, with optional Llama-3 scaling.
public struct RotaryFrequencies: Sendable {
  public let inverse: [Float]

  /// `theta` is rope_theta; `llama3` is (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings).
  public init(headSize d: Int, theta: Float, llama3: (factor: Float, low: Float, high: Float, original: Int)? = nil) {
    var inv = (0..<(d / 2)).map { i -> Float in 1 / Foundation.pow(theta, Float(2 * i) / Float(d)) }
    if let s = llama3 {  // transformers' _compute_llama3_parameters
      let lowWavelen = Float(s.original) / s.low, highWavelen = Float(s.original) / s.high
      inv = inv.map { f in
        let wavelen = 2 * Float.pi / f
        if wavelen > lowWavelen { return f / s.factor }
        if wavelen < highWavelen { return f }
        let smooth = (Float(s.original) / wavelen - s.low) / (s.high - s.low)
        return (1 - smooth) * f / s.factor + smooth * f
      }
    }
    inverse = inv
  }

  /// cos and sin of every (position, pair): computed once per forward pass, shared by q and k of every layer.
  public func table(_ positions: [Int]) -> RotaryTable {
    let h = inverse.count
    var c = [Float](repeating: 0, count: positions.count * h), s = c
    for (r, p) in positions.enumerated() {
      for i in 0..<h {
        let angle = Float(p) * inverse[i]
        c[r * h + i] = Foundation.cos(angle); s[r * h + i] = Foundation.sin(angle)
      }
    }
    return RotaryTable(cos: c, sin: s, rows: positions.count, half: h)
  }
}

/// cos and sin [rows, D/2] for rows at given positions.
public struct RotaryTable: Sendable {
  public let cos: [Float], sin: [Float]
  public let rows: Int, half: Int
}

extension Tensor {
  /// Rotates every head of x [N, H*D], row r by the angles of `table` row r.
  public func rotary(_ table: RotaryTable, heads: Int) -> Tensor {
    let n = table.rows, half = table.half, d = 2 * half
    precondition(count == n * heads * d, "rotary: \(shape) for \(n) positions x \(heads) heads x \(d)")
    let cos = table.cos, sin = table.sin
    let out = Tensor(uninitialized: shape)
    rotate(out.mutableData, data, cos, sin, rows: n, heads: heads, half: half, inverse: false)
    let target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let tmp = [Float](unsafeUninitializedCapacity: g.count) { buf, k in
        rotate(buf.baseAddress!, g.data, cos, sin, rows: n, heads: heads, half: half, inverse: true); k = g.count
      }
      let p = gx.mutableData
      for i in 0..<g.count { p[i] += tmp[i] }
    }
  }
}

/// y = R(angle) x per (row, head, pair); `inverse` applies R(-angle) (the backward pass).
func rotate(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ cos: [Float], _ sin: [Float], rows: Int, heads: Int, half: Int,
            inverse: Bool) {
  let d = 2 * half, sign: Float = inverse ? -1 : 1
  cos.withUnsafeBufferPointer { c in sin.withUnsafeBufferPointer { s in
    parallelFor(rows, grain: max(1, 4096 / (heads * d))) { range in
      for r in range {
        for h in 0..<heads {
          let base = (r * heads + h) * d
          for i in 0..<half {
            let cs = c[r * half + i], sn = sign * s[r * half + i]
            let x1 = x[base + i], x2 = x[base + i + half]
            y[base + i] = x1 * cs - x2 * sn
            y[base + i + half] = x2 * cs + x1 * sn
          }
        }
      }
    }
  } }
}
