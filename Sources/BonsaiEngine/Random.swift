// Counter-based random numbers: value i of a stream depends only on (seed, stream, i), so dropout
// masks are the same whatever the thread count, and a run can be resumed from its counters.

/// SplitMix64 finaliser: a good 64-bit mix of a counter.
@inlinable @inline(__always)
public func mix64(_ x0: UInt64) -> UInt64 {
  var z = x0 &+ 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

/// A seeded generator that hands out independent counter-based streams.
public final class RandomSource: @unchecked Sendable {
  /// The seed everything derives from.
  public let seed: UInt64
  /// Streams handed out so far (saved in checkpoints to resume exactly).
  public var counter: UInt64
  /// Under data parallelism, the rows of the global batch this process computes (the first and how many):
  /// dropout then draws element i of a batch-major tensor as element i + first * (elements per row) of the
  /// single process's tensor, so that every rank's masks are the single process's.
  public var rows: (first: Int, count: Int)?

  /// Where a batch-major tensor of `count` elements starts in the global batch's (0 in one process).
  public func elementOffset(count: Int) -> Int { rows.map { $0.first * (count / max($0.count, 1)) } ?? 0 }

  public init(seed: UInt64, counter: UInt64 = 0) {
    self.seed = seed
    self.counter = counter
  }

  /// A fresh stream key; element i of the stream is `uniform(key, i)`.
  public func nextStream() -> UInt64 {
    counter += 1
    return mix64(seed ^ mix64(counter))
  }

  /// Uniform in [0, 1) for element `i` of stream `key`.
  @inlinable @inline(__always)
  public static func uniform(_ key: UInt64, _ i: Int) -> Float {
    Float(mix64(key &+ UInt64(truncatingIfNeeded: i) &* 0xD1B5_4A32_D192_ED03) >> 40) * (1.0 / 16_777_216.0)
  }

  /// Standard normal values (Box-Muller), for initialisation.
  public func normal(count: Int, mean: Float = 0, std: Float = 1) -> [Float] {
    var out = [Float](repeating: 0, count: count)
    out.withUnsafeMutableBufferPointer { fillNormal($0.baseAddress!, count: count, mean: mean, std: std) }
    return out
  }

  /// A tensor of normal values N(mean, std^2).
  public func normalTensor(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
    let t = Tensor(uninitialized: shape)
    fillNormal(t.mutableData, count: t.count, mean: mean, std: std)
    return t
  }

  /// Writes `count` normal values (Box-Muller on one counter-based stream).
  public func fillNormal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float = 0, std: Float = 1) {
    let key = nextStream()
    var i = 0
    while i < count {
      let u1 = max(Double(RandomSource.uniform(key, 2 * i)), 1e-12)
      let u2 = Double(RandomSource.uniform(key, 2 * i + 1))
      let r = (-2 * Foundation.log(u1)).squareRoot()
      out[i] = mean + std * Float(r * Foundation.cos(2 * Double.pi * u2))
      if i + 1 < count { out[i + 1] = mean + std * Float(r * Foundation.sin(2 * Double.pi * u2)) }
      i += 2
    }
  }
}

import Foundation
