// Products with packed (GGUF block format) weights, differentiable with respect to the input only (the
// weight is frozen: QLoRA's base). Two paths:
// - a few rows without gradient (decoding): each weight row is read once from its blocks and dotted with
//   every input row. For Q8_0/Q4_0/Q4_1 the input rows are first quantised to 16 bits per block of 32
//   (llama.cpp uses 8), and the dot products run on integers (CBonsaiQuant); F16/BF16 keep fp32 inputs.
// - many rows (prompts, training) and every backward: chunks of weight rows are dequantised (exactly,
//   bit for bit the fp32 weights) into a small buffer and multiplied by the GEMM library, so these
//   results equal the fp32 path's up to the order of the sums.
import CBonsaiQuant

enum PackedLinear {
  /// Floats of dequantised weight rows handed to GEMM at once (4 MB).
  static let chunkFloats = 1 << 20

  /// Calls `body(rows, pointer)` for consecutive chunks of W's rows in fp32 (row stride W.columns).
  static func forEachChunk(_ w: PackedMatrix, _ body: (Range<Int>, UnsafePointer<Float>) -> Void) {
    if let f = w.floats { body(0..<w.rows, f); return }
    let chunk = Swift.max(1, Swift.min(w.rows, chunkFloats / w.columns))
    let scratch = Storage(count: chunk * w.columns, zeroed: false)
    let p = scratch.pointer, n = w.columns
    for start in stride(from: 0, to: w.rows, by: chunk) {
      let rows = start..<Swift.min(start + chunk, w.rows)
      parallelFor(rows.count, grain: Swift.max(1, 8192 / n)) { r in
        w.dequantizeRows((rows.lowerBound + r.lowerBound)..<(rows.lowerBound + r.upperBound), into: p + r.lowerBound * n)
      }
      body(rows, p)
    }
  }
}

extension Tensor {
  /// x W^T + b with W packed [O, I]; x [..., I] -> [..., O]. The gradient reaches x and b, never W.
  public func linear(packed w: PackedMatrix, bias b: Tensor?) -> Tensor {
    let inF = shape.last!, outF = w.rows, rows = count / inF
    precondition(w.columns == inF, "linear: packed weight [\(w.rows), \(w.columns)] for input \(shape)")
    if let b { precondition(b.shape == [outF], "linear: bias \(b.shape) for packed weight [\(w.rows), \(w.columns)]") }
    let out = KeptProducts.product(inner: inF) {
      if rows <= SmallLinear.maxRows && !GradMode.isEnabled { return Tensor.smallProducts(self, packed: [(w, b)])[0] }
      let out = Tensor(uninitialized: Array(shape.dropLast()) + [outF])
      let y = out.mutableData, x = data
      if let b { for r in 0..<rows { (y + r * outF).update(from: b.data, count: outF) } }
      PackedLinear.forEachChunk(w) { range, wp in
        gemm(.no, .yes, m: rows, n: range.count, k: inF, x, lda: inF, wp, ldb: inF, beta: b == nil ? 0 : 1,
             y + range.lowerBound, ldc: outF)
      }
      return out
    }
    return Tensor.record(out, inputs: b.map { [self, $0] } ?? [self]) { g in
      if let (gx, first) = self.gradTarget.productBuffer() {
        var beta = first  // a new gradient is written by the first chunk, accumulated into by the rest
        PackedLinear.forEachChunk(w) { range, wp in
          gemm(.no, .no, m: rows, n: inF, k: range.count, g.data + range.lowerBound, lda: outF, wp, ldb: inF, beta: beta,
               gx.mutableData, ldc: inF)
          beta = 1
        }
      }
      if let b, let gb = b.gradientBuffer() { biasBackward(gb.mutableData, g.data, rows: rows, cols: outF) }
    }
  }

  /// [x W_i^T + b_i] for packed W_i sharing the input x (q, k, v; gate, up): for at most 8 rows without
  /// gradient, x is quantised once and every product runs in one parallel region; else one `linear` each.
  public static func linearProducts(_ x: Tensor, packed layers: [(weight: PackedMatrix, bias: Tensor?)]) -> [Tensor] {
    let inF = x.shape.last!, rows = x.count / inF
    if rows > SmallLinear.maxRows || GradMode.isEnabled || KeptProducts.current != nil { return layers.map { x.linear(packed: $0.weight, bias: $0.bias) } }
    return smallProducts(x, packed: layers)
  }

  /// `linearProducts` of at most 8 rows: x quantised once, every product in one parallel region.
  static func smallProducts(_ x: Tensor, packed layers: [(weight: PackedMatrix, bias: Tensor?)]) -> [Tensor] {
    let inF = x.shape.last!, rows = x.count / inF
    for (w, _) in layers { precondition(w.columns == inF, "linear: packed weight [\(w.rows), \(w.columns)] for input \(x.shape)") }
    // the input once, quantised per block of 32 for the Q formats (in the layout of the kernels in use)
    let quantized = layers.contains { $0.weight.format.isQuantized }
    let scratch = Storage(count: quantized ? bq_activation_floats(Int32(rows), Int32(inF)) : 0, zeroed: false)
    let activations = quantized ? bq_quantize_rows(x.data, Int32(rows), Int32(inF), inF, scratch.pointer) : bq_activations()
    let xp = x.data
    let outputs = SmallLinear.products(x, outFeatures: layers.map(\.weight.rows), biases: layers.map(\.bias)) { i, range, y in
      let w = layers[i].weight
      let bytes = w.base.assumingMemoryBound(to: UInt8.self), r0 = Int32(range.lowerBound), r1 = Int32(range.upperBound)
      if let f = w.floats {
        addProducts(y, xp, f, rows: rows, outFeatures: w.rows, inFeatures: inF, weightRows: range)
      } else if w.isTiled {
        bq_matmul_q_tiled(w.format.rawValue, bytes, w.rowBytes, Int32(inF), activations, Int32(rows), y, w.rows, r0, r1)
      } else if w.format.isQuantized {
        bq_matmul_q(w.format.rawValue, bytes, w.rowBytes, Int32(inF), activations, Int32(rows), y, w.rows, r0, r1)
      } else {
        bq_matmul_f(w.format.rawValue, bytes, w.rowBytes, Int32(inF), xp, Int32(rows), y, w.rows, r0, r1)
      }
    }
    withExtendedLifetime(scratch) {}
    return outputs
  }

  /// Rows of a packed table [V, C] picked by `ids`, in fp32: [ids.count, C]. No gradient.
  public static func embedding(_ table: PackedMatrix, ids: [Int]) -> Tensor {
    for id in ids { precondition(id >= 0 && id < table.rows, "embedding: id \(id) outside a table of \(table.rows) rows") }
    let c = table.columns, out = Tensor(uninitialized: [ids.count, c]), dst = out.mutableData
    parallelFor(ids.count, grain: 64) { r in
      for i in r { table.dequantizeRows(ids[i]..<(ids[i] + 1), into: dst + i * c) }
    }
    return out
  }
}
