// Attention of one new query per row over the key/value cache (LlamaInference.swift's layout). The query
// heads that share a key/value head are done together, three at a time, so that a block of 16 cached keys or
// a cached value row is loaded once for the three; sums are fused multiply-adds in several chains. Measured
// at batch 8 (SmolLM2, 1 thread, Zen 4): 9.8% -> 8.6% of a step. What is left waits on memory (~30 MB of fp32
// cache per step, evicted by the weights between steps); software prefetch one block or 16 rows ahead and a
// cache in transparent huge pages were tried and changed nothing measurable. fp16 keys and values (llama.cpp's
// default) would halve it, at the cost of the exactness the fp32 comparisons rest on.
import BonsaiEngine

extension LlamaKVCache {
  /// softmax(q k^T / sqrt(D)) v for one query per row over its first `length` cached positions (padding
  /// skipped); query head h reads key/value head h / (H/K). Returns [B, H*D].
  func attend(layer l: Int, queries q: Tensor, heads H: Int, headSize D: Int, length L: Int) -> Tensor {
    let K = width / D, group = H / K, scale = 1 / Float(D).squareRoot(), stride = keyStride
    let out = Tensor(zeros: [batch, H * D])
    let qp = q.data, op = out.mutableData
    keys[l].withUnsafeBufferPointer { kb in values[l].withUnsafeBufferPointer { vb in
      parallelFor(batch * K) { range in
        var scores = [Float](repeating: 0, count: group * stride)
        scores.withUnsafeMutableBufferPointer { sb in
          let sp = sb.baseAddress!
          for bk in range {
            let b = bk / K, kvh = bk % K, real = self.real[b]
            let queries = qp + (b * H + kvh * group) * D, outputs = op + (b * H + kvh * group) * D
            let keysT = kb.baseAddress! + (b * K + kvh) * D * stride, vals = vb.baseAddress! + (b * K + kvh) * self.capacity * D
            var g = 0
            while g < group {  // scores of 16 positions at a time (past L: ignored)
              let n = group - g >= 3 ? 3 : 1
              for j0 in Swift.stride(from: 0, to: L, by: 16) {
                if n == 3 { scoresOfThree(queries + g * D, keysT + j0 * D, D, scale, sp + g * stride + j0, stride) }
                else { scoresOfOne(queries + g * D, keysT + j0 * D, D, scale, sp + g * stride + j0) }
              }
              g += n
            }
            for g in 0..<group { softmaxOfReal(sp + g * stride, real, L) }
            g = 0
            while g < group {  // the weighted values, 64 dimensions at a time
              let n = group - g >= 3 ? 3 : 1
              var d0 = 0
              while d0 < D {
                let width = Swift.min(64, D - d0)
                if n == 3 && width == 64 {
                  valuesOfThree(sp + g * stride, stride, real, L, vals + d0, D, outputs + g * D + d0, D)
                } else if width == 64 {
                  valuesOfOne(sp + g * stride, real, L, vals + d0, D, outputs + g * D + d0)
                } else {
                  for h in g..<(g + n) {
                    let o = outputs + h * D + d0, sg = sp + h * stride
                    for j in 0..<L where real[j] { addScaled(o, sg[j], vals + j * D + d0, width) }
                  }
                }
                d0 += width
              }
              g += n
            }
          }
        }
      }
    } }
    return out
  }

  /// s[g * ld + 0..<16] <- scale * (q_g . key of each of the block's 16 positions) for three query heads
  /// (q_g at q + g * D), the block's keys [D, 16].
  @inline(__always)
  private func scoresOfThree(_ q: UnsafePointer<Float>, _ block: UnsafePointer<Float>, _ D: Int, _ scale: Float,
                             _ s: UnsafeMutablePointer<Float>, _ ld: Int) {
    let q1 = q + D, q2 = q + 2 * D
    var a0 = V16(), a1 = V16(), b0 = V16(), b1 = V16(), c0 = V16(), c1 = V16(), d = 0  // two chains per head
    while d + 2 <= D {
      let k0 = load16(block, d * 16), k1 = load16(block, (d + 1) * 16)
      a0 = a0.addingProduct(V16(repeating: q[d]), k0); a1 = a1.addingProduct(V16(repeating: q[d + 1]), k1)
      b0 = b0.addingProduct(V16(repeating: q1[d]), k0); b1 = b1.addingProduct(V16(repeating: q1[d + 1]), k1)
      c0 = c0.addingProduct(V16(repeating: q2[d]), k0); c1 = c1.addingProduct(V16(repeating: q2[d + 1]), k1)
      d += 2
    }
    if d < D {
      let k = load16(block, d * 16)
      a0 = a0.addingProduct(V16(repeating: q[d]), k); b0 = b0.addingProduct(V16(repeating: q1[d]), k)
      c0 = c0.addingProduct(V16(repeating: q2[d]), k)
    }
    store16((a0 + a1) * scale, s, 0); store16((b0 + b1) * scale, s, ld); store16((c0 + c1) * scale, s, 2 * ld)
  }

