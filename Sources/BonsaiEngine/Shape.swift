// Shape ops: reshape (a view), transpose, slice, concat, index gathering along the first axis.

extension Tensor {
  /// The same values with a new shape (shares storage). One dimension may be -1.
  public func reshaped(to newShape: [Int]) -> Tensor {
    var s = newShape
    if let k = s.firstIndex(of: -1) {
      let known = s.enumerated().filter { $0.offset != k }.map(\.element).reduce(1, *)
      s[k] = known == 0 ? 0 : count / known
    }
    precondition(s.reduce(1, *) == count, "reshaped: \(shape) cannot become \(newShape)")
    let out = Tensor(shape: s, storage: storage)
    let target = gradTarget, inShape = shape
    return Tensor.record(out, inputs: [self]) { g in
      target.accumulate(Tensor(shape: inShape, storage: g.storage))  // a new gradient takes g's values as they are
    }
  }

  /// Swaps two axes (copies).
  public func transposed(_ a0: Int, _ a1: Int) -> Tensor {
    let a = a0 < 0 ? rank + a0 : a0, b = a1 < 0 ? rank + a1 : a1
    var perm = Array(0..<rank)
    perm.swapAt(a, b)
    return permuted(perm)
  }

  /// Reorders axes: result axis i is input axis `perm[i]` (copies).
  public func permuted(_ perm: [Int]) -> Tensor {
    precondition(perm.sorted() == Array(0..<rank), "permuted: \(perm) is not a permutation of \(rank) axes")
    let outShape = perm.map { shape[$0] }
    var inStrides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
    let srcStrides = perm.map { inStrides[$0] }
    let out = Tensor(uninitialized: outShape)
    let p = data, q = out.mutableData
    forEachBroadcast(outShape, srcStrides, srcStrides) { o, i, _ in q[o] = p[i] }
    let target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let pg = g.data, pq = gx.mutableData
      forEachBroadcast(outShape, srcStrides, srcStrides) { o, i, _ in pq[i] += pg[o] }
    }
  }

  /// Elements `range` along `axis` (copies).
  public func slice(axis a0: Int, _ range: Range<Int>) -> Tensor {
    let axis = a0 < 0 ? rank + a0 : a0
    precondition(range.lowerBound >= 0 && range.upperBound <= shape[axis], "slice: \(range) outside axis \(axis) of \(shape)")
    let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
    var outShape = shape
    outShape[axis] = range.count
    let out = Tensor(uninitialized: outShape)
    let rowIn = shape[axis] * inner, rowOut = range.count * inner, off = range.lowerBound * inner
    for o in 0..<outer { (out.mutableData + o * rowOut).update(from: data + o * rowIn + off, count: rowOut) }
    let target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      for o in 0..<outer {
        let d = gx.mutableData + o * rowIn + off, s = g.data + o * rowOut
        for i in 0..<rowOut { d[i] += s[i] }
      }
    }
  }

  /// Joins tensors along `axis`; all other dimensions must agree.
  public static func concat(_ parts: [Tensor], axis a0: Int) -> Tensor {
    precondition(!parts.isEmpty, "concat: no tensors")
    let r = parts[0].rank, axis = a0 < 0 ? r + a0 : a0
    for p in parts {
      precondition(p.rank == r && zip(p.shape, parts[0].shape).enumerated().allSatisfy { $0.offset == axis || $0.element.0 == $0.element.1 },
                   "concat: shapes \(parts.map(\.shape)) differ off axis \(axis)")
    }
    let outer = parts[0].shape[..<axis].reduce(1, *), inner = parts[0].shape[(axis + 1)...].reduce(1, *)
    var outShape = parts[0].shape
    outShape[axis] = parts.map { $0.shape[axis] }.reduce(0, +)
    let out = Tensor(uninitialized: outShape)
    let rowOut = outShape[axis] * inner
    var off = 0
    var offsets: [Int] = []
    for p in parts {
      offsets.append(off)
      let rowIn = p.shape[axis] * inner
      for o in 0..<outer { (out.mutableData + o * rowOut + off).update(from: p.data + o * rowIn, count: rowIn) }
      off += rowIn
    }
    let targets = parts.map(\.gradTarget), shapes = parts.map(\.shape)
    return Tensor.record(out, inputs: parts) { g in
      for ((target, pShape), off) in zip(zip(targets, shapes), offsets) {
        guard let gp = target.buffer() else { continue }
        let rowIn = pShape[axis] * inner
        for o in 0..<outer {
          let d = gp.mutableData + o * rowIn, s = g.data + o * rowOut + off
          for i in 0..<rowIn { d[i] += s[i] }
        }
      }
    }
  }

  /// Rows `indices` of a tensor viewed as [R, inner] (e.g. the first token of each sequence).
  public func gatherRows(_ indices: [Int]) -> Tensor {
    let rows = shape[0], inner = count / Swift.max(rows, 1)
    for i in indices { precondition(i >= 0 && i < rows, "gatherRows: index \(i) outside \(rows) rows") }
    let out = Tensor(uninitialized: [indices.count] + shape.dropFirst())
    for (o, i) in indices.enumerated() { (out.mutableData + o * inner).update(from: data + i * inner, count: inner) }
    let target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      for (o, i) in indices.enumerated() {
        let d = gx.mutableData + i * inner, s = g.data + o * inner
        for k in 0..<inner { d[k] += s[k] }
      }
    }
  }
}
