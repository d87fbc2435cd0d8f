// Dropout with counter-based masks: deterministic for a seed whatever the thread count.
// The keep mask is stored as bytes (1/4 of a float mask) for the backward pass.

/// Fills `mask[n]` with 1 (keep) or 0 (drop) with drop probability `p`, from stream `key`: elements
/// `offset ..< offset + n` of the stream (a rank's rows of a global batch; DataParallel.swift).
/// Each 64-bit draw gives four 16-bit uniforms, so p is resolved to 1/65536.
public func dropoutMask(_ mask: UnsafeMutablePointer<UInt8>, count n: Int, p: Float, key: UInt64, offset: Int = 0) {
  let threshold = UInt64((p * 65536).rounded())
  let firstWord = offset / 4, words = (offset + n + 3) / 4 - firstWord
  parallelFor(words, grain: 4096) { r in
    for w in r {
      let word = firstWord + w
      let bits = mix64(key &+ UInt64(word) &* 0xD1B5_4A32_D192_ED03)
      for k in 0..<4 {
        let i = word * 4 + k - offset
        if i >= 0 && i < n { mask[i] = (bits >> (16 * UInt64(k))) & 0xFFFF >= threshold ? 1 : 0 }
      }
    }
  }
}

/// y[n] = x[n] * mask[n] * scale (x and y may alias).
public func applyMask(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ mask: UnsafePointer<UInt8>, scale: Float, count n: Int) {
  parallelFor(n, grain: 32768) { r in for i in r { y[i] = mask[i] != 0 ? x[i] * scale : 0 } }
}

/// A byte buffer owned by a class, so closures can keep it alive.
public final class ByteBuffer: @unchecked Sendable {
  public let pointer: UnsafeMutablePointer<UInt8>
  public init(count: Int) { pointer = .allocate(capacity: Swift.max(count, 1)) }
  deinit { pointer.deallocate() }
}

extension Tensor {
  /// Inverted dropout: zeroes elements with probability `p` and scales the rest by 1/(1-p).
  /// Identity when `p == 0` or `rng` is nil (evaluation).
  public func dropout(_ p: Float, rng: RandomSource?) -> Tensor {
    guard p > 0, let rng else { return self }
    precondition(p < 1, "dropout: probability \(p) must be below 1")
    let mask = ByteBuffer(count: count)
    dropoutMask(mask.pointer, count: count, p: p, key: rng.nextStream(), offset: rng.elementOffset(count: count))
    let scale = 1 / (1 - p)
    let out = Tensor(uninitialized: shape)
    applyMask(out.mutableData, data, mask.pointer, scale: scale, count: count)
    let target = gradTarget, n = count
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let q = gx.mutableData, pg = g.data, m = mask.pointer
      parallelFor(n, grain: 32768) { r in for i in r where m[i] != 0 { q[i] += pg[i] * scale } }
    }
  }
}
