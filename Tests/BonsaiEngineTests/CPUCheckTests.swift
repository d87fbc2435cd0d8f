// The start-up CPU check (Sources/CBonsaiCPUCheck): what it reads off the CPU, what it finds missing,
// and that this very binary's build features are all present (else it could not have started).
import CBonsaiCPUCheck
import XCTest

final class CPUCheckTests: XCTestCase {
  func missing(_ required: String, _ available: String) -> String {
    var out = [CChar](repeating: 0, count: 256)
    let n = bonsai_cpu_missing_features(required, available, &out, out.count)
    XCTAssertGreaterThanOrEqual(n, 0)
    let s = String(cString: out)
    XCTAssertEqual(Int(n), s.split(separator: " ").count, "count of \(s)")
    return s
  }

  func testMissingFeaturesAreWholeWordsInOrder() {
    XCTAssertEqual(missing(" avx2 fma avx512f avx512bw", " sse3 avx avx2 fma"), "avx512f avx512bw")
    XCTAssertEqual(missing(" avx512f", " avx512f_extra avx512"), "avx512f", "a prefix or an extension of a name is not the name")
    XCTAssertEqual(missing("", " avx2"), "")
    XCTAssertEqual(missing(" avx2", ""), "avx2")
  }

  func testTooSmallBufferIsAnErrorNotAnOverflow() {
    var out = [CChar](repeating: 0, count: 4)
    XCTAssertEqual(bonsai_cpu_missing_features(" avx512f", "", &out, out.count), -1)
  }

  func testThisBuildRunsOnlyWhereItsFeaturesArePresent() throws {
    var host = [CChar](repeating: 0, count: 1024)
    XCTAssertEqual(bonsai_cpu_host_features(&host, host.count), 0)
    let hostFeatures = String(cString: host)
    let build = String(cString: bonsai_cpu_build_features())
    XCTAssertEqual(missing(build, hostFeatures), "", "this test binary started, so the check must have found nothing missing")
    #if arch(x86_64)
    // Every x86-64 machine of this project has AVX2 and FMA, and every Bonsai build but "none" uses them.
    XCTAssertTrue(hostFeatures.contains(" avx2"), hostFeatures)
    let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    if let flags = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) {
      let kernel = Set(flags.split(separator: " ").map(String.init))
      for f in ["avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"] {
        XCTAssertEqual(hostFeatures.split(separator: " ").contains(Substring(f)), kernel.contains(f), "\(f): cpuid and /proc/cpuinfo disagree")
      }
    }
    #endif
    #if arch(x86_64)
    if ["native", "haswell"].contains(String(cString: bonsai_cpu_build_name())) { XCTAssertTrue(build.contains(" avx2"), "a build for \(String(cString: bonsai_cpu_build_name())) should use AVX2: \(build)") }
    #endif
    var brand = [CChar](repeating: 0, count: 64)
    bonsai_cpu_brand(&brand, brand.count)
    XCTAssertFalse(String(cString: brand).isEmpty)
  }
}
