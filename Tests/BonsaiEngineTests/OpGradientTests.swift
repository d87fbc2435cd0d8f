// Every primitive and fused op's gradient against finite differences.
import BonsaiEngine
import XCTest

final class OpGradientTests: XCTestCase {
  override func setUp() { Engine.threads = 2 }

  func testBroadcastingArithmetic() {
    let a = tensor([2, 3, 4], seed: 1), b = tensor([3, 1], seed: 2), c = tensor([4], seed: 3)
    let d = Tensor(values(4, seed: 4).map { $0 + 2.5 }, shape: [4], requiresGrad: true)
    assertGradientsMatch([a, b, c, d]) { (a + b) * c - a / d + (b - c) }
  }

  func testScalarOpsAndReductions() {
    // distinct values spaced 0.1 apart so the finite-difference step never changes the argmax
    let a = Tensor((0..<15).map { Float(($0 * 7) % 15) * 0.1 - 0.7 }, shape: [3, 5], requiresGrad: true)
    assertGradientsMatch([a]) { Tensor.concat([a.sum(axis: 0), a.mean(axis: 1, keepDims: false), a.max(axis: 1), (a * 3 - 1).mean().reshaped(to: [1])], axis: 0) }
    let s = a.sum()
    XCTAssertEqual(s.item, a.scalars.reduce(0, +), accuracy: 1e-5)
    XCTAssertEqual(a.max(axis: 1).scalars, (0..<3).map { r in a.scalars[(r * 5)..<(r * 5 + 5)].max()! })
  }

  func testArgmaxIsTheFirstLargest() {
    for n in [1, 15, 16, 17, 49_152, 49_153] {
      for trial in 0..<20 {  // seeded: the same cases every run
        var x = values(n, seed: UInt64(n * 100 + trial)).map { ($0 * 50).rounded() / 4 }  // ties are common
        if n > 3 && trial % 2 == 0 { x[n - 1] = 100; x[n / 2] = 100 }  // the first of two maxima, far apart
        if n > 3 { x[1] = .nan }
        let expected = x.indices.filter { !x[$0].isNaN }.max { x[$0] < x[$1] || (x[$0] == x[$1] && $0 > $1) } ?? 0
        XCTAssertEqual(x.withUnsafeBufferPointer { argmax($0.baseAddress!, n) }, expected, "n \(n)")
      }
    }
    XCTAssertEqual([Float](repeating: -.infinity, count: 20).withUnsafeBufferPointer { argmax($0.baseAddress!, 20) }, 0)
  }

  func testUnaryOps() {
    let a = tensor([4, 33], seed: 6, scale: 2)
    let pos = Tensor(values(20, seed: 7).map { $0 + 1.5 }, shape: [20], requiresGrad: true)
    assertGradientsMatch([a]) { Tensor.concat([a.gelu(), a.tanh(), a.silu(), a.exp()], axis: 1) }
    // relu away from its kink
    let r = Tensor(values(40, seed: 30).map { $0 + ($0 < 0 ? -0.1 : 0.1) }, shape: [40], requiresGrad: true)
    assertGradientsMatch([r]) { r.relu() }
    assertGradientsMatch([pos]) { Tensor.concat([pos.log(), pos.sqrt(), pos.pow(1.5)], axis: 0) }
  }

  func testGeluMatchesErfForm() {
    let x = Tensor((0..<100).map { Float($0 - 50) / 10 }, shape: [100])
    let y = x.gelu()
    for i in 0..<100 {
      let v = Double(x.data[i])
      XCTAssertEqual(Double(y.data[i]), v * 0.5 * (1 + erf(v / 2.0.squareRoot())), accuracy: 2e-6)
    }
  }

  func testSoftmaxFamily() {
    let a = tensor([3, 37], seed: 8, scale: 3)
    assertGradientsMatch([a]) { Tensor.concat([a.softmax(), a.logSoftmax()], axis: 1) }
    let p = a.softmax()
    for r in 0..<3 { XCTAssertEqual((0..<37).reduce(Float(0)) { $0 + p.data[r * 37 + $1] }, 1, accuracy: 1e-5) }
  }

