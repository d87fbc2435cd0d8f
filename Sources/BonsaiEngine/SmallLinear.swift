// Linear layers for a few rows at a time (decoding one token per sequence), without autodiff. The cost
// is reading W: GEMM libraries pack W before multiplying, which for a handful of rows costs more than
// the product, so here each row of W is streamed once and dotted with every input row. Several
// products of the same input (q, k, v; gate, up) share one parallel region, and rows of W are handed
// out in chunks to whichever thread is free, since memory-bound halves finish at unequal times.

enum SmallLinear {
  /// Input rows up to which `linear` takes this path when no gradient is recorded.
  static let maxRows = 8
  /// Rows of W per chunk handed to a thread (a multiple of 16: tiled matrices are read in tiles of 16 rows). Longer
  /// runs of rows per thread stream better: at 2 threads, SmolLM2 batch 1 from Q8_0 / Q4_1 went from ~130 / ~165 to
  /// ~170 / ~233 tokens/s with 128 rows instead of 32 (Zen 4; 256 and 512 no better, balance suffers), F16 94 -> 102.
  static let chunkRows = 128

  /// Outputs [..., O_i] of x's rows through layers of O_i outputs, each starting at its bias (or 0), filled
  /// by `body(layer, rows of its W, output)` over chunks of `chunkRows` rows of every layer, in one region.
  static func products(_ x: Tensor, outFeatures: [Int], biases: [Tensor?],
                       _ body: (Int, Range<Int>, UnsafeMutablePointer<Float>) -> Void) -> [Tensor] {
    let rows = x.count / x.shape.last!
    var outputs: [Tensor] = [], firstChunk: [Int] = [0]
    for (outF, b) in zip(outFeatures, biases) {
      let out = Tensor(uninitialized: Array(x.shape.dropLast()) + [outF])
      if let b {
        precondition(b.shape == [outF], "linear: bias \(b.shape) for \(outF) outputs")
        for r in 0..<rows { (out.mutableData + r * outF).update(from: b.data, count: outF) }
      } else {
        out.mutableData.update(repeating: 0, count: rows * outF)
      }
      outputs.append(out)
      firstChunk.append(firstChunk.last! + (outF + chunkRows - 1) / chunkRows)
    }
    parallelChunks(firstChunk.last!) { c in
      var i = 0
      while firstChunk[i + 1] <= c { i += 1 }
      let start = (c - firstChunk[i]) * chunkRows
      body(i, start..<Swift.min(start + chunkRows, outFeatures[i]), outputs[i].mutableData)
    }
    return outputs
  }
}

extension Tensor {
  /// [x W_i^T + b_i for each (W_i, b_i)], x [..., I], W_i [O_i, I]: in one parallel region for at most 8
  /// rows of x without gradient, else one `linear` each.
  public static func linearProducts(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)]) -> [Tensor] {
    let inF = x.shape.last!, rows = x.count / inF
    if rows > SmallLinear.maxRows || GradMode.isEnabled || KeptProducts.current != nil { return layers.map { x.linear(weight: $0.weight, bias: $0.bias) } }
    return smallProducts(x, layers)
  }

  /// `linearProducts` of at most 8 rows, in one parallel region.
  static func smallProducts(_ x: Tensor, _ layers: [(weight: Tensor, bias: Tensor?)]) -> [Tensor] {
    let inF = x.shape.last!, rows = x.count / inF
    let xp = x.data
    for (w, _) in layers { precondition(w.rank == 2 && w.shape[1] == inF, "linear: weight \(w.shape) for input \(x.shape)") }
    return SmallLinear.products(x, outFeatures: layers.map { $0.weight.shape[0] }, biases: layers.map(\.bias)) { i, range, y in
      let w = layers[i].weight
      addProducts(y, xp, w.data, rows: rows, outFeatures: w.shape[0], inFeatures: inF, weightRows: range)
    }
  }
}

/// y[M, O] += x[M, I] W[O, I]^T for the rows `weightRows` of W.
func addProducts(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, rows m: Int,
                 outFeatures n: Int, inFeatures k: Int, weightRows: Range<Int>) {
  if m == 1 {  // one sequence: four independent accumulators over the row
    for o in weightRows {
      let wr = w + o * k
      var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16(), j = 0
      while j + 64 <= k {
        a0 += load16(wr, j) * load16(x, j); a1 += load16(wr, j + 16) * load16(x, j + 16)
        a2 += load16(wr, j + 32) * load16(x, j + 32); a3 += load16(wr, j + 48) * load16(x, j + 48)
        j += 64
      }
      while j + 16 <= k { a0 += load16(wr, j) * load16(x, j); j += 16 }
      var s = hsum((a0 + a1) + (a2 + a3))
      while j < k { s += wr[j] * x[j]; j += 1 }
      y[o] += s
    }
    return
  }
  for o in weightRows {  // pairs of input rows share each load of W
    let wr = w + o * k
    var r = 0
    while r < m {
      let x0 = x + r * k, x1 = x + Swift.min(r + 1, m - 1) * k
      var a0 = V16(), a1 = V16(), b0 = V16(), b1 = V16()
      var j = 0
      while j + 32 <= k {
        let w0 = load16(wr, j), w1 = load16(wr, j + 16)
        a0 += w0 * load16(x0, j); a1 += w1 * load16(x0, j + 16)
        b0 += w0 * load16(x1, j); b1 += w1 * load16(x1, j + 16)
        j += 32
      }
      while j + 16 <= k { let w0 = load16(wr, j); a0 += w0 * load16(x0, j); b0 += w0 * load16(x1, j); j += 16 }
      var s0 = hsum(a0 + a1), s1 = hsum(b0 + b1)
      while j < k { s0 += wr[j] * x0[j]; s1 += wr[j] * x1[j]; j += 1 }
      y[r * n + o] += s0
      if r + 1 < m { y[(r + 1) * n + o] += s1 }
      r += 2
    }
  }
}
