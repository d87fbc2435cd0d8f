// Matrix products: batched matmul and the fused linear layer (x W^T + b), with their backward passes.

/// db[C] += sum over rows of dy[N, C] (deterministic per-thread partials).
public func biasBackward(_ db: UnsafeMutablePointer<Float>, _ dy: UnsafePointer<Float>, rows: Int, cols c: Int) {
  let threads = Swift.min(Engine.threads, Swift.max(rows / 64, 1))
  let partial = Storage(count: threads * c)
  let pp = partial.pointer
  parallelFor(threads) { chunks in
    for t in chunks {
      let acc = pp + t * c
      for row in (rows * t / threads)..<(rows * (t + 1) / threads) {
        let g = dy + row * c
        var j = 0
        while j + 16 <= c { store16(load16(acc, j) + load16(g, j), acc, j); j += 16 }
        while j < c { acc[j] += g[j]; j += 1 }
      }
    }
  }
  for t in 0..<threads { for j in 0..<c { db[j] += pp[t * c + j] } }
}

extension Tensor {
  /// y[..., O] = x[..., I] W[O, I]^T + b[O] (PyTorch's `nn.Linear` layout).
  public func linear(weight w: Tensor, bias b: Tensor?) -> Tensor {
    let inF = shape.last!, outF = w.shape[0], rows = count / inF
    precondition(w.rank == 2 && w.shape[1] == inF, "linear: weight \(w.shape) for input \(shape)")
    if let b { precondition(b.shape == [outF], "linear: bias \(b.shape) for weight \(w.shape)") }
    let out = KeptProducts.product(inner: inF) {
      if rows <= SmallLinear.maxRows && !GradMode.isEnabled { return Tensor.smallProducts(self, [(w, b)])[0] }
      let out = Tensor(uninitialized: Array(shape.dropLast()) + [outF]), y = out.mutableData
      if let b { for r in 0..<rows { (y + r * outF).update(from: b.data, count: outF) } }
      gemm(.no, .yes, m: rows, n: outF, k: inF, data, lda: inF, w.data, ldb: inF, beta: b == nil ? 0 : 1, y, ldc: outF)
      return out
    }
    let inputs = b.map { [self, w, $0] } ?? [self, w]
    return Tensor.record(out, inputs: inputs) { g in
      if let (gx, beta) = self.gradTarget.productBuffer() {
        gemm(.no, .no, m: rows, n: inF, k: outF, g.data, lda: outF, w.data, ldb: inF, beta: beta, gx.mutableData, ldc: inF)
      }
      if let (gw, beta) = w.gradTarget.productBuffer() {
        gemm(.yes, .no, m: outF, n: inF, k: rows, g.data, lda: outF, self.data, ldb: inF, beta: beta, gw.mutableData, ldc: inF)
      }
      if let b, let gb = b.gradientBuffer() { biasBackward(gb.mutableData, g.data, rows: rows, cols: outF) }
    }
  }

  /// y[..., O] = gelu(x)[..., I] W[O, I]^T + b[O], fused: gelu(x) is not kept for the backward pass
  /// (it is recomputed there), which saves one [N, I] activation per transformer layer.
  public func geluLinear(weight w: Tensor, bias b: Tensor?) -> Tensor {
    let inF = shape.last!, outF = w.shape[0], rows = count / inF
    precondition(w.rank == 2 && w.shape[1] == inF, "geluLinear: weight \(w.shape) for input \(shape)")
    let out = Tensor(uninitialized: Array(shape.dropLast()) + [outF])
    let y = out.mutableData
    if let b { for r in 0..<rows { (y + r * outF).update(from: b.data, count: outF) } }
    do {
      let a = Storage(count: count, zeroed: false)
      geluForward(a.pointer, data, count)
      gemm(.no, .yes, m: rows, n: outF, k: inF, a.pointer, lda: inF, w.data, ldb: inF, beta: b == nil ? 0 : 1, y, ldc: outF)
    }
    let inputs = b.map { [self, w, $0] } ?? [self, w]
    return Tensor.record(out, inputs: inputs) { g in
      let a = Storage(count: self.count, zeroed: false)
      geluForward(a.pointer, self.data, self.count)
      if let (gw, beta) = w.gradTarget.productBuffer() {
        gemm(.yes, .no, m: outF, n: inF, k: rows, g.data, lda: outF, a.pointer, ldb: inF, beta: beta, gw.mutableData, ldc: inF)
      }
      if let b, let gb = b.gradientBuffer() { biasBackward(gb.mutableData, g.data, rows: rows, cols: outF) }
      if let gx = self.gradientBuffer() {
        // da = g W into the recomputed buffer, then dx += da * gelu'(x)
        gemm(.no, .no, m: rows, n: inF, k: outF, g.data, lda: outF, w.data, ldb: inF, beta: 0, a.pointer, ldc: inF)
        geluBackward(gx.mutableData, a.pointer, self.data, self.count)
      }
    }
  }

  /// Batched matrix product: [..., M, K] x [..., K, N] -> [..., M, N]; `other` may be 2-D (shared).
  public func matmul(_ other: Tensor) -> Tensor {
    precondition(rank >= 2 && other.rank >= 2, "matmul: shapes \(shape) and \(other.shape)")
    let m = shape[rank - 2], k = shape[rank - 1], n = other.shape[other.rank - 1]
    precondition(other.shape[other.rank - 2] == k, "matmul: inner sizes differ in \(shape) x \(other.shape)")
    let batch = count / (m * k)
    let shared = other.rank == 2
    precondition(shared || other.count / (k * n) == batch, "matmul: batch sizes differ in \(shape) x \(other.shape)")
    if shared && batch > 1 {
      // one big product: [batch*M, K] x [K, N]
      let out = reshaped(to: [batch * m, k]).matmul(other)
      return out.reshaped(to: Array(shape.dropLast()) + [n])
    }
    let out = Tensor(uninitialized: Array(shape.dropLast()) + [n])
    for i in 0..<batch {
      gemm(.no, .no, m: m, n: n, k: k, data + i * m * k, lda: k, other.data + (shared ? 0 : i * k * n), ldb: n,
           out.mutableData + i * m * n, ldc: n)
    }
    return Tensor.record(out, inputs: [self, other]) { g in
      for i in 0..<batch {
        let gi = g.data + i * m * n
        if let ga = self.gradientBuffer() {
          gemm(.no, .yes, m: m, n: k, k: n, gi, lda: n, other.data + (shared ? 0 : i * k * n), ldb: n, beta: 1,
               ga.mutableData + i * m * k, ldc: k)
        }
        if let gb = other.gradientBuffer() {
          gemm(.yes, .no, m: k, n: n, k: m, self.data + i * m * k, lda: k, gi, ldb: n, beta: 1,
               gb.mutableData + (shared ? 0 : i * k * n), ldc: n)
        }
      }
    }
  }
}