  func testNorms() {
    let x = tensor([5, 48], seed: 9, scale: 2), g = tensor([48], seed: 10), b = tensor([48], seed: 11)
    assertGradientsMatch([x, g, b]) { x.layerNorm(weight: g, bias: b, eps: 1e-5) }
    assertGradientsMatch([x, g]) { x.rmsNorm(weight: g, eps: 1e-5) }
  }

  func testShapeOps() {
    let a = tensor([2, 3, 4], seed: 12), b = tensor([2, 2, 4], seed: 13)
    assertGradientsMatch([a, b]) {
      Tensor.concat([a, b], axis: 1).transposed(0, 2).slice(axis: 1, 1..<4).reshaped(to: [4, -1]).permuted([1, 0])
    }
    assertGradientsMatch([a]) { a.gatherRows([1, 0, 1]).maskedFill([true, false, false, true], value: 0.5) }
  }

  func testEmbedding() {
    let table = tensor([7, 5], seed: 14)
    assertGradientsMatch([table]) { Tensor.embedding(table, ids: [3, 1, 3, 6, 0]) }
  }

  func testLinearAndMatmul() {
    let x = tensor([2, 3, 6], seed: 15), w = tensor([5, 6], seed: 16), b = tensor([5], seed: 17)
    assertGradientsMatch([x, w, b]) { x.linear(weight: w, bias: b) }
    assertGradientsMatch([x, w, b]) { x.geluLinear(weight: w, bias: b) }
    assertClose(x.geluLinear(weight: w, bias: b), x.gelu().linear(weight: w, bias: b).scalars, atol: 1e-6)
    let m1 = tensor([2, 3, 4], seed: 18), m2 = tensor([2, 4, 5], seed: 19), shared = tensor([4, 2], seed: 20)
    assertGradientsMatch([m1, m2, shared]) { Tensor.concat([m1.matmul(m2), m1.matmul(shared)], axis: 2) }
    // value check against a naive product
    let y = m1.matmul(m2)
    var ref: Float = 0
    for k in 0..<4 { ref += m1.data[4 + k] * m2.data[k * 5 + 2] }
    XCTAssertEqual(y.data[1 * 5 + 2], ref, accuracy: 1e-5)
  }

  func testDropoutIsDeterministicAndScaled() {
    let x = Tensor(repeating: 1, shape: [10_000]).requiringGrad()
    let y1 = x.dropout(0.25, rng: RandomSource(seed: 7))
    let y2 = x.dropout(0.25, rng: RandomSource(seed: 7))
    XCTAssertEqual(y1.scalars, y2.scalars)
    let kept = y1.scalars.filter { $0 != 0 }
    XCTAssertEqual(Double(kept.count) / 10_000, 0.75, accuracy: 0.02)
    XCTAssertEqual(kept.first!, 1 / 0.75, accuracy: 1e-6)
    Engine.threads = 1
    let y3 = x.dropout(0.25, rng: RandomSource(seed: 7))
    Engine.threads = 2
    XCTAssertEqual(y1.scalars, y3.scalars, "dropout mask must not depend on the thread count")
    let a = tensor([64], seed: 21)
    assertGradientsMatch([a]) { a.dropout(0.3, rng: RandomSource(seed: 3)) }
  }

  /// Data parallelism: a rank's rows of a batch-major tensor get exactly the single process's masks, for row
  /// offsets that do not fall on the 4-element draws, in dropout and in attention's probabilities.
  func testDropoutOfARanksRowsEqualsTheWholeBatchs() {
    let rows = 7, width = 5
    let whole = Tensor(repeating: 1, shape: [rows, width]).dropout(0.5, rng: RandomSource(seed: 11)).scalars
    for (first, count) in [(0, 3), (3, 4), (2, 1), (6, 1)] {
      let rng = RandomSource(seed: 11)
      rng.rows = (first, count)
      let part = Tensor(repeating: 1, shape: [count, width]).dropout(0.5, rng: rng).scalars
      XCTAssertEqual(part, Array(whole[(first * width)..<((first + count) * width)]), "rows \(first)..<\(first + count)")
    }
    XCTAssertEqual(RandomSource(seed: 1).elementOffset(count: 99), 0, "one process: no offset")
  }

