// Data-parallel training (docs/distributed.md; shared/DISTRIBUTED.md): N processes ("ranks") train one
// model. Every rank draws the same global batches; each computes a contiguous shard of each micro-batch's
// rows, padded to the global batch's length so that dropout masks are the single process's; each rank
// weights every loss by its share of the rows that loss averages over (so the ranks' losses sum to the
// single process's loss); the gradients are summed over the ranks in buckets, and every rank makes the
// same optimizer step. Rank 0 alone writes. `Communicator` is the seam: `SingleProcess` here, Open MPI in
// BonsaiDistributed.
import BonsaiEngine
import Foundation

/// The collective operations data parallelism needs. Every rank must call them in the same order.
public protocol Communicator: AnyObject {
  /// This process's rank in 0..<size.
  var rank: Int { get }
  /// How many ranks train together.
  var size: Int { get }
  /// Sums `count` floats at `buffer` over all ranks, in place.
  func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int)
  /// Sums `values` over all ranks, in place.
  func allReduceSum(_ values: inout [Double])
  /// Every rank's bytes, in rank order.
  func allGather(_ bytes: [UInt8]) -> [[UInt8]]
  /// Returns when every rank has called it.
  func barrier()
}

/// One process: every collective is the identity.
public final class SingleProcess: Communicator {
  public init() {}
  public var rank: Int { 0 }
  public var size: Int { 1 }
  public func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {}
  public func allReduceSum(_ values: inout [Double]) {}
  public func allGather(_ bytes: [UInt8]) -> [[UInt8]] { [bytes] }
  public func barrier() {}
}

public enum DataParallel {
  /// The ranks this process trains with: set once at start-up (the `bonsai` tool, under `mpirun`).
  nonisolated(unsafe) public static var world: Communicator = SingleProcess()
  /// Floats per all-reduce bucket (4 MiB: glibc reuses buffers below its mmap threshold; shared/DISTRIBUTED.md 3b).
  nonisolated(unsafe) public static var bucketFloats = 1 << 20
}

/// Which rows of a global micro-batch this rank computes.
public struct BatchShard: Equatable, Sendable {
  /// The first of the global batch's rows this rank computes, and how many rows the global batch has.
  public var first: Int, globalRows: Int
  /// The global batch's padded length in tokens (every shard is padded to it).
  public var tokens: Int
  /// A rank left without rows (a global batch smaller than the ranks) recomputes the last row with
  /// weight 0, so that every rank runs the same collective operations.
  public var weightless: Bool
}

extension SampledBatch {
  /// Rank `rank`'s contiguous share of this batch's rows (sizes differ by at most one), padded to `tokens`.
  public func sharded(rank: Int, of size: Int, tokens: Int) -> SampledBatch {
    let n = indices.count, base = n / size, extra = n % size
    let count = base + (rank < extra ? 1 : 0), first = rank * base + min(rank, extra)
    if count == 0 {
      var b = SampledBatch(indices: [indices[n - 1]], repeated: 0)
      b.shard = BatchShard(first: n - 1, globalRows: n, tokens: tokens, weightless: true)
      return b
    }
    var b = SampledBatch(indices: Array(indices[first..<(first + count)]), repeated: min(max(repeated - first, 0), count))
    b.shard = BatchShard(first: first, globalRows: n, tokens: tokens, weightless: false)
    return b
  }

  /// Whether this batch counts for nothing (a rank's stand-in row).
  public var isWeightless: Bool { shard?.weightless ?? false }
}

/// Gradient sums over the ranks, in buckets, with what they cost (bytes and seconds per step).
public final class GradientSync {
  let communicator: Communicator
  var bucket: [Float] = []
  /// Floats summed, seconds spent summing and seconds spent waiting for the slowest rank since the last `take()`.
  private(set) var floats = 0
  private(set) var seconds = 0.0, waitSeconds = 0.0

  public init(_ communicator: Communicator) { self.communicator = communicator }

  /// Sums every tensor's gradient over the ranks. A gradient some rank lacks is zeros there (the
  /// parameters that have one are agreed first), so every rank reduces the same buffers.
  public func reduceGradients(of parameters: [Tensor]) {
    var present = parameters.map { $0.grad == nil ? 0.0 : 1.0 }
    let start = Date()
    communicator.allReduceSum(&present)  // a few bytes: its time is the wait for the slowest rank's backward pass
    waitSeconds += Date().timeIntervalSince(start)
    for (p, n) in zip(parameters, present) where n > 0 && p.grad == nil { p.grad = Tensor(zeros: p.shape) }
    reduce(parameters.compactMap(\.grad).map { ($0.mutableData, $0.count) })
  }

