// Data parallelism's pieces without MPI (the CLI tests run the real thing under mpirun): how a global batch
// is shared among ranks, and the bucketed gradient sums (a stand-in communicator that sums N equal ranks).
import BonsaiEngine
import BonsaiTraining
import XCTest

/// N ranks that all hold the same values: a sum multiplies by N. Records the size of each call.
final class EqualRanks: Communicator {
  let size: Int
  var calls: [Int] = []
  init(_ size: Int) { self.size = size }
  var rank: Int { 0 }
  func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) { calls.append(count); for i in 0..<count { buffer[i] *= Float(size) } }
  func allReduceSum(_ values: inout [Double]) { values = values.map { $0 * Double(size) } }
  func allGather(_ bytes: [UInt8]) -> [[UInt8]] { [[UInt8]](repeating: bytes, count: size) }
  func barrier() {}
}

final class DataParallelTests: XCTestCase {
  func testShardsCoverTheBatchInOrderAndSplitTheRepeatedHalf() {
    let batch = SampledBatch(indices: [10, 11, 12, 13, 14, 15, 16], repeated: 3)
    let shards = (0..<3).map { batch.sharded(rank: $0, of: 3, tokens: 9) }
    XCTAssertEqual(shards.flatMap(\.indices), batch.indices, "contiguous, in rank order")
    XCTAssertEqual(shards.map(\.indices.count), [3, 2, 2])
    XCTAssertEqual(shards.map(\.repeated), [3, 0, 0], "the repeated rows are the global batch's first 3")
    XCTAssertEqual(shards.map { $0.shard!.first }, [0, 3, 5])
    XCTAssertTrue(shards.allSatisfy { $0.shard!.tokens == 9 && $0.shard!.globalRows == 7 && !$0.isWeightless })
    let split = SampledBatch(indices: [1, 2, 3, 4], repeated: 2).sharded(rank: 1, of: 4, tokens: 3)
    XCTAssertEqual(split.repeated, 1)
    // fewer rows than ranks: the rank left over recomputes the last row with weight 0
    let spare = SampledBatch(indices: [5]).sharded(rank: 1, of: 2, tokens: 4)
    XCTAssertEqual(spare.indices, [5]); XCTAssertTrue(spare.isWeightless)
    XCTAssertFalse(SampledBatch(indices: [5]).sharded(rank: 0, of: 2, tokens: 4).isWeightless)
  }

  func testBucketedSumsPackSmallGradientsAndSplitLargeOnes() {
    let saved = DataParallel.bucketFloats
    DataParallel.bucketFloats = 16
    defer { DataParallel.bucketFloats = saved }
    let ranks = EqualRanks(3), sync = GradientSync(ranks)
    let sizes = [3, 3, 3, 3, 3, 3, 40, 2]
    let params = sizes.enumerated().map { i, n in Tensor((0..<n).map { Float($0 + 100 * i) }, shape: [n]).requiringGrad() }
    for p in params.dropLast() { p.grad = Tensor(p.scalars, shape: p.shape) }  // the last has no gradient on any rank
    sync.reduceGradients(of: params)
    for p in params.dropLast() { XCTAssertEqual(p.grad!.scalars, p.scalars.map { $0 * 3 }) }
    XCTAssertNil(params.last!.grad, "no rank made it: it stays absent")
    XCTAssertEqual(ranks.calls, [15, 16, 16, 8, 3], "five small ones packed, the sixth starts a new bucket; 40 (>= a quarter bucket) in place in pieces of 16")
  }
}