  func testAttentionWithMaskBiasAndDropout() {
    let s = AttentionShape(batch: 2, tokens: 5, heads: 2, headSize: 4)
    let q = tensor([2, 5, 8], seed: 22), k = tensor([2, 5, 8], seed: 23), v = tensor([2, 5, 8], seed: 24)
    let bias = tensor([2, 5, 5], seed: 25)
    var mask = [Float](repeating: 0, count: 10)
    mask[8] = -Float.greatestFiniteMagnitude; mask[9] = -Float.greatestFiniteMagnitude
    assertGradientsMatch([q, k, v, bias]) { Tensor.attention(query: q, key: k, value: v, shape: s, keyMask: mask, positionBias: bias) }
    assertGradientsMatch([q, k, v]) {
      Tensor.attention(query: q, key: k, value: v, shape: s, keyMask: mask, dropout: 0.2, rng: RandomSource(seed: 5))
    }
    // against the composite of primitive ops (no dropout)
    let fused = Tensor.attention(query: q, key: k, value: v, shape: s, keyMask: mask, positionBias: bias)
    let qh = q.reshaped(to: [2, 5, 2, 4]).permuted([0, 2, 1, 3]), kh = k.reshaped(to: [2, 5, 2, 4]).permuted([0, 2, 3, 1])
    let vh = v.reshaped(to: [2, 5, 2, 4]).permuted([0, 2, 1, 3])
    let maskT = Tensor(mask.map { max($0, -1e9) }, shape: [2, 1, 1, 5])
    let scores = qh.matmul(kh) * 0.5 + bias.reshaped(to: [1, 2, 5, 5]) + maskT
    let ref = scores.softmax().matmul(vh).permuted([0, 2, 1, 3]).reshaped(to: [2, 5, 8])
    assertClose(fused, ref.scalars, shape: [2, 5, 8], atol: 1e-5)
  }

  func testSwiGLU() {
    // 37 values: two SIMD blocks and a scalar tail
    let g = tensor([37], seed: 50, scale: 4), u = tensor([37], seed: 51)
    assertGradientsMatch([g, u]) { Tensor.swiglu(gate: g, up: u) }
    assertClose(Tensor.swiglu(gate: g, up: u), (g.silu() * u).scalars, shape: [37], atol: 1e-6)
  }

  func testCausalAttentionEqualsAnExplicitMask() {
    // T = 150: blocks of 64, 64 and 22 rows; left padding on the second row; with bias and dropout
    let (B, T, H, D) = (2, 150, 2, 8)
    let s = AttentionShape(batch: B, tokens: T, heads: H, headSize: D)
    let q = tensor([B, T, H * D], seed: 40), k = tensor([B, T, H * D], seed: 41), v = tensor([B, T, H * D], seed: 42)
    let bias = tensor([H, T, T], seed: 43, scale: 0.5)
    var keyMask = [Float](repeating: 0, count: B * T)
    for t in 0..<7 { keyMask[T + t] = -1e9 }
    var upper = [Float](repeating: 0, count: H * T * T)
    for h in 0..<H { for i in 0..<T { for j in (i + 1)..<max(T, i + 1) { upper[(h * T + i) * T + j] = -1e9 } } }
    let explicitMask = Tensor(upper, shape: [H, T, T])
    for dropout: Float in [0, 0.2] {
      func run(_ causal: Bool) -> [[Float]] {
        for x in [q, k, v, bias] { x.grad = nil }
        let b = causal ? bias : bias + explicitMask
        let out = Tensor.attention(query: q, key: k, value: v, shape: s, keyMask: keyMask, positionBias: b, causal: causal,
                                   dropout: dropout, rng: dropout > 0 ? RandomSource(seed: 9) : nil)
        // rows 0..<7 of the second sequence are padding queries (every key they may see is masked): not compared
        let padding = (T..<(T + 7)).flatMap { r in (r * H * D)..<((r + 1) * H * D) }
        let w = tensor(out.shape, seed: 44, grad: false)
        for i in padding { w.mutableData[i] = 0 }
        (out * w).sum().backward()
        return [(out * w).scalars] + [q, k, v, bias].map { $0.grad!.scalars }
      }
      let (fast, reference) = (run(true), run(false))
      for (name, (a, b)) in zip(["output", "dq", "dk", "dv", "dbias"], zip(fast, reference)) {
        let worst = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(worst, 2e-5, "causal attention \(name), dropout \(dropout)")
      }
    }
    let small = AttentionShape(batch: 1, tokens: 5, heads: 2, headSize: 4)
    let q5 = tensor([1, 5, 8], seed: 45), k5 = tensor([1, 5, 8], seed: 46), v5 = tensor([1, 5, 8], seed: 47)
    assertGradientsMatch([q5, k5, v5]) { Tensor.attention(query: q5, key: k5, value: v5, shape: small, keyMask: nil, causal: true) }
  }

