// bonsai-bench --step-floor [--rows 512]: the least time a full fine-tuning step of SmolLM2-135M with
// --selective-checkpointing can take on this machine, from the work it cannot skip, each piece timed alone
// (fastest of 5 after a warm-up, caches warm): every matrix product at the shapes the step makes them (the
// layers' forward, input-gradient and weight-gradient products; the tied head's logits and input gradient a
// block of 128 rows at a time; its late weight gradient from logits made again, 4,096 vocabulary rows at a
// time), the fused causal attention (forward twice: the pass and the recomputation; backward once) and AdamW
// over every parameter. Everything else the step does (norms, rotary positions, SwiGLU, residual sums, the
// softmax of the logits, page faults, threads waiting on each other) is left out, so the measured step is
// slower by exactly that. Prints one JSON line: each part's GFLOP and seconds, the sum and its tokens/s, and the
// FMA peak of the threads (`fmaPeak`), against which the products' rate can be read.
import BonsaiEngine
import BonsaiNN
import Foundation

func printStepFloor() {
  let n = Int(arg("rows", "512"))!, batch = 4, tokens = n / batch
  let (C, KV, I, V, L, H, D) = (576, 192, 1536, 49152, 30, 9, 64)
  // the blocks the step's cross-entropy makes its logits in (LinearCrossEntropy.swift)
  let headRows = Tensor.crossEntropyBlockRows, vocabBlock = Swift.max(16, Swift.min(V, Tensor.lateLogitBlockFloats / n))
  guard n > 0 && n % headRows == 0 else {
    FileHandle.standardError.write("error: --rows \(n): give a positive multiple of \(headRows) (the step's 4 sequences)\n".data(using: .utf8)!)
    exit(1)
  }
  // operands large enough for every product below
  let a = Tensor(repeating: 0.01, shape: [n * V]), b = Tensor(repeating: 0.01, shape: [V * C]), c = Tensor(zeros: [n * V])
  func fastest(_ body: () -> Void) -> Double { fastestSeconds(warmUp: true, repeats: 5, body) }
  /// Seconds of `count` products op(A)[m, k] op(B)[k, n], and their GFLOP.
  func products(_ ta: Transpose, _ tb: Transpose, m: Int, n: Int, k: Int, count: Int) -> (Double, Double) {
    let s = fastest {
      gemm(ta, tb, m: m, n: n, k: k, a.data, lda: ta == .no ? k : m, b.data, ldb: tb == .no ? n : k, c.mutableData, ldc: n)
    }
    return (2 * Double(m * n * k * count) / 1e9, s * Double(count))
  }
  var parts: [(String, Double, Double)] = []
  func add(_ name: String, _ pieces: [(Double, Double)]) {
    parts.append((name, pieces.map(\.0).reduce(0, +), pieces.map(\.1).reduce(0, +)))
  }
  let linears = [(C, C), (KV, C), (KV, C), (C, C), (I, C), (I, C), (C, I)]  // q k v o gate up down: (out, in)
  // a first round of the forward products, not counted: whatever is measured first otherwise reads up to ~10% slow
  _ = linears.map { products(.no, .yes, m: n, n: $0.0, k: $0.1, count: L) }
  add("layer products, forward", linears.map { products(.no, .yes, m: n, n: $0.0, k: $0.1, count: L) })
  add("layer products, input gradients", linears.map { products(.no, .no, m: n, n: $0.1, k: $0.0, count: L) })
  add("layer products, weight gradients", linears.map { products(.yes, .no, m: $0.0, n: $0.1, k: n, count: L) })
  add("head logits and input gradient", [products(.no, .yes, m: headRows, n: V, k: C, count: n / headRows),
                                          products(.no, .no, m: headRows, n: C, k: V, count: n / headRows)])
  let lastBlock = V % vocabBlock
  add("head weight gradient (logits again)", [products(.no, .yes, m: n, n: vocabBlock, k: C, count: V / vocabBlock),
                                              products(.yes, .no, m: vocabBlock, n: C, k: n, count: V / vocabBlock)]
        + (lastBlock == 0 ? [] : [products(.no, .yes, m: n, n: lastBlock, k: C, count: 1), products(.yes, .no, m: lastBlock, n: C, k: n, count: 1)]))
  // attention at the step's shape, keys and values already repeated to every query head
  let shape = AttentionShape(batch: batch, tokens: tokens, heads: H, headSize: D)
  let qkv = (0..<3).map { i in Tensor(repeating: 0.01 * Float(i + 1), shape: [n, H * D]).requiringGrad() }
  let forward = fastest { _ = withoutGrad { Tensor.attention(query: qkv[0], key: qkv[1], value: qkv[2], shape: shape, keyMask: nil, causal: true) } }
  let both = fastest {
    Tensor.attention(query: qkv[0], key: qkv[1], value: qkv[2], shape: shape, keyMask: nil, causal: true)
      .backward(seed: Tensor(repeating: 0.01, shape: [batch, tokens, H * D]))
    Tensor.clearGrad(qkv)
  }
  // causal attention in blocks of 64 rows, each against the keys up to its last row (3/4 of the score matrix at
  // 128 tokens); forward 2 products of that size, backward 5
  let scores = stride(from: 0, to: tokens, by: 64).map { r0 in Swift.min(64, tokens - r0) * Swift.min(r0 + 64, tokens) }.reduce(0, +)
  let attentionFlops = 2.0 * Double(batch * H * scores * D)
  parts.append(("attention (forward twice, backward once)", attentionFlops * 9 * Double(L) / 1e9, (forward + both) * Double(L)))
  // AdamW over every parameter (134.5 M values), timed on 16 M and scaled
  let chunk = 1 << 24, parameters = L * linears.map { $0.0 * $0.1 }.reduce(0, +) + V * C + (2 * L + 1) * C
  let p = Tensor(repeating: 0.01, shape: [chunk]).requiringGrad(), g = Tensor(repeating: 0.001, shape: [chunk])
  let adam = AdamW([(key: "p", tensor: p)], learningRate: 1e-5, weightDecay: 0.01)
  let adamSeconds = fastest { adam.beginStep(); adam.update(0, gradient: g) } * Double(parameters) / Double(chunk)
  parts.append(("AdamW", 0, adamSeconds))
  let total = parts.map(\.2).reduce(0, +), flops = parts.map(\.1).reduce(0, +)
  let peak = Swift.max(fmaPeak(SIMD8<Float>.self), fmaPeak(SIMD16<Float>.self))
  let fields = parts.map { String(format: "\"%@\": {\"gflop\": %.1f, \"seconds\": %.3f}", $0.0, $0.1, $0.2) }
  print("{" + fields.joined(separator: ", ") + String(format: ", \"gflop\": %.1f, \"seconds\": %.3f, \"tokens_per_s\": %.1f, \"fma_peak_gflops\": %.1f, \"threads\": %d}",
                                                       flops, total, Double(n) / total, peak, Engine.threads))
}