  /// The same for one query head.
  @inline(__always)
  private func scoresOfOne(_ q: UnsafePointer<Float>, _ block: UnsafePointer<Float>, _ D: Int, _ scale: Float,
                           _ s: UnsafeMutablePointer<Float>) {
    var s0 = V16(), s1 = V16(), s2 = V16(), s3 = V16(), d = 0  // four chains of sums
    while d + 4 <= D {
      s0 = s0.addingProduct(V16(repeating: q[d]), load16(block, d * 16))
      s1 = s1.addingProduct(V16(repeating: q[d + 1]), load16(block, (d + 1) * 16))
      s2 = s2.addingProduct(V16(repeating: q[d + 2]), load16(block, (d + 2) * 16))
      s3 = s3.addingProduct(V16(repeating: q[d + 3]), load16(block, (d + 3) * 16))
      d += 4
    }
    while d < D { s0 = s0.addingProduct(V16(repeating: q[d]), load16(block, d * 16)); d += 1 }
    store16(((s0 + s1) + (s2 + s3)) * scale, s, 0)
  }

  /// o_g[0..<64] <- sum over the real positions j of p_g[j] * v_j[0..<64] for three heads (p_g at p + g * ld,
  /// o_g at o + g * ldo; v_j at v + j * ldv): 12 sums in registers, each value row loaded once.
  @inline(__always)
  private func valuesOfThree(_ p: UnsafePointer<Float>, _ ld: Int, _ real: [Bool], _ L: Int, _ v: UnsafePointer<Float>,
                             _ ldv: Int, _ o: UnsafeMutablePointer<Float>, _ ldo: Int) {
    let p1 = p + ld, p2 = p + 2 * ld
    var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16(), b0 = V16(), b1 = V16(), b2 = V16(), b3 = V16()
    var c0 = V16(), c1 = V16(), c2 = V16(), c3 = V16()
    for j in 0..<L where real[j] {
      let row = v + j * ldv
      let v0 = load16(row, 0), v1 = load16(row, 16), v2 = load16(row, 32), v3 = load16(row, 48)
      let wa = V16(repeating: p[j]), wb = V16(repeating: p1[j]), wc = V16(repeating: p2[j])
      a0 = a0.addingProduct(wa, v0); a1 = a1.addingProduct(wa, v1); a2 = a2.addingProduct(wa, v2); a3 = a3.addingProduct(wa, v3)
      b0 = b0.addingProduct(wb, v0); b1 = b1.addingProduct(wb, v1); b2 = b2.addingProduct(wb, v2); b3 = b3.addingProduct(wb, v3)
      c0 = c0.addingProduct(wc, v0); c1 = c1.addingProduct(wc, v1); c2 = c2.addingProduct(wc, v2); c3 = c3.addingProduct(wc, v3)
    }
    store16(a0, o, 0); store16(a1, o, 16); store16(a2, o, 32); store16(a3, o, 48)
    store16(b0, o, ldo); store16(b1, o, ldo + 16); store16(b2, o, ldo + 32); store16(b3, o, ldo + 48)
    store16(c0, o, 2 * ldo); store16(c1, o, 2 * ldo + 16); store16(c2, o, 2 * ldo + 32); store16(c3, o, 2 * ldo + 48)
  }

  /// The same for one head: 4 sums in registers.
  @inline(__always)
  private func valuesOfOne(_ p: UnsafePointer<Float>, _ real: [Bool], _ L: Int, _ v: UnsafePointer<Float>, _ ldv: Int,
                           _ o: UnsafeMutablePointer<Float>) {
    var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16()
    for j in 0..<L where real[j] {
      let row = v + j * ldv, w = V16(repeating: p[j])
      a0 = a0.addingProduct(w, load16(row, 0)); a1 = a1.addingProduct(w, load16(row, 16))
      a2 = a2.addingProduct(w, load16(row, 32)); a3 = a3.addingProduct(w, load16(row, 48))
    }
    store16(a0, o, 0); store16(a1, o, 16); store16(a2, o, 32); store16(a3, o, 48)
  }

  /// s[0..<L] <- softmax over the real positions (0 at padding), 16 at a time (the engine's vexp softmax, as
  /// the training path's attention): at batch 8 the scalar exps were a quarter of the attention's time.
  @inline(__always)
  private func softmaxOfReal(_ s: UnsafeMutablePointer<Float>, _ real: [Bool], _ L: Int) {
    for j in 0..<L where !real[j] { s[j] = -.infinity }
    softmaxRowsSerial(s, rows: 1, cols: L)
    for j in 0..<L where !real[j] { s[j] = 0 }  // vexp stops at exp(-87), not 0
  }
}