  func testLosses() {
    let logits = tensor([4, 3], seed: 26, scale: 2)
    assertGradientsMatch([logits]) { Tensor.crossEntropy(logits: logits, labels: [0, 2, -100, 1]).reshaped(to: [1]) }
    // value: -log softmax at the label, averaged over non-ignored rows
    let ce = Tensor.crossEntropy(logits: logits, labels: [0, 2, -100, 1]).item
    let lsm = logits.logSoftmax().scalars
    XCTAssertEqual(ce, -(lsm[0] + lsm[3 + 2] + lsm[9 + 1]) / 3, accuracy: 1e-5)
    let target = Tensor([0.2, 0.5, 0.3, 0.1, 0.1, 0.8], shape: [2, 3], requiresGrad: true)
    let input = tensor([2, 3], seed: 27)
    assertGradientsMatch([input, target], step: 1e-3) { Tensor.klDivergence(input: input.logSoftmax(), target: target).reshaped(to: [1]) }
    let a = tensor([3, 4], seed: 28), b = tensor([3, 4], seed: 29)
    assertGradientsMatch([a, b]) { Tensor.concat([Tensor.mse(a, b).reshaped(to: [1]), Tensor.cosineSimilarity(a, b)], axis: 0) }
    XCTAssertEqual(Tensor.cosineSimilarity(a, a).scalars[1], 1, accuracy: 1e-5)
  }

  /// The head and cross-entropy in blocks of rows equal the head then the cross-entropy: value and the
  /// gradients of the states and of the weight (also scaled, with ignored rows, over 3 blocks, and packed).
  func testLinearCrossEntropyEqualsHeadThenCrossEntropy() {
    let n = 300, C = 64, V = 70  // 300 rows: three blocks of at most 128; Q8_0 blocks of 32 columns
    let labels = (0..<n).map { $0 % 7 == 3 ? -100 : ($0 * 31) % V }
    for packed in [false, true] {
      let h1 = tensor([n, C], seed: 40, scale: 1.5), w1 = tensor([V, C], seed: 41, scale: 0.5, grad: !packed)
      let h2 = tensor([n, C], seed: 40, scale: 1.5), w2 = tensor([V, C], seed: 41, scale: 0.5, grad: !packed)
      let q = PackedMatrix(quantizing: w1, to: .q8_0)
      let unfused = Tensor.crossEntropy(logits: packed ? h1.linear(packed: q, bias: nil) : h1.linear(weight: w1, bias: nil), labels: labels)
      let fused = Tensor.linearCrossEntropy(h2, head: packed ? .packed(q) : .dense(w2), labels: labels)
      XCTAssertEqual(fused.item, unfused.item, accuracy: 1e-5 * unfused.item)
      unfused.scaled(by: 0.75).backward(); fused.scaled(by: 0.75).backward()
      assertClose(h2.grad!, h1.grad!.scalars, atol: 1e-7)
      if !packed { assertClose(w2.grad!, w1.grad!.scalars, atol: 1e-7) } else { XCTAssertNil(w2.grad) }
      XCTAssertEqual(h2.grad!.scalars[3 * C], 0)  // an ignored row gets no gradient
      XCTAssertNotEqual(h2.grad!.scalars[4 * C], 0)
    }
    let h = tensor([5, 6], seed: 42), w = tensor([9, 6], seed: 43)
    assertGradientsMatch([h, w], step: 1e-3) { Tensor.linearCrossEntropy(h, head: .dense(w), labels: [1, -100, 8, 0, 4]).reshaped(to: [1]) }
    XCTAssertEqual(withoutGrad { Tensor.linearCrossEntropy(h, head: .dense(w), labels: [-100, -100, -100, -100, -100]) }.item, 0)
  }

