// Batch samplers. Length-grouped: shuffle, cut into pools of 50 batches, sort each pool by length, cut
// into batches and shuffle the batch order, so padding costs little while the order stays random.
// Repeat-half (DLB's sampling): each batch repeats half of the previous one.
import BonsaiData

/// Batches (lists of example indices) of one epoch, reproducible from (seed, epoch).
public func lengthGroupedBatches(_ indices: [Int], lengths: [Int], batchSize: Int, seed: UInt64, epoch: Int) -> [[Int]] {
  var rng = SplitMix(seed: seed &+ 0x5EED &* UInt64(epoch + 1))
  var order = indices
  rng.shuffle(&order)
  let pool = batchSize * 50
  var batches: [[Int]] = []
  for start in stride(from: 0, to: order.count, by: pool) {
    let chunk = order[start..<min(start + pool, order.count)].sorted { lengths[$0] > lengths[$1] }
    for b in stride(from: 0, to: chunk.count, by: batchSize) { batches.append(Array(chunk[b..<min(b + batchSize, chunk.count)])) }
  }
  rng.shuffle(&batches)
  return batches
}

/// Batches that repeat half of the previous step's examples: the epoch's examples are cut into
/// length-grouped chunks of half a batch, and step t trains on chunk t-1 (repeated, first) and chunk t
/// (new). Every example but the last chunk's is seen in two consecutive steps; the chain starts afresh
/// each epoch, so the first step of an epoch has no repeated half.
public func repeatHalfBatches(_ indices: [Int], lengths: [Int], batchSize: Int, seed: UInt64, epoch: Int) -> [(repeated: [Int], new: [Int])] {
  let chunks = lengthGroupedBatches(indices, lengths: lengths, batchSize: max(1, batchSize / 2), seed: seed, epoch: epoch)
  return chunks.indices.map { t in (t == 0 ? [] : chunks[t - 1], chunks[t]) }
}

/// Length-grouped batches of `batchSize`.
struct LengthGroupedSampler: BatchSampler {
  public let indices: [Int], lengths: [Int], batchSize: Int, seed: UInt64
  public init(indices: [Int], lengths: [Int], batchSize: Int, seed: UInt64) {
    self.indices = indices; self.lengths = lengths; self.batchSize = batchSize; self.seed = seed
  }
  public var batchesPerEpoch: Int { (indices.count + batchSize - 1) / batchSize }
  public func batches(epoch: Int) -> [SampledBatch] {
    lengthGroupedBatches(indices, lengths: lengths, batchSize: batchSize, seed: seed, epoch: epoch).map { SampledBatch(indices: $0) }
  }
}

/// Batches of `batchSize` whose first half repeats the previous batch's second half (`repeatHalfBatches`):
/// half a batch of new examples per step.
struct RepeatHalfSampler: BatchSampler {
  public let indices: [Int], lengths: [Int], batchSize: Int, seed: UInt64
  public init(indices: [Int], lengths: [Int], batchSize: Int, seed: UInt64) {
    self.indices = indices; self.lengths = lengths; self.batchSize = batchSize; self.seed = seed
  }
  public var batchesPerEpoch: Int { let chunk = max(1, batchSize / 2); return (indices.count + chunk - 1) / chunk }
  public func batches(epoch: Int) -> [SampledBatch] {
    repeatHalfBatches(indices, lengths: lengths, batchSize: batchSize, seed: seed, epoch: epoch)
      .map { SampledBatch(indices: $0.repeated + $0.new, repeated: $0.repeated.count) }
  }
}
