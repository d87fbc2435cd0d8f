// Work splitting over the engine's threads. Kernels run on libgomp's thread pool, the same one oneDNN's
// GEMMs use, so the two never fight over the cores (spinning OpenMP workers and a second pool of
// Dispatch threads cost ~10% of a training step). Chunking depends only on the thread count, so
// results (including reductions) are deterministic for a given seed and thread count.
import Foundation
import Synchronization
#if canImport(COMP)
import COMP
#endif
#if BONSAI_OPENBLAS
import COpenBLAS
#endif

/// Engine-wide settings: thread count and allocator set-up.
public enum Engine {
  nonisolated(unsafe) private static var _threads = 0

  private static let configured: Void = {
    #if BONSAI_OPENBLAS
    // OpenBLAS picks its kernels from OPENBLAS_CORETYPE; the older ones halve GEMM speed on AVX-512 CPUs.
    let core = String(cString: openblas_get_corename())
    if ["Haswell", "Zen", "Prescott"].contains(core) {
      FileHandle.standardError.write("warning: OpenBLAS runs its \(core) kernels (OPENBLAS_CORETYPE?); GEMMs will be ~2x slower than AVX-512 allows\n".data(using: .utf8)!)
    }
    #endif
  }()

  /// Threads used by kernels and GEMMs. Defaults to `BONSAI_THREADS` or the number of cores.
  public static var threads: Int {
    get {
      if _threads == 0 {
        _ = configured
        let env = ProcessInfo.processInfo.environment["BONSAI_THREADS"].flatMap(Int.init)
        _threads = max(1, env ?? ProcessInfo.processInfo.activeProcessorCount)
        setGEMMThreads(_threads)
      }
      return _threads
    }
    set {
      _ = configured
      _threads = max(1, newValue)
      #if canImport(COMP)
      omp_set_num_threads(Int32(_threads))
      #endif
      setGEMMThreads(_threads)
    }
  }
}

/// The closure a parallel region runs, passed to libgomp's C entry point through its data pointer.
@usableFromInline
final class ParallelJob {
  @usableFromInline let n: Int
  @usableFromInline let chunks: Int
  @usableFromInline let body: (Range<Int>) -> Void
  @usableFromInline init(n: Int, chunks: Int, body: @escaping (Range<Int>) -> Void) {
    self.n = n; self.chunks = chunks; self.body = body
  }
}

@usableFromInline
func runParallel(_ job: ParallelJob) {
  #if canImport(COMP)
  let ctx = Unmanaged.passUnretained(job).toOpaque()
  GOMP_parallel({ raw in
    let job = Unmanaged<ParallelJob>.fromOpaque(raw!).takeUnretainedValue()
    let c = Int(omp_get_thread_num())
    if c < job.chunks { job.body((job.n * c / job.chunks)..<(job.n * (c + 1) / job.chunks)) }
  }, ctx, UInt32(job.chunks), 0)
  withExtendedLifetime(job) {}
  #else
  DispatchQueue.concurrentPerform(iterations: job.chunks) { c in
    job.body((job.n * c / job.chunks)..<(job.n * (c + 1) / job.chunks))
  }
  #endif
}

/// True inside a parallel region (nested calls then run serially).
@usableFromInline
var inParallelRegion: Bool {
  #if canImport(COMP)
  return omp_in_parallel() != 0
  #else
  return false
  #endif
}

/// Runs `body(range)` over `0..<n` split into at most `Engine.threads` contiguous ranges.
/// Small jobs (below `grain` items per thread) and nested calls run on the calling thread.
@inlinable
public func parallelFor(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
  let threads = Engine.threads
  if threads == 1 || n < 2 * grain || n < 2 || inParallelRegion { body(0..<n); return }
  let chunks = min(threads, n)
  withoutActuallyEscaping(body) { body in
    runParallel(ParallelJob(n: n, chunks: chunks, body: body))
  }
}

/// Hands out chunk indices one at a time to whichever thread asks first.
final class ChunkCounter: @unchecked Sendable {
  let next = Atomic<Int>(0)
  func take() -> Int { next.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Runs `body(chunk)` for every chunk in `0..<n`, each taken by the first free thread: for memory-bound
/// work, where two threads sharing the memory bus finish equal halves at unequal times. Which thread runs
/// a chunk varies; what a chunk computes must not depend on it.
public func parallelChunks(_ n: Int, _ body: (Int) -> Void) {
  let threads = Engine.threads
  if threads == 1 || n < 2 || inParallelRegion { for c in 0..<n { body(c) }; return }
  let counter = ChunkCounter()
  parallelFor(threads) { _ in
    while true {
      let c = counter.take()
      if c >= n { break }
      body(c)
    }
  }
}
