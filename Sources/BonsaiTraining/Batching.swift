// Batches grouped by length: shuffle, cut into pools of 50 batches, sort each pool by length, cut into
// batches and shuffle the batch order. Padding then costs little while the order stays random.
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
