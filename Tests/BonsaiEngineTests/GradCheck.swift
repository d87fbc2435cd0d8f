// Shared helpers: finite-difference gradient checks and closeness assertions.
import BonsaiEngine
import XCTest

/// Deterministic test values in [-scale, scale].
func values(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
  (0..<n).map { (RandomSource.uniform(mix64(seed), $0) * 2 - 1) * scale }
}

func tensor(_ shape: [Int], seed: UInt64, scale: Float = 1, grad: Bool = true) -> Tensor {
  Tensor(values(shape.reduce(1, *), seed: seed, scale: scale), shape: shape, requiresGrad: grad)
}

/// Checks every input's analytic gradient of sum(f(inputs) * w) against central differences
/// (accumulated in Float64). `f` must rebuild its graph from the inputs' current values on each call.
func assertGradientsMatch(_ inputs: [Tensor], step h: Float = 1e-2, tolerance: Double = 2e-2, maxChecks: Int = 40,
                          file: StaticString = #filePath, line: UInt = #line, _ f: () -> Tensor) {
  for x in inputs { x.grad = nil }
  let out = f()
  let w = Tensor(values(out.count, seed: 999, scale: 1), shape: out.shape)
  (out * w).sum().backward()
  func loss() -> Double {
    let o = withoutGrad { f() }
    var s = 0.0
    for i in 0..<o.count { s += Double(o.data[i]) * Double(w.data[i]) }
    return s
  }
  for (n, x) in inputs.enumerated() {
    guard let g = x.grad else { XCTFail("input \(n) got no gradient", file: file, line: line); continue }
    XCTAssertEqual(g.shape, x.shape, "gradient shape of input \(n)", file: file, line: line)
    let stride = max(1, x.count / maxChecks)
    var worst = 0.0, worstAt = 0
    for i in Swift.stride(from: 0, to: x.count, by: stride) {
      let keep = x.mutableData[i]
      x.mutableData[i] = keep + h
      let up = loss()
      x.mutableData[i] = keep - h
      let down = loss()
      x.mutableData[i] = keep
      let numeric = (up - down) / (2 * Double(h))
      let err = abs(numeric - Double(g.data[i])) / max(1, abs(numeric))
      if err > worst { worst = err; worstAt = i }
    }
    XCTAssertLessThan(worst, tolerance, "input \(n) \(x.shape): worst gradient error \(worst) at element \(worstAt)", file: file, line: line)
  }
}

/// Shape first, then values; reports the worst element.
func assertClose(_ a: Tensor, _ b: [Float], shape: [Int]? = nil, atol: Float = 1e-5, file: StaticString = #filePath, line: UInt = #line) {
  if let shape { XCTAssertEqual(a.shape, shape, "shape", file: file, line: line) }
  XCTAssertEqual(a.count, b.count, "element count", file: file, line: line)
  var worst: Float = 0, at = 0
  for i in 0..<min(a.count, b.count) where abs(a.data[i] - b[i]) > worst { worst = abs(a.data[i] - b[i]); at = i }
  XCTAssertLessThanOrEqual(worst, atol, "worst element \(at): \(a.count > at ? a.data[at] : .nan) vs \(b.count > at ? b[at] : .nan)", file: file, line: line)
}
