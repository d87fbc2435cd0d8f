// Products with weights kept in GGUF block formats (PackedMatrix): the decoding kernels against a float64
// reference with the same 16-bit activation rounding (so the SIMD code is checked to fp32 round-off) and
// against the exact product within the bound that rounding allows; the prompt/training path and its input
// gradient against the fp32 path of the same (dequantised) weights; quantisers against their error bounds.
import BonsaiEngine
import BonsaiNN
import XCTest

final class PackedMatrixTests: XCTestCase {
  let formats: [PackedFormat] = [.q8_0, .q4_0, .q4_1, .f16, .bf16, .f32]

  func random(_ shape: [Int], seed: UInt64, std: Float = 0.5) -> Tensor { RandomSource(seed: seed).normalTensor(shape, std: std) }

  /// The activations as the kernels see them: per block of 32, d = max|x| / 32767, codes rounded to nearest even.
  func roundedActivations(_ x: [Float]) -> (values: [Double], step: [Double]) {
    var values = [Double](repeating: 0, count: x.count), step = values
    for b in stride(from: 0, to: x.count, by: 32) {
      let amax = x[b..<(b + 32)].map(abs).max()!, d = amax / 32767, id: Float = d != 0 ? 1 / d : 0
      for j in b..<(b + 32) {
        values[j] = Double(d) * Double(Swift.min(32767, Swift.max(-32767, (x[j] * id).rounded(.toNearestOrEven))))
        step[j] = Double(d)
      }
    }
    return (values, step)
  }

  func testQuantizersStayWithinTheirFormatsError() {
    let t = random([4, 256], seed: 1)
    for format in formats {
      let w = PackedMatrix(quantizing: t, to: format).dequantized()
      for b in stride(from: 0, to: t.count, by: 32) {
        let v = (b..<(b + 32)).map { t.data[$0] }, lo = v.min()!, hi = v.max()!, amax = v.map(abs).max()!
        // one code step (fp16 scales add a little), or the float's own rounding for F16/BF16/F32
        let bound: Float = switch format {
        case .q8_0: amax / 127 * 0.57  // half a step, and 127 codes times the fp16 scale's rounding (2^-11)
        case .q4_0: amax / 8 * 1.002
        case .q4_1: (hi - lo) / 15 * 0.51 + abs(lo) * 1e-3
        case .f16: amax * 1e-3
        case .bf16: amax * 4e-3
        case .f32: 0
        }
        for j in 0..<32 { XCTAssertLessThanOrEqual(abs(w.data[b + j] - v[j]), bound, "\(format) element \(b + j)") }
      }
    }
  }

  func testDecodingProductsEqualTheirReferenceAndStayWithinTheActivationRounding() {
    // every kernel set this build has (avx512, avx2, scalar), rows of an even and an odd number of blocks, and
    // of more blocks than the AVX-512 tiles copy scales for at a time (64); 77 outputs: tiles of 16 and the rest
    XCTAssertEqual(availablePackedKernels.first, packedKernels, "the best kernels are the default")
    XCTAssertFalse(usePackedKernels("no-such-kernels"))
    defer { usePackedKernels(availablePackedKernels[0]) }
    for kernels in availablePackedKernels {
      XCTAssertTrue(usePackedKernels(kernels))
      XCTAssertEqual(packedKernels, kernels)
      for inF in [320, 352, 2112] { checkDecodingProducts(inF: inF, kernels: kernels) }
    }
  }

  func checkDecodingProducts(inF: Int, kernels: String) {
    let outF = 77
    let w32 = random([outF, inF], seed: 2), bias = random([outF], seed: 3)
    for format in formats {
      let packed = PackedMatrix(quantizing: w32, to: format), w = packed.dequantized()
      for rows in [1, 2, 3, 5, 8] {
        let x = random([rows, inF], seed: UInt64(10 + rows))
        let y = withoutGrad { x.linear(packed: packed, bias: bias) }
        XCTAssertEqual(y.shape, [rows, outF])
        for r in 0..<rows {
          let xr = Array(UnsafeBufferPointer(start: x.data + r * inF, count: inF))
          let (rounded, step) = format.isQuantized ? roundedActivations(xr) : (xr.map(Double.init), [Double](repeating: 0, count: inF))
          for o in 0..<outF {
            var reference = Double(bias.data[o]), exact = reference, scale = 0.0, bound = 0.0
            for j in 0..<inF {
              let wj = Double(w.data[o * inF + j])
              reference += wj * rounded[j]; exact += wj * Double(xr[j])
              scale += abs(wj * Double(xr[j])); bound += abs(wj) * step[j] / 2
            }
            let got = Double(y.data[r * outF + o])
            XCTAssertEqual(got, reference, accuracy: 2e-6 * (scale + 1), "\(kernels) \(format) rows \(rows) in \(inF): [\(r), \(o)] against the rounded activations")
            XCTAssertEqual(got, exact, accuracy: bound + 2e-6 * (scale + 1), "\(kernels) \(format) rows \(rows) in \(inF): [\(r), \(o)] within the activation rounding")
          }
        }
      }
    }
  }

