// A language model's head and its cross-entropy as one op, a block of rows at a time: the logits
// [rows, V] of the whole batch never exist (at a 49,152-token vocabulary they and their gradient are
// ~100 MB each for 512 rows). Each block's logits are made, turned into the loss and, in place, into their
// gradient, which goes straight into the gradients of the states and of the head's weight, during the
// forward pass; backward only scales those by the loss's own gradient. The same products as a
// separate head and cross-entropy (forward, input gradient, weight gradient), so nothing is recomputed;
// except when the weight's gradient is asked for late (to save memory): then it is made at the end of the
// backward pass from the logits made again, a block of vocabulary rows at a time, normalised by each row's
// softmax maximum and sum kept from the forward pass.
import Foundation

/// The head's weight [V, C]: fp32 (it may train) or packed blocks (frozen).
public enum HeadWeight {
  case dense(Tensor)
  case packed(PackedMatrix)

  var rows: Int { switch self { case let .dense(w): return w.shape[0]; case let .packed(p): return p.rows } }
  var columns: Int { switch self { case let .dense(w): return w.shape[1]; case let .packed(p): return p.columns } }

  /// Calls `body` with consecutive row ranges of the weight as fp32 (packed blocks dequantised a range at a time).
  func forEachRows(_ body: (Range<Int>, UnsafePointer<Float>) -> Void) {
    switch self {
    case let .dense(w): body(0..<w.shape[0], w.data)
    case let .packed(p): PackedLinear.forEachChunk(p, body)
    }
  }
}

extension Tensor {
  /// Rows of logits made at once: large enough that the weight-gradient products stay efficient, small
  /// enough that a block's logits (~25 MB at SmolLM2's vocabulary) are a fraction of the whole batch's.
  public static let crossEntropyBlockRows = 128

  /// Mean cross-entropy of `labels` (`ignoreIndex`: not scored) under the logits `h W^T` of states
  /// h [N, C]: `Tensor.crossEntropy(logits: h.linear(weight: W), labels:)` without the logits.
  /// `lateWeightGradient`: a trained dense weight's gradient is made only when the backward pass has every
  /// other contribution to it (`GradTarget.accumulateLate(byRows:)`), from logits made again (one more product
  /// of the scored rows), instead of in the forward pass: for a head tied to the embedding, whose lookup is
  /// the pass's last step, the [V, C] gradient is then never held beside the activations; and with an
  /// optimizer that updates during the pass (`Tensor.gradientRowSinks`) it is made and applied a block of
  /// vocabulary rows at a time, so it is never held whole at all.
  public static func linearCrossEntropy(_ h: Tensor, head: HeadWeight, labels: [Int], ignoreIndex: Int = -100,
                                        lateWeightGradient: Bool = false) -> Tensor {
    let C = h.shape.last!, n = h.count / C, V = head.rows
    precondition(head.columns == C && labels.count == n, "linearCrossEntropy: states \(h.shape), head [\(V), \(head.columns)], \(labels.count) labels")
    for y in labels where y != ignoreIndex { precondition(y >= 0 && y < V, "linearCrossEntropy: label \(y) outside \(V) classes") }
    let used = labels.filter { $0 != ignoreIndex }.count
    var weight: Tensor? = nil
    if case let .dense(w) = head { weight = w }
    let record = GradMode.isEnabled && used > 0
    let stateGrad = record && h.requiresGrad ? Tensor(zeros: h.shape) : nil
    let trainsWeight = record && weight?.requiresGrad == true
    let weightGrad = trainsWeight && !lateWeightGradient ? Tensor(zeros: [V, C]) : nil
    let scale = 1 / Float(Swift.max(used, 1))
    let late = trainsWeight && lateWeightGradient
    var perRow = [Double](repeating: 0, count: n)
    // a late weight gradient makes the logits again a block of vocabulary rows at a time, normalised by each row's
    // maximum and sum of exponentials from here
    var softmaxStats = [Float](repeating: 0, count: late ? 2 * n : 0)
    perRow.withUnsafeMutableBufferPointer { losses in softmaxStats.withUnsafeMutableBufferPointer { stats in
      forEachLogitGradientBlock(h, head: head, labels: labels, ignoreIndex: ignoreIndex, scale: scale,
                                gradient: stateGrad != nil || weightGrad != nil, losses: losses.baseAddress!,
                                softmaxStats: late ? stats.baseAddress : nil) { r0, rows, z in
        if let gh = stateGrad {
          head.forEachRows { range, w in
            gemm(.no, .no, m: rows, n: C, k: range.count, z + range.lowerBound, lda: V, w, ldb: C, beta: 1, gh.mutableData + r0 * C, ldc: C)
          }
        }
        if let gw = weightGrad {
          gemm(.yes, .no, m: V, n: C, k: rows, z, lda: V, h.data + r0 * C, ldb: C, beta: 1, gw.mutableData, ldc: C)
        }
      }
    } }
    let stats = softmaxStats
    var total = 0.0
    for (i, y) in labels.enumerated() where y != ignoreIndex { total += perRow[i] }
    let out = Tensor([Float(used == 0 ? 0 : total / Double(used))], shape: [])
    guard record else { return out }
    return Tensor.record(out, inputs: weight.map { [h, $0] } ?? [h]) { g in
      let s = g.data[0]
      if let gh = stateGrad { h.gradTarget.accumulate(gh, scale: s) }
      if let gw = weightGrad, let w = weight { w.gradTarget.accumulate(gw, scale: s) }
      if late, let w = weight {
        w.gradTarget.accumulateLate(byRows: { vocab, into, overwrite in
          forEachLogitGradientColumnBlock(h, weight: w.data, labels: labels, ignoreIndex: ignoreIndex, scale: scale,
                                          softmaxStats: stats, columns: vocab) { c0, cols, z in
            gemm(.yes, .no, m: cols, n: C, k: n, alpha: s, z, lda: cols, h.data, ldb: C, beta: overwrite ? 0 : 1,
                 into + (c0 - vocab.lowerBound) * C, ldc: C)
          }
        })
      }
    }
  }

