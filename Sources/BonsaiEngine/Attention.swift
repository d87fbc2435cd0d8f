// Fused multi-head attention: scores + bias + mask + softmax + dropout + context in one op, with its
// backward beside it. Work is split over (batch, head) pairs; each pair's small products run on one
// thread. Saved for backward: only the dropout byte mask; the probabilities are recomputed from q and
// k in the backward pass (one more small product per head) instead of holding [B, H, T, T] floats
// per layer through the forward pass.

/// Inputs of one fused attention call.
public struct AttentionShape: Sendable {
  public let batch: Int, tokens: Int, heads: Int, headSize: Int
  public var channels: Int { heads * headSize }
  public init(batch: Int, tokens: Int, heads: Int, headSize: Int) {
    self.batch = batch; self.tokens = tokens; self.heads = heads; self.headSize = headSize
  }
}

extension Tensor {
  /// Scaled dot-product attention over heads laid out as [B, T, H*D] (the Linear layers' output).
  ///
  /// - Parameters:
  ///   - keyMask: B*T additive values (0 keep, a large negative number for padding), or nil.
  ///   - positionBias: optional [H, T, T] tensor added to the scores (MPNet's relative bias), differentiable.
  ///   - causal: query i attends to keys 0...i only (a decoder). Scores above the diagonal are never
  ///     computed: rows go in blocks of 64, each against the keys up to its last row (~half the work at T=512).
  ///   - dropout: probability applied to the attention probabilities when `rng` is non-nil.
  /// - Returns: context [B, T, H*D].
  public static func attention(
    query q: Tensor, key k: Tensor, value v: Tensor, shape s: AttentionShape,
    keyMask: [Float]?, positionBias: Tensor? = nil, causal: Bool = false, dropout p: Float = 0, rng: RandomSource? = nil
  ) -> Tensor {
    let (B, T, H, D, C) = (s.batch, s.tokens, s.heads, s.headSize, s.channels)
    precondition(q.count == B * T * C && k.count == B * T * C && v.count == B * T * C,
                 "attention: q \(q.shape) k \(k.shape) v \(v.shape) for B=\(B) T=\(T) H=\(H) D=\(D)")
    if let keyMask { precondition(keyMask.count == B * T, "attention: key mask of \(keyMask.count) for B*T=\(B * T)") }
    if let positionBias { precondition(positionBias.shape == [H, T, T], "attention: bias \(positionBias.shape), want [\(H), \(T), \(T)]") }
    let scale = 1 / Float(D).squareRoot()
    let useDropout = p > 0 && rng != nil
    let mask = useDropout ? ByteBuffer(count: B * H * T * T) : nil
    if let mask, let rng { dropoutMask(mask.pointer, count: B * H * T * T, p: p, key: rng.nextStream(), offset: rng.elementOffset(count: B * H * T * T)) }
    let keep = 1 / (1 - p)
    let out = Tensor(uninitialized: [B, T, C])
    let pq = q.data, pk = k.data, pv = v.data, po = out.mutableData
    let bias = positionBias?.data
    let maskValues = keyMask ?? []
    let blocks = AttentionBlock.split(tokens: T, causal: causal)
    withSingleThreadedGEMM { parallelFor(B * H) { range in
      let scratch = Storage(count: T * T, zeroed: false), probsBuffer = Storage(count: T * T, zeroed: false)
      do {
        for bh in range {
          let b = bh / H, h = bh % H
          let off = b * T * C + h * D
          let S = probsBuffer.pointer
          for blk in blocks {
            let (r0, n, keys) = (blk.rows.lowerBound, blk.rows.count, blk.keys)
            attentionProbabilities(S, pq + off, pk + off, bias.map { $0 + h * T * T }, keyMask == nil ? nil : maskValues, b * T,
                                   block: blk, causal: causal, tokens: T, headSize: D, channels: C, scale: scale)
            var P = UnsafePointer(S)
            if let mask {
              applyMaskSerial(scratch.pointer, S, mask.pointer + bh * T * T, scale: keep, block: blk, tokens: T)
              P = UnsafePointer(scratch.pointer)
            }
            gemm(.no, .no, m: n, n: D, k: keys, P + r0 * T, lda: T, pv + off, ldb: C, po + off + r0 * C, ldc: C)
          }
        }
      }
    } }
    var inputs = [q, k, v]
    if let positionBias { inputs.append(positionBias) }
    return record(out, inputs: inputs) { g in
      let gq = q.gradientBuffer()?.mutableData, gk = k.gradientBuffer()?.mutableData, gv = v.gradientBuffer()?.mutableData
      let gBias = positionBias?.gradientBuffer()
      let dScores = gBias != nil ? Storage(count: B * H * T * T, zeroed: false) : nil
      let pg = g.data
      withSingleThreadedGEMM { parallelFor(B * H) { range in
        let dP = Storage(count: T * T), Pd = Storage(count: T * T), probsBuffer = Storage(count: T * T, zeroed: false)
        do {
          for bh in range {
            let b = bh / H, h = bh % H
            let off = b * T * C + h * D
            for blk in blocks {
              let (r0, n, keys) = (blk.rows.lowerBound, blk.rows.count, blk.keys)
              attentionProbabilities(probsBuffer.pointer, pq + off, pk + off, bias.map { $0 + h * T * T }, keyMask == nil ? nil : maskValues,
                                     b * T, block: blk, causal: causal, tokens: T, headSize: D, channels: C, scale: scale)
              let P = UnsafePointer(probsBuffer.pointer)
              var Pdrop = P
              if let mask {
                applyMaskSerial(Pd.pointer, P, mask.pointer + bh * T * T, scale: keep, block: blk, tokens: T)
                Pdrop = UnsafePointer(Pd.pointer)
              }
              let dPr = dP.pointer + r0 * T, gr = pg + off + r0 * C
              // dV += Pd^T dCtx
              if let gv { gemm(.yes, .no, m: keys, n: D, k: n, Pdrop + r0 * T, lda: T, gr, ldb: C, beta: 1, gv + off, ldc: C) }
              // dPd = dCtx V^T, then through dropout and softmax: dS = P * (dP - rowsum(dP * P))
              gemm(.no, .yes, m: n, n: keys, k: D, gr, lda: C, pv + off, ldb: C, dPr, ldc: T)
              if let mask { applyMaskSerial(dP.pointer, dP.pointer, mask.pointer + bh * T * T, scale: keep, block: blk, tokens: T) }
              softmaxBackwardInPlace(dPr, P + r0 * T, rows: n, cols: keys, stride: T)
              if let gq { gemm(.no, .no, m: n, n: D, k: keys, alpha: scale, dPr, lda: T, pk + off, ldb: C, beta: 1, gq + off + r0 * C, ldc: C) }
              if let gk { gemm(.yes, .no, m: keys, n: D, k: n, alpha: scale, dPr, lda: T, pq + off + r0 * C, ldb: C, beta: 1, gk + off, ldc: C) }
            }
            // entries right of a block's keys stay 0 (never written)
            if let dScores { (dScores.pointer + bh * T * T).update(from: dP.pointer, count: T * T) }
          }
        }
      } }
      if let gBias, let dScores {
        let gb = gBias.mutableData, ds = dScores.pointer
        for b in 0..<B { for h in 0..<H { let src = ds + (b * H + h) * T * T, dst = gb + h * T * T; for i in 0..<T * T { dst[i] += src[i] } } }
      }
    }
  }
}