  func testPromptProductsAndInputGradientEqualTheFP32Path() {
    let inF = 96, outF = 40, rows = 20
    let w32 = random([outF, inF], seed: 4), upstream = random([rows, outF], seed: 5)
    for format in formats {
      let packed = PackedMatrix(quantizing: w32, to: format), w = packed.dequantized()
      let x = random([rows, inF], seed: 6).requiringGrad(), b = random([outF], seed: 7).requiringGrad()
      let y = x.linear(packed: packed, bias: b)
      (y * upstream).sum().backward()
      let gx = x.grad!.scalars, gb = b.grad!.scalars
      Tensor.clearGrad([x, b])
      let yRef = x.linear(weight: w, bias: b)
      (yRef * upstream).sum().backward()
      for (a, e) in zip(y.scalars, yRef.scalars) { XCTAssertEqual(a, e, accuracy: 1e-5, "\(format): output") }
      for (a, e) in zip(gx, x.grad!.scalars) { XCTAssertEqual(a, e, accuracy: 1e-5, "\(format): input gradient") }
      for (a, e) in zip(gb, b.grad!.scalars) { XCTAssertEqual(a, e, accuracy: 1e-5, "\(format): bias gradient") }
    }
  }

  func testInputGradientByFiniteDifferences() {
    let packed = PackedMatrix(quantizing: random([12, 64], seed: 8), to: .q4_1)
    let x = random([10, 64], seed: 9).requiringGrad(), upstream = random([10, 12], seed: 10)
    (x.linear(packed: packed, bias: nil) * upstream).sum().backward()
    let loss: (Tensor) -> Double = { xv in
      withoutGrad { Double((xv.linear(packed: packed, bias: nil) * upstream).sum().item) }
    }
    for i in [0, 63, 100, 321, 639] {
      let plus = x.detached(), minus = x.detached(), h: Float = 1e-2
      plus.mutableData[i] += h; minus.mutableData[i] -= h
      XCTAssertEqual(Double(x.grad!.data[i]), (loss(plus) - loss(minus)) / Double(2 * h), accuracy: 2e-3, "d loss / d x[\(i)]")
    }
  }

  func testManyChunksOfRows() {
    // 70,000 x 32 floats is more than one 4 MB chunk of dequantised rows
    let w32 = random([70_000, 32], seed: 11), x = random([9, 32], seed: 12)
    let packed = PackedMatrix(quantizing: w32, to: .q8_0)
    let y = withoutGrad { x.linear(packed: packed, bias: nil) }, yRef = withoutGrad { x.linear(weight: packed.dequantized(), bias: nil) }
    var worst: Float = 0
    for (a, e) in zip(y.scalars, yRef.scalars) { worst = max(worst, abs(a - e)) }
    XCTAssertLessThan(worst, 1e-5)
  }

  func testLayersEmbeddingAndPlaceholders() {
    let rng = RandomSource(seed: 13)
    let q = Linear(64, 48, rng: rng), k = Linear(64, 16, rng: rng), e = Embedding(50, 64, rng: rng)
    let wq = q.weight.detached(), wk = k.weight.detached()
    let pq = PackedMatrix(quantizing: wq, to: .q4_0), pk = PackedMatrix(quantizing: wk, to: .f16), pe = PackedMatrix(quantizing: e.weight, to: .q8_0)
    q.pack(pq); k.pack(pk); e.pack(pe)
    XCTAssertEqual(q.weight.count, 0, "the fp32 weight is dropped")
    let x = random([3, 64], seed: 14)
    let both = withoutGrad { Linear.outputs(x, [q, k]) }
    XCTAssertEqual(both[0].scalars, withoutGrad { q(x) }.scalars, "q in one region with k equals q alone")
    XCTAssertEqual(both[1].scalars, withoutGrad { k(x) }.scalars)
    let rows = e([4, 0, 49])
    let table = pe.dequantized()
    for (i, id) in [4, 0, 49].enumerated() { for j in 0..<64 { XCTAssertEqual(rows.data[i * 64 + j], table.data[id * 64 + j]) } }
    XCTAssertEqual(withoutGrad { e.logits(x) }.shape, [3, 50])

    final class Pair: Module { let q: Linear, e: Embedding; init(_ q: Linear, _ e: Embedding) { self.q = q; self.e = e } }
    let m = Pair(q, e)
    XCTAssertEqual(m.parameterCount, 48 * 64 + 48 + 50 * 64, "packed weights count by their elements")
    let materialized = Dictionary(uniqueKeysWithValues: m.materializedParameters().map { ($0.key, $0.tensor) })
    XCTAssertEqual(materialized["q.weight"]?.shape, [48, 64])
    XCTAssertEqual(materialized["q.weight"]?.scalars, pq.dequantized().scalars)
    XCTAssertEqual(materialized["e.weight"]?.shape, [50, 64])
  }
}