/// GFLOP/s of fused multiply-adds alone on every thread: 10 independent chains of `V` vectors per thread, enough
/// to keep every FMA unit busy (the best of SIMD8 and SIMD16 is the CPU's peak for fp32 products).
func fmaPeak<V: SIMD>(_: V.Type) -> Double where V.Scalar == Float {
  let threads = Engine.threads, iterations = 20_000_000
  var seconds = [Double](repeating: 0, count: threads), checks = [Float](repeating: 0, count: threads)
  seconds.withUnsafeMutableBufferPointer { time in checks.withUnsafeMutableBufferPointer { check in
    parallelFor(threads) { range in
      for t in range {
        let x = V(repeating: 0.999999), y = V(repeating: 1e-7)
        var (a0, a1, a2, a3, a4) = (V(repeating: 0), V(repeating: 1), V(repeating: 2), V(repeating: 3), V(repeating: 4))
        var (a5, a6, a7, a8, a9) = (V(repeating: 5), V(repeating: 6), V(repeating: 7), V(repeating: 8), V(repeating: 9))
        let t0 = now()
        for _ in 0..<iterations {  // a = a x + y, ten chains
          a0 = y.addingProduct(a0, x); a1 = y.addingProduct(a1, x); a2 = y.addingProduct(a2, x); a3 = y.addingProduct(a3, x)
          a4 = y.addingProduct(a4, x); a5 = y.addingProduct(a5, x); a6 = y.addingProduct(a6, x); a7 = y.addingProduct(a7, x)
          a8 = y.addingProduct(a8, x); a9 = y.addingProduct(a9, x)
        }
        time[t] = now() - t0
        check[t] = [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9].map { $0.sum() }.reduce(0, +)
      }
    }
  } }
  precondition(checks.allSatisfy(\.isFinite))
  return 2 * Double(10 * V.scalarCount * iterations) / seconds.max()! / 1e9 * Double(threads)
}
