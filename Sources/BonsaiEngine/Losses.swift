// Losses. Cross-entropy is one fused kernel (softmax + NLL); the others are compositions of
// differentiable primitives, so their gradients come for free and are checked the same way.
import Foundation

extension Tensor {
  /// Mean cross-entropy of `logits` [N, K] against class `labels` (N values; `ignoreIndex` rows are
  /// skipped, as in PyTorch). Fused softmax + NLL; backward is (softmax - onehot) / count, the softmax
  /// recomputed from the logits (nothing but the loss is kept between the passes).
  public static func crossEntropy(logits: Tensor, labels: [Int], ignoreIndex: Int = -100) -> Tensor {
    let k = logits.shape.last!, n = logits.count / k
    precondition(labels.count == n, "crossEntropy: \(labels.count) labels for \(n) rows of logits \(logits.shape)")
    for y in labels where y != ignoreIndex { precondition(y >= 0 && y < k, "crossEntropy: label \(y) outside \(k) classes") }
    // each row's -log softmax in double from the logits for accuracy, rows in parallel, summed in order
    var perRow = [Double](repeating: 0, count: n)
    perRow.withUnsafeMutableBufferPointer { out in
      let z = logits.data, o = out.baseAddress!
      parallelFor(n, grain: 8) { rows in
        for i in rows where labels[i] != ignoreIndex {
          let row = z + i * k
          var m = -Float.infinity
          for j in 0..<k { m = Swift.max(m, row[j]) }
          var s = 0.0
          for j in 0..<k { s += Foundation.exp(Double(row[j] - m)) }
          o[i] = Double(m) + Foundation.log(s) - Double(row[labels[i]])
        }
      }
    }
    var total = 0.0, used = 0
    for (i, y) in labels.enumerated() where y != ignoreIndex { total += perRow[i]; used += 1 }
    let out = Tensor([Float(used == 0 ? 0 : total / Double(used))], shape: [])
    return record(out, inputs: [logits]) { g in
      guard let gl = logits.gradientBuffer(), used > 0 else { return }
      // the softmax is recomputed row by row rather than kept: at a 49,152-token vocabulary it is as large as the logits
      let scale = g.data[0] / Float(used), q = gl.mutableData, z = logits.data
      parallelFor(n, grain: 8) { rows in
        let p = UnsafeMutablePointer<Float>.allocate(capacity: k)
        defer { p.deallocate() }
        for i in rows where labels[i] != ignoreIndex {
          softmaxRows(p, z + i * k, rows: 1, cols: k)
          let y = labels[i]
          for j in 0..<k { q[i * k + j] += scale * (p[j] - (j == y ? 1 : 0)) }
        }
      }
    }
  }

  /// KL(target || exp(input)) with `input` log-probabilities and `target` probabilities, summed over
  /// classes and averaged over rows ("batchmean", PyTorch's `kl_div`). Zero targets contribute 0.
  public static func klDivergence(input logProbs: Tensor, target: Tensor) -> Tensor {
    precondition(logProbs.shape == target.shape, "klDivergence: \(logProbs.shape) vs \(target.shape)")
    let rows = logProbs.count / logProbs.shape.last!
    let t = target.data
    let logT = Tensor(uninitialized: target.shape)
    for i in 0..<target.count { logT.mutableData[i] = t[i] > 0 ? Foundation.log(t[i]) : 0 }
    // target*(log target) - target*input; the first term only matters when target needs a gradient.
    let cross = (target * logProbs).sum()
    let ent: Tensor = target.requiresGrad ? (target * target.unary({ $0 > 0 ? Foundation.log($0) : 0 }, { x, _ in x > 0 ? 1 / x : 0 })).sum() : (target * logT).sum()
    return (ent - cross).scaled(by: 1 / Float(rows))
  }

  /// Mean squared error over all elements.
  public static func mse(_ a: Tensor, _ b: Tensor) -> Tensor {
    let d = a - b
    return (d * d).mean()
  }

  /// Cosine similarity along the last axis: sum(a*b) / max(|a| |b|, eps), shape without the last axis.
  public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, eps: Float = 1e-8) -> Tensor {
    let dot = (a * b).sum(axis: -1)
    let na = (a * a).sum(axis: -1), nb = (b * b).sum(axis: -1)
    let denom = (na * nb).unary({ Swift.max($0, eps * eps).squareRoot() }, { x, y in x > eps * eps ? 0.5 / y : 0 })
    return dot / denom
  }
}