  /// Values in a block of logits made again for a late weight gradient (8 MiB).
  nonisolated(unsafe) public static var lateLogitBlockFloats = 1 << 21

  /// The logit gradients of columns (vocabulary rows of the head) `columns` for every row of `h`, a block of
  /// columns at a time, from each row's softmax maximum and sum saved by `forEachLogitGradientBlock`:
  /// `body(firstColumn, columnCount, z)` gets z [rows, columnCount] = `scale * (softmax - one-hot)` there
  /// (rows whose label is ignored: zeros), the same values the forward pass's blocks held.
  static func forEachLogitGradientColumnBlock(_ h: Tensor, weight w: UnsafePointer<Float>, labels: [Int], ignoreIndex: Int, scale: Float,
                                              softmaxStats stats: [Float], columns: Range<Int>, _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
    let C = h.shape.last!, n = h.count / C
    let width = Swift.max(16, Swift.min(columns.count, lateLogitBlockFloats / Swift.max(n, 1)))
    let block = Storage(count: n * width, zeroed: false)
    let z = block.pointer, x = h.data
    for c0 in stride(from: columns.lowerBound, to: columns.upperBound, by: width) {
      let cols = Swift.min(width, columns.upperBound - c0)
      gemm(.no, .yes, m: n, n: cols, k: C, x, lda: C, w + c0 * C, ldb: C, z, ldc: cols)
      parallelFor(n, grain: 8) { range in
        for i in range {
          let row = z + i * cols, y = labels[i]
          if y == ignoreIndex { row.update(repeating: 0, count: cols); continue }
          let m = stats[2 * i], inv = 1 / stats[2 * i + 1], sv = V16(repeating: scale * inv)
          var j = 0
          while j + 16 <= cols { store16(vexp(load16(row, j) - m) * sv, row, j); j += 16 }
          while j < cols { row[j] = Foundation.exp(row[j] - m) * inv * scale; j += 1 }
          if y >= c0 && y < c0 + cols { row[y - c0] -= scale }
        }
      }
      body(c0, cols, z)
    }
  }

  /// Makes the logits `h W^T` of `crossEntropyBlockRows` rows at a time and hands each block to
  /// `body(firstRow, rows, z)` (z: [rows, V]); with `gradient`, z holds `scale * (softmax - one-hot)` by
  /// then (rows whose label is ignored: zeros). `losses`, when given, gets each scored row's loss, and
  /// `softmaxStats` each scored row's maximum logit and sum of exponentials (at 2 * row and 2 * row + 1).
  static func forEachLogitGradientBlock(_ h: Tensor, head: HeadWeight, labels: [Int], ignoreIndex: Int, scale: Float, gradient: Bool,
                                        losses: UnsafeMutablePointer<Double>?, softmaxStats: UnsafeMutablePointer<Float>? = nil,
                                        _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
    let C = h.shape.last!, n = h.count / C, V = head.rows
    let block = Storage(count: Swift.min(n, crossEntropyBlockRows) * V, zeroed: false)
    let z = block.pointer, x = h.data
    for r0 in stride(from: 0, to: n, by: crossEntropyBlockRows) {
      let rows = Swift.min(crossEntropyBlockRows, n - r0)
      head.forEachRows { range, w in
        gemm(.no, .yes, m: rows, n: range.count, k: C, x + r0 * C, lda: C, w, ldb: C, z + range.lowerBound, ldc: V)
      }
      parallelFor(rows, grain: 8) { range in
        for i in range {
          let row = z + i * V, y = labels[r0 + i]
          if y == ignoreIndex { if gradient { row.update(repeating: 0, count: V) }; continue }
          let (m, s) = maxAndExpSum(row, V)
          if let softmaxStats { softmaxStats[2 * (r0 + i)] = m; softmaxStats[2 * (r0 + i) + 1] = s }
          losses?[r0 + i] = Double(m) + Foundation.log(Double(s)) - Double(row[y])
          guard gradient else { continue }
          // the gradient in place: scale * (softmax - one-hot), the softmax as softmaxRows computes it
          let inv = 1 / s, sv = V16(repeating: scale * inv)
          var j = 0
          while j + 16 <= V { store16(vexp(load16(row, j) - m) * sv, row, j); j += 16 }
          while j < V { row[j] = Foundation.exp(row[j] - m) * inv * scale; j += 1 }
          row[y] -= scale
        }
      }
      body(r0, rows, z)
    }
  }
}