  /// A tied head (the weight also looked up as an embedding first): with `lateWeightGradient` its gradient is
  /// made only after the lookup's, so no backward step before sees it (and a sink gets the whole of it),
  /// and equals the gradient made in the forward pass.
  func testLateHeadGradientOfATiedWeightComesLastAndIsTheSame() {
    let V = 40, C = 16, ids = [3, 7, 7, 12, 0, 39], labels = [7, 7, 12, -100, 39, 5]
    func run(late: Bool, sink: Bool) -> (gradient: [Float], seenBeforeLookupsGradient: Bool) {
      let w = tensor([V, C], seed: 50, scale: 0.3)
      var seen = false, sunk: [Float]? = nil
      let looked = w.gatherRows(ids)
      // an op between the lookup and the head, whose backward runs after the head's and before the lookup's
      let between = Tensor.record(looked.scaled(by: 1), inputs: [looked]) { g in
        seen = w.grad != nil
        looked.gradTarget.accumulate(g)
      }
      let h = between.tanh()
      if sink { Tensor.gradientSinks = [(w, { sunk = $0.scalars })] }
      Tensor.linearCrossEntropy(h, head: .dense(w), labels: labels, lateWeightGradient: late).backward()
      Tensor.gradientSinks = []
      defer { Tensor.clearGrad([w]) }
      return (sink ? sunk! : w.grad!.scalars, seen)
    }
    let early = run(late: false, sink: false)
    XCTAssertTrue(early.seenBeforeLookupsGradient)
    for sink in [false, true] {
      let late = run(late: true, sink: sink)
      XCTAssertFalse(late.seenBeforeLookupsGradient, "sink \(sink)")
      assertClose(Tensor(late.gradient, shape: [V, C]), early.gradient, atol: 1e-6)
    }
    let h = tensor([5, 6], seed: 44), w = tensor([9, 6], seed: 45)
    assertGradientsMatch([h, w], step: 1e-3) { Tensor.linearCrossEntropy(h, head: .dense(w), labels: [1, -100, 8, 0, 4], lateWeightGradient: true).reshaped(to: [1]) }
  }

  /// With a row sink, the tied weight's late gradient (the head's, then the lookup's scatter) is handed over
  /// in blocks of rows, each made alone from the logits of its vocabulary rows, and the whole gradient is
  /// never made; the blocks put together equal the gradient made early. Blocks that do not divide the
  /// vocabulary and logit blocks narrower than a row block are exercised.
  func testLateTiedGradientHandedByRowsEqualsTheWholeOne() {
    let V = 40, C = 16, ids = [3, 7, 7, 12, 0, 39], labels = [7, 7, 12, -100, 39, 5]
    func run(byRows: Bool) -> (gradient: [Float], blocks: [Range<Int>], whole: Bool) {
      let w = tensor([V, C], seed: 50, scale: 0.3)
      var gathered = [Float](repeating: .nan, count: V * C), blocks: [Range<Int>] = [], whole = false
      let h = Tensor.embedding(w, ids: ids).tanh()
      Tensor.gradientSinks = [(w, { g in whole = true; gathered = g.scalars })]
      if byRows {
        Tensor.gradientRowSinks = [(w, { rows, g in
          blocks.append(rows)
          for j in 0..<(rows.count * C) { gathered[rows.lowerBound * C + j] = g[j] }
        })]
      }
      Tensor.linearCrossEntropy(h, head: .dense(w), labels: labels, lateWeightGradient: byRows).backward()
      (Tensor.gradientSinks, Tensor.gradientRowSinks) = ([], [])
      XCTAssertNil(w.grad)
      return (gathered, blocks, whole)
    }
    let (savedRows, savedLogits) = (Tensor.lateRowBlockFloats, Tensor.lateLogitBlockFloats)
    Tensor.lateRowBlockFloats = 15 * C  // blocks of 15 rows: 0..<15, 15..<30, 30..<40
    Tensor.lateLogitBlockFloats = 6 * 16  // logits of 16 vocabulary rows at a time for the 6 states
    defer { (Tensor.lateRowBlockFloats, Tensor.lateLogitBlockFloats) = (savedRows, savedLogits) }
    let early = run(byRows: false), late = run(byRows: true)
    XCTAssertTrue(early.whole)
    XCTAssertFalse(late.whole)
    XCTAssertEqual(late.blocks, [0..<15, 15..<30, 30..<40])
    assertClose(Tensor(late.gradient, shape: [V, C]), early.gradient, atol: 1e-6)
  }
}
