// Work splitting over the engine's threads. Chunking depends only on the thread count, so results
// (including reductions) are deterministic for a given seed and thread count.
import Dispatch
import Foundation
import CDNNL

/// Engine-wide settings: thread count and GEMM backend set-up.
public enum Engine {
  nonisolated(unsafe) private static var _threads = 0

  /// Threads used by kernels and GEMMs. Defaults to `BONSAI_THREADS` or the number of cores.
  public static var threads: Int {
    get {
      if _threads == 0 {
        // Keep freed activation blocks in the heap instead of returning them to the kernel: every step
        // allocates the same sizes again, and fresh pages cost a page fault each.
        _ = mallopt(M_MMAP_THRESHOLD, 512 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 1 << 30)
        let env = ProcessInfo.processInfo.environment["BONSAI_THREADS"].flatMap(Int.init)
        _threads = max(1, env ?? ProcessInfo.processInfo.activeProcessorCount)
        omp_set_num_threads(Int32(_threads))
      }
      return _threads
    }
    set {
      _threads = max(1, newValue)
      omp_set_num_threads(Int32(_threads))
    }
  }
}

/// Runs `body(chunk, range)` over `0..<n` split into at most `Engine.threads` contiguous ranges.
/// Small jobs (below `grain` items) run on the calling thread.
@inlinable
public func parallelFor(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
  let threads = Engine.threads
  if threads == 1 || n < 2 * grain || n < 2 { body(0..<n); return }
  let chunks = min(threads, n)
  withoutActuallyEscaping(body) { body in
    nonisolated(unsafe) let f = body
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
      let lo = n * c / chunks, hi = n * (c + 1) / chunks
      f(lo..<hi)
    }
  }
}