  /// Sums float buffers over the ranks: small ones packed together into buckets, large ones in bucket-sized pieces.
  public func reduce(_ buffers: [(UnsafeMutablePointer<Float>, Int)]) {
    let start = Date(), capacity = DataParallel.bucketFloats
    if bucket.count < capacity { bucket = [Float](repeating: 0, count: capacity) }
    var packed: [(UnsafeMutablePointer<Float>, Int)] = [], used = 0
    bucket.withUnsafeMutableBufferPointer { b in
      func flush() {
        guard used > 0 else { return }
        var at = 0
        for (p, n) in packed { (b.baseAddress! + at).update(from: p, count: n); at += n }
        communicator.allReduceSum(b.baseAddress!, count: used)
        at = 0
        for (p, n) in packed { p.update(from: b.baseAddress! + at, count: n); at += n }
        packed = []; used = 0
      }
      for (p, n) in buffers {
        if n >= capacity / 4 {  // large: in place, a bucket at a time
          var at = 0
          while at < n { let c = min(capacity, n - at); communicator.allReduceSum(p + at, count: c); at += c }
          continue
        }
        if used + n > capacity { flush() }
        packed.append((p, n)); used += n
      }
      flush()
    }
    floats += buffers.reduce(0) { $0 + $1.1 }
    seconds += Date().timeIntervalSince(start)
  }

  /// Bytes summed, seconds spent summing them and seconds waiting since the last call, for the step's metrics.
  func take() -> (bytes: Int, seconds: Double, wait: Double) {
    defer { floats = 0; seconds = 0; waitSeconds = 0 }
    return (4 * floats, seconds, waitSeconds)
  }
}

extension Communicator {
  /// `body` on rank 0 first (it makes and writes a cache in the run folder), then on the other ranks (which read it).
  public func rankZeroFirst<T>(_ body: () throws -> T) rethrows -> T {
    guard size > 1 else { return try body() }
    if rank == 0 { let r = try body(); barrier(); return r }
    barrier()
    return try body()
  }

  /// Every rank's entries merged (rank order; a key two ranks hold keeps the lower rank's value).
  func allGather<V>(_ entries: [Int: V], encode: (V, inout ByteWriter) -> Void, decode: (inout ByteReader) -> V) -> [Int: V] {
    guard size > 1 else { return entries }
    var w = ByteWriter()
    w.int(entries.count)
    for key in entries.keys.sorted() { w.int(key); encode(entries[key]!, &w) }
    var merged: [Int: V] = [:]
    for bytes in allGather(w.bytes) {
      var r = ByteReader(bytes)
      for _ in 0..<r.int() { let key = r.int(), value = decode(&r); if merged[key] == nil { merged[key] = value } }
    }
    return merged
  }
}

/// Little-endian bytes of ints and floats, for what ranks exchange.
struct ByteWriter {
  var bytes: [UInt8] = []
  mutating func int(_ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 } }
  mutating func float(_ v: Float) { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
  mutating func double(_ v: Double) { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
  mutating func string(_ v: String) { let u = Array(v.utf8); int(u.count); bytes += u }
  mutating func floats(_ v: [Float]) { int(v.count); for x in v { float(x) } }
  mutating func int32s(_ v: [Int32]) { int(v.count); for x in v { withUnsafeBytes(of: x.littleEndian) { bytes += $0 } } }
}

struct ByteReader {
  let bytes: [UInt8]
  var at = 0
  init(_ bytes: [UInt8]) { self.bytes = bytes }
  mutating func load<T: FixedWidthInteger>(_: T.Type) -> T {
    var v: T = 0
    withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: bytes[at..<(at + MemoryLayout<T>.size)]) }
    at += MemoryLayout<T>.size
    return T(littleEndian: v)
  }
  mutating func int() -> Int { Int(load(Int64.self)) }
  mutating func float() -> Float { Float(bitPattern: load(UInt32.self)) }
  mutating func double() -> Double { Double(bitPattern: load(UInt64.self)) }
  mutating func string() -> String { let n = int(); defer { at += n }; return String(decoding: bytes[at..<(at + n)], as: UTF8.self) }
  mutating func floats() -> [Float] { (0..<int()).map { _ in float() } }
  mutating func int32s() -> [Int32] { (0..<int()).map { _ in load(Int32.self) } }
}
