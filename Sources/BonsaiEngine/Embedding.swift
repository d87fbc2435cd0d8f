// Embedding lookup (row gather) and its scatter-add backward.

extension Tensor {
  /// Rows of `table` [V, C] picked by `ids`: result [ids.count, C]. Each id must be in 0..<V.
  public static func embedding(_ table: Tensor, ids: [Int]) -> Tensor {
    let v = table.shape[0], c = table.shape[1]
    for id in ids { precondition(id >= 0 && id < v, "embedding: id \(id) outside a table of \(v) rows") }
    let out = Tensor(uninitialized: [ids.count, c])
    let src = table.data, dst = out.mutableData
    parallelFor(ids.count, grain: 256) { r in
      for i in r { (dst + i * c).update(from: src + ids[i] * c, count: c) }
    }
    // the scatter waits for the table's other contributions (a tied head's, made late, writes the whole
    // gradient first, so it is never zero-filled)
    return Tensor.record(out, inputs: [table]) { g in
      table.gradTarget.accumulateLate {
        guard let gt = table.gradientBuffer() else { return }
        let q = gt.mutableData, pg = g.data
        for (i, id) in ids.enumerated() {
          let d = q + id * c, s = pg + i * c
          var j = 0
          while j + 16 <= c { store16(load16(d, j) + load16(s, j), d, j); j += 16 }
          while j < c { d[j] += s[j]; j += 1 }
        }
      }
    }
  }
}
