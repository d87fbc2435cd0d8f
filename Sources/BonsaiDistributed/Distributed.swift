// Open MPI as the ranks of data-parallel training (BonsaiTraining/DataParallel.swift; shared/DISTRIBUTED.md),
// compiled with the package trait MPI only (`swift build --traits MPI`). `mpirun -np N bonsai finetune ...`
// starts N processes; `Distributed.start()` makes them one job. A build without the trait that finds itself
// launched by mpirun stops with one line, instead of training N copies into one run folder.
import BonsaiEngine
import BonsaiTraining
import Foundation
#if MPI
import CMPI
#endif

public enum DistributedError: LocalizedError {
  case notBuiltWithMPI(ranks: Int)
  public var errorDescription: String? {
    switch self {
    case let .notBuiltWithMPI(ranks):
      return "launched as one of \(ranks) MPI ranks, but this bonsai was built without MPI: build it with `swift build -c release --traits MPI` (scripts/install-deps.sh --mpi installs Open MPI)"
    }
  }
}

public enum Distributed {
  /// Whether this binary was built with the MPI trait.
  public static var isAvailable: Bool {
    #if MPI
    return true
    #else
    return false
    #endif
  }

  /// Ranks the launcher started (Open MPI's or PMI's environment), 1 when not launched by mpirun.
  public static var launchedRanks: Int {
    let env = ProcessInfo.processInfo.environment
    return (env["OMPI_COMM_WORLD_SIZE"] ?? env["PMI_SIZE"]).flatMap(Int.init) ?? 1
  }

  /// This process's rank in the job mpirun launched (0 for a lone process), read before MPI is joined.
  public static var launchedRank: Int {
    let env = ProcessInfo.processInfo.environment
    return (env["OMPI_COMM_WORLD_RANK"] ?? env["PMI_RANK"]).flatMap(Int.init) ?? 0
  }

  /// Joins the job this process was launched into and makes it `DataParallel.world`; nothing in a lone process.
  /// Threads per rank default to the cores the rank may use, shared among the ranks on its machine.
  public static func start() throws {
    let ranks = launchedRanks
    guard ranks > 1 else { return }
    #if MPI
    if DataParallel.world.size > 1 { return }
    DataParallel.world = MPIWorld()
    if let mb = ProcessInfo.processInfo.environment["BONSAI_BUCKET_MB"].flatMap(Double.init), mb > 0 {  // for the benchmark's ablation
      DataParallel.bucketFloats = max(1024, Int(mb * 262_144))
    }
    if ProcessInfo.processInfo.environment["BONSAI_THREADS"] == nil {
      let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap(Int.init) ?? 1
      let cores = sysconf(Int32(_SC_NPROCESSORS_ONLN))
      Engine.threads = max(1, min(ProcessInfo.processInfo.activeProcessorCount, cores / max(local, 1)))
    }
    #else
    throw DistributedError.notBuiltWithMPI(ranks: ranks)
    #endif
  }

  /// Ends every rank of the job (after an error on this one, so that the others do not wait for it).
  public static func abort(code: Int32) {
    #if MPI
    if DataParallel.world.size > 1 { MPI_Abort(bonsai_mpi_comm_world(), code) }
    #endif
  }
}

#if MPI
/// MPI_COMM_WORLD: blocking collectives, called from the main thread only (MPI_THREAD_FUNNELED).
final class MPIWorld: Communicator {
  let rank: Int, size: Int

  init() {
    var initialized: Int32 = 0
    MPI_Initialized(&initialized)
    if initialized == 0 {
      var provided: Int32 = 0
      MPI_Init_thread(nil, nil, Int32(MPI_THREAD_FUNNELED), &provided)
      atexit { var finalized: Int32 = 0; MPI_Finalized(&finalized); if finalized == 0 { MPI_Finalize() } }
    }
    var r: Int32 = 0, n: Int32 = 0
    MPI_Comm_rank(bonsai_mpi_comm_world(), &r)
    MPI_Comm_size(bonsai_mpi_comm_world(), &n)
    rank = Int(r); size = Int(n)
  }

  func allReduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
    var at = 0
    while at < count {  // MPI counts are Int32
      let n = min(count - at, Int(Int32.max))
      MPI_Allreduce(bonsai_mpi_in_place(), buffer + at, Int32(n), bonsai_mpi_float(), bonsai_mpi_sum(), bonsai_mpi_comm_world())
      at += n
    }
  }

  func allReduceSum(_ values: inout [Double]) {
    guard !values.isEmpty else { return }
    values.withUnsafeMutableBufferPointer {
      _ = MPI_Allreduce(bonsai_mpi_in_place(), $0.baseAddress, Int32($0.count), bonsai_mpi_double(), bonsai_mpi_sum(), bonsai_mpi_comm_world())
    }
  }

  func allGather(_ bytes: [UInt8]) -> [[UInt8]] {
    var count = Int32(bytes.count), counts = [Int32](repeating: 0, count: size)
    MPI_Allgather(&count, 1, bonsai_mpi_int(), &counts, 1, bonsai_mpi_int(), bonsai_mpi_comm_world())
    var offsets = [Int32](repeating: 0, count: size)
    for r in 1..<max(size, 1) { offsets[r] = offsets[r - 1] + counts[r - 1] }
    var all = [UInt8](repeating: 0, count: Int(counts.reduce(0, +)))
    bytes.withUnsafeBufferPointer { mine in
      all.withUnsafeMutableBufferPointer { out in
        _ = MPI_Allgatherv(mine.baseAddress, count, bonsai_mpi_byte(), out.baseAddress, counts, offsets, bonsai_mpi_byte(), bonsai_mpi_comm_world())
      }
    }
    return (0..<size).map { Array(all[Int(offsets[$0])..<Int(offsets[$0] + counts[$0])]) }
  }

  func barrier() { MPI_Barrier(bonsai_mpi_comm_world()) }
}
#endif