// MARK: serial row kernels used inside a (batch, head) work item

/// Rows of one (batch, head) computed together, against keys 0..<keys.
struct AttentionBlock {
  let rows: Range<Int>, keys: Int
  static let causalRows = 64

  /// One block of every row and key, or (causal) blocks of 64 rows, each against the keys up to its last row.
  static func split(tokens T: Int, causal: Bool) -> [AttentionBlock] {
    guard causal else { return [AttentionBlock(rows: 0..<T, keys: T)] }
    return stride(from: 0, to: T, by: causalRows).map { r0 in
      let r1 = Swift.min(r0 + causalRows, T)
      return AttentionBlock(rows: r0..<r1, keys: r1)
    }
  }
}

/// P[rows, 0..<keys] (row stride T) = softmax(scale * q k^T + bias + keyMask) for one (batch, head); q and
/// k are [T, C] views at the head's offset. Causal: row i's softmax covers keys 0...i, the rest is 0.
@inline(__always)
func attentionProbabilities(
  _ P: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ k: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
  _ keyMask: [Float]?, _ maskBase: Int, block: AttentionBlock, causal: Bool, tokens T: Int, headSize D: Int, channels C: Int,
  scale: Float
) {
  let (r0, n, keys) = (block.rows.lowerBound, block.rows.count, block.keys)
  let S = P + r0 * T
  gemm(.no, .yes, m: n, n: keys, k: D, alpha: scale, q + r0 * C, lda: C, k, ldb: C, S, ldc: T)
  for i in block.rows {
    let row = P + i * T, width = causal ? i + 1 : keys
    if let bias { let br = bias + i * T; for j in 0..<width { row[j] += br[j] } }
    if let keyMask { keyMask.withUnsafeBufferPointer { m in let mp = m.baseAddress! + maskBase; for j in 0..<width { row[j] += mp[j] } } }
    softmaxRowsSerial(row, rows: 1, cols: width)
    for j in width..<keys { row[j] = 0 }
  }
}

