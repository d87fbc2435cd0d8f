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
    // gradient first, so it is never zero-filled), and can make any block of the table's rows alone
    return Tensor.record(out, inputs: [table]) { g in
      table.gradTarget.accumulateLate(byRows: { rows, into, overwrite in
        if overwrite { parallelFor(rows.count * c, grain: 1 << 17) { r in (into + r.lowerBound).update(repeating: 0, count: r.count) } }
        let pg = g.data
        for (i, id) in ids.enumerated() where rows.contains(id) {
          let d = into + (id - rows.lowerBound) * c, s = pg + i * c
          var j = 0
          while j + 16 <= c { store16(load16(d, j) + load16(s, j), d, j); j += 16 }
          while j < c { d[j] += s[j]; j += 1 }
        }
      })
    }
  }
}
