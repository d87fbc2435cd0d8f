// Large tensor buffers come from page-aligned mmap blocks, and freed blocks are kept by exact size for
// the next request. A training step allocates the same sizes in the same order every time, so after
// the first step nearly every activation reuses a block: no page faults, no page clearing, and no
// heap fragmentation (glibc's heap grew ~200 MiB past the live peak on a MiniLM step).
// How much is kept: the blocks in use plus the cached ones may fill the high-water mark of blocks in
// use (the process's peak, reached anyway), plus `slack`. Freed blocks are always cached; a miss that
// would map past that bound first returns the oldest cached blocks. So the activations freed during a
// backward pass wait for the next forward pass (which would page-fault them in again) without raising
// the peak, and new sizes (batches of another length) displace old ones instead of stacking on them.
// Buffers freed inside `BlockCache.bypassing` go straight back to the kernel: parameter gradients
// dropped before a forward pass would otherwise sit in the cache while activations peak.
import Foundation

public final class BlockCache: @unchecked Sendable {
  static let shared = BlockCache()

  /// Blocks below this size use malloc.
  static let threshold = 64 << 10
  /// Cached bytes allowed beyond the high-water mark: what the cache may add to the process's peak. At
  /// 64 MiB a SmolLM2 step peaked ~45 MiB higher than at 16 (blocks only the backward pass uses stayed
  /// cached through the forward pass's peak); at 16 a run of real batches of varying length maps ~40 MiB
  /// more per step again (~10k page faults, well under 1% of its time).
  static let slack = 16 << 20

  private var freeBlocks: [Int: [UnsafeMutableRawPointer]] = [:]
  /// Cached blocks oldest first, for eviction.
  private var order: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
  private var cachedBytes = 0
  /// Bytes of blocks handed out and not yet freed, and their high-water mark.
  private var inUseBytes = 0, peakInUseBytes = 0
  private var bypass = false
  private let lock = NSLock()
  private let page = Int(sysconf(Int32(_SC_PAGESIZE)))

  /// Size classes, four per octave (at most 25% slack), so batches of varying length reuse blocks.
  private func rounded(_ bytes: Int) -> Int {
    let octave = Int.bitWidth - 1 - bytes.leadingZeroBitCount
    let step = max(page, 1 << max(octave - 2, 0))
    return (bytes + step - 1) / step * step
  }

  /// Runs `body` with freed tensor buffers unmapped at once instead of cached.
  public static func bypassing(_ body: () -> Void) {
    shared.lock.withLock { shared.bypass = true }
    body()
    shared.lock.withLock { shared.bypass = false }
  }

  /// Bytes currently cached for reuse.
  public static var cachedBytes: Int { shared.lock.withLock { shared.cachedBytes } }

  /// Returns every cached block to the kernel.
  public static func trim() {
    let blocks: [(Int, [UnsafeMutableRawPointer])] = shared.lock.withLock {
      defer { shared.freeBlocks = [:]; shared.order = []; shared.cachedBytes = 0 }
      return shared.freeBlocks.map { ($0.key, $0.value) }
    }
    for (size, list) in blocks { for p in list { munmap(p, size) } }
  }

  func allocate(bytes: Int) -> UnsafeMutableRawPointer {
    guard bytes >= BlockCache.threshold else {
      return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    }
    let size = rounded(bytes)
    var evicted: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
    let reused: UnsafeMutableRawPointer? = lock.withLock {
      inUseBytes += size
      peakInUseBytes = max(peakInUseBytes, inUseBytes)
      if let p = freeBlocks[size]?.popLast() {
        cachedBytes -= size
        if let i = order.lastIndex(where: { $0.pointer == p }) { order.remove(at: i) }
        return p
      }
      while inUseBytes + cachedBytes > peakInUseBytes + BlockCache.slack, !order.isEmpty {
        let victim = order.removeFirst()
        if let i = freeBlocks[victim.size]?.firstIndex(of: victim.pointer) { freeBlocks[victim.size]!.remove(at: i) }
        cachedBytes -= victim.size
        evicted.append(victim)
      }
      return nil
    }
    for v in evicted { munmap(v.pointer, v.size) }
    if let reused { return reused }
    guard let m = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), m != MAP_FAILED else {
      fatalError("out of memory: cannot map \(size >> 20) MiB for a tensor")
    }
    return m
  }

  func free(_ p: UnsafeMutableRawPointer, bytes: Int) {
    guard bytes >= BlockCache.threshold else { p.deallocate(); return }
    let size = rounded(bytes)
    let kept = lock.withLock { () -> Bool in
      inUseBytes -= size
      guard !bypass else { return false }
      freeBlocks[size, default: []].append(p)
      order.append((size, p))
      cachedBytes += size
      return true
    }
    if !kept { munmap(p, size) }
  }
}
