// Matrix products go to one small interface: oneDNN's f32 sgemm on Linux (~260 GFLOP/s per core on
// Zen 5, f32-exact, unaffected by the OPENBLAS_* variables), OpenBLAS when built with
// BONSAI_BLAS=openblas, Accelerate on Apple platforms.
#if canImport(Accelerate)
import Accelerate
#elseif BONSAI_OPENBLAS
import COpenBLAS
#else
import CDNNL
#endif
#if canImport(COMP)
import COMP
#endif

/// Whether an operand is used as stored or transposed.
public enum Transpose: Sendable { case no, yes }

/// C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, row-major, with leading dimensions.
@inlinable
public func gemm(
  _ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int, alpha: Float = 1,
  _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
  beta: Float = 0, _ c: UnsafeMutablePointer<Float>, ldc: Int
) {
  if m == 0 || n == 0 { return }
  if k == 0 {
    if beta == 0 { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
    else if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
    return
  }
  #if canImport(Accelerate) || BONSAI_OPENBLAS
  cblas_sgemm(CblasRowMajor, ta == .no ? CblasNoTrans : CblasTrans, tb == .no ? CblasNoTrans : CblasTrans,
              Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  #else
  let status = dnnl_sgemm(
    CChar(UInt8(ascii: ta == .no ? "N" : "T")), CChar(UInt8(ascii: tb == .no ? "N" : "T")),
    Int64(m), Int64(n), Int64(k), alpha, a, Int64(lda), b, Int64(ldb), beta, c, Int64(ldc))
  precondition(status == dnnl_success, "dnnl_sgemm failed with status \(status.rawValue) for m=\(m) n=\(n) k=\(k)")
  #endif
}

/// Name of the GEMM backend compiled in.
public var gemmBackend: String {
  #if canImport(Accelerate)
  return "Accelerate"
  #elseif BONSAI_OPENBLAS
  return "OpenBLAS (\(String(cString: openblas_get_corename())))"
  #else
  return "oneDNN"
  #endif
}

/// Sets the GEMM library's own thread count (OpenBLAS keeps its own pool; oneDNN uses libgomp's).
@usableFromInline
func setGEMMThreads(_ n: Int) {
  #if BONSAI_OPENBLAS
  openblas_set_num_threads(Int32(n))
  #elseif canImport(COMP)
  omp_set_num_threads(Int32(n))
  #endif
}

/// Runs `body` (which issues small products from `parallelFor` workers) with single-threaded GEMMs.
/// Call it outside the parallel region. oneDNN already runs single-threaded inside an OpenMP region;
/// OpenBLAS needs its global thread count lowered.
@inlinable
public func withSingleThreadedGEMM(_ body: () -> Void) {
  #if BONSAI_OPENBLAS
  setGEMMThreads(1)
  body()
  setGEMMThreads(Engine.threads)
  #else
  body()
  #endif
}

/// Measures sgemm throughput (GFLOP/s) on an n x n x n product, for benchmark reports.
public func measureSGEMM(n: Int = 1024, seconds: Double = 0.5) -> Double {
  let a = Tensor(repeating: 0.5, shape: [n, n]), b = Tensor(repeating: 0.25, shape: [n, n])
  let c = Tensor(zeros: [n, n])
  _ = Engine.threads
  gemm(.no, .no, m: n, n: n, k: n, a.data, lda: n, b.data, ldb: n, c.mutableData, ldc: n)
  var calls = 0
  let start = DispatchTime.now().uptimeNanoseconds
  var elapsed = 0.0
  while elapsed < seconds {
    gemm(.no, .no, m: n, n: n, k: n, a.data, lda: n, b.data, ldb: n, c.mutableData, ldc: n)
    calls += 1
    elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
  }
  return 2 * Double(n * n * n) * Double(calls) / elapsed / 1e9
}

import Dispatch