/// x[rows, cols] <- softmax row by row, in place, on the calling thread.
@inline(__always)
public func softmaxRowsSerial(_ x: UnsafeMutablePointer<Float>, rows: Int, cols d: Int) {
  for row in 0..<rows {
    let r = x + row * d
    var mv = V16(repeating: -.infinity), j = 0
    while j + 16 <= d { mv = vmax(mv, load16(r, j)); j += 16 }
    var m = hmax(mv)
    while j < d { m = Swift.max(m, r[j]); j += 1 }
    var sv = V16(), s: Float = 0
    j = 0
    while j + 16 <= d { let e = vexp(load16(r, j) - m); store16(e, r, j); sv += e; j += 16 }
    while j < d { let e = sexp(r[j] - m); r[j] = e; s += e; j += 1 }
    let inv = 1 / (s + hsum(sv))
    j = 0
    while j + 16 <= d { store16(load16(r, j) * inv, r, j); j += 16 }
    while j < d { r[j] *= inv; j += 1 }
  }
}

/// g[rows, cols] <- P * (g - rowsum(g * P)), rows `stride` apart.
@inline(__always)
func softmaxBackwardInPlace(_ g: UnsafeMutablePointer<Float>, _ P: UnsafePointer<Float>, rows: Int, cols d: Int, stride: Int) {
  for row in 0..<rows {
    let gr = g + row * stride, pr = P + row * stride
    var dv = V16(), dot: Float = 0, j = 0
    while j + 16 <= d { dv += load16(gr, j) * load16(pr, j); j += 16 }
    while j < d { dot += gr[j] * pr[j]; j += 1 }
    dot += hsum(dv)
    j = 0
    while j + 16 <= d { store16(load16(pr, j) * (load16(gr, j) - dot), gr, j); j += 16 }
    while j < d { gr[j] = pr[j] * (gr[j] - dot); j += 1 }
  }
}

/// y = x * mask * scale over one block's rows and keys (row stride T).
@inline(__always)
func applyMaskSerial(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ mask: UnsafePointer<UInt8>, scale: Float,
                     block: AttentionBlock, tokens T: Int) {
  for r in block.rows { for i in (r * T)..<(r * T + block.keys) { y[i] = mask[i] != 0 ? x[i] * scale : 0 } }
}
