// A language model's head and its cross-entropy as one op, a block of rows at a time: the logits
// [rows, V] of the whole batch never exist (at a 49,152-token vocabulary they and their gradient are
// ~100 MB each for 512 rows). Each block's logits are made, turned into the loss and, in place, into their
// gradient, which goes straight into the gradients of the states and of the head's weight, during the
// forward pass; backward only scales those by the loss's own gradient. The same products as a
// separate head and cross-entropy (forward, input gradient, weight gradient), so nothing is recomputed.
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
  static let crossEntropyBlockRows = 128

  /// Mean cross-entropy of `labels` (`ignoreIndex`: not scored) under the logits `h W^T` of states
  /// h [N, C]: `Tensor.crossEntropy(logits: h.linear(weight: W), labels:)` without the logits.
  /// `lateWeightGradient`: a trained dense weight's gradient is made only when the backward pass has every
  /// other contribution to it (`GradTarget.accumulateLate`), from logits made again (one more product of
  /// the scored rows), instead of in the forward pass: for a head tied to the embedding, whose lookup is
  /// the pass's last step, the [V, C] gradient is then never held beside the activations.
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
    var perRow = [Double](repeating: 0, count: n)
    perRow.withUnsafeMutableBufferPointer { losses in
      forEachLogitGradientBlock(h, head: head, labels: labels, ignoreIndex: ignoreIndex, scale: scale,
                                gradient: stateGrad != nil || weightGrad != nil, losses: losses.baseAddress!) { r0, rows, z in
        if let gh = stateGrad {
          head.forEachRows { range, w in
            gemm(.no, .no, m: rows, n: C, k: range.count, z + range.lowerBound, lda: V, w, ldb: C, beta: 1, gh.mutableData + r0 * C, ldc: C)
          }
        }
        if let gw = weightGrad {
          gemm(.yes, .no, m: V, n: C, k: rows, z, lda: V, h.data + r0 * C, ldb: C, beta: 1, gw.mutableData, ldc: C)
        }
      }
    }
    var total = 0.0
    for (i, y) in labels.enumerated() where y != ignoreIndex { total += perRow[i] }
    let out = Tensor([Float(used == 0 ? 0 : total / Double(used))], shape: [])
    guard record else { return out }
    return Tensor.record(out, inputs: weight.map { [h, $0] } ?? [h]) { g in
      let s = g.data[0]
      if let gh = stateGrad { h.gradTarget.accumulate(gh, scale: s) }
      if let gw = weightGrad, let w = weight { w.gradTarget.accumulate(gw, scale: s) }
      if trainsWeight && lateWeightGradient, let w = weight {
        w.gradTarget.accumulateLate {
          guard var (gw, beta) = w.gradTarget.productBuffer() else { return }
          forEachLogitGradientBlock(h, head: head, labels: labels, ignoreIndex: ignoreIndex, scale: scale, gradient: true, losses: nil) { r0, rows, z in
            gemm(.yes, .no, m: V, n: C, k: rows, alpha: s, z, lda: V, h.data + r0 * C, ldb: C, beta: beta, gw.mutableData, ldc: C)
            beta = 1
          }
        }
      }
    }
  }

  /// Makes the logits `h W^T` of `crossEntropyBlockRows` rows at a time and hands each block to
  /// `body(firstRow, rows, z)` (z: [rows, V]); with `gradient`, z holds `scale * (softmax - one-hot)` by
  /// then (rows whose label is ignored: zeros). `losses`, when given, gets each scored row's loss.
  static func forEachLogitGradientBlock(_ h: Tensor, head: HeadWeight, labels: [Int], ignoreIndex: Int, scale: Float, gradient: Bool,
                                        losses: UnsafeMutablePointer<Double>?, _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
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
