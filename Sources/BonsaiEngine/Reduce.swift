// Reductions: sum, mean and max over everything or along one axis.

extension Tensor {
  /// Sum of all elements, as a scalar tensor.
  public func sum() -> Tensor {
    var s: Double = 0
    for i in 0..<count { s += Double(data[i]) }
    let out = Tensor([Float(s)], shape: [])
    let target = gradTarget, n = count
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let v = g.data[0], q = gx.mutableData
      for i in 0..<n { q[i] += v }
    }
  }

  /// Mean of all elements, as a scalar tensor.
  public func mean() -> Tensor { sum().scaled(by: 1 / Float(Swift.max(count, 1))) }

  /// (outer, n, inner) split around `axis`.
  func split(axis: Int) -> (Int, Int, Int) {
    (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
  }

  /// Sum along `axis`; the axis is kept with size 1 when `keepDims`.
  public func sum(axis a0: Int, keepDims: Bool = false) -> Tensor {
    let axis = a0 < 0 ? rank + a0 : a0
    let (outer, n, inner) = split(axis: axis)
    var outShape = shape
    if keepDims { outShape[axis] = 1 } else { outShape.remove(at: axis) }
    let out = Tensor(zeros: outShape)
    let p = data, q = out.mutableData
    for o in 0..<outer { for k in 0..<n { for i in 0..<inner { q[o * inner + i] += p[(o * n + k) * inner + i] } } }
    let target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let pg = g.data, pq = gx.mutableData
      for o in 0..<outer { for k in 0..<n { for i in 0..<inner { pq[(o * n + k) * inner + i] += pg[o * inner + i] } } }
    }
  }

  /// Mean along `axis`.
  public func mean(axis: Int, keepDims: Bool = false) -> Tensor {
    let a = axis < 0 ? rank + axis : axis
    return sum(axis: a, keepDims: keepDims).scaled(by: 1 / Float(shape[a]))
  }

  /// Maximum along `axis`; the gradient goes to the first maximal element.
  public func max(axis a0: Int, keepDims: Bool = false) -> Tensor {
    let axis = a0 < 0 ? rank + a0 : a0
    let (outer, n, inner) = split(axis: axis)
    precondition(n > 0, "max: empty axis \(axis) of \(shape)")
    var outShape = shape
    if keepDims { outShape[axis] = 1 } else { outShape.remove(at: axis) }
    let out = Tensor(uninitialized: outShape)
    var argmax = [Int](repeating: 0, count: outer * inner)
    let p = data, q = out.mutableData
    for o in 0..<outer {
      for i in 0..<inner {
        var best = p[o * n * inner + i], at = 0
        for k in 1..<n where p[(o * n + k) * inner + i] > best { best = p[(o * n + k) * inner + i]; at = k }
        q[o * inner + i] = best
        argmax[o * inner + i] = at
      }
    }
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = self.gradientBuffer() else { return }
      let pg = g.data, pq = gx.mutableData
      for o in 0..<outer { for i in 0..<inner { pq[(o * n + argmax[o * inner + i]) * inner + i] += pg[o * inner + i] } }
    }
  }

  /// Replaces elements where `mask` is true (mask broadcasts over leading axes) by `value`.
  public func maskedFill(_ mask: [Bool], value: Float) -> Tensor {
    precondition(mask.count > 0 && count % mask.count == 0, "maskedFill: \(mask.count) mask values for \(shape)")
    let m = mask.count
    let out = Tensor(uninitialized: shape)
    let p = data, q = out.mutableData
    for i in 0..<count { q[i] = mask[i % m] ? value : p[i] }
    let target = gradTarget, n = count
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let pg = g.data, pq = gx.mutableData
      for i in 0..<n where !mask[i % m] { pq[i] += pg[i] }
    }
  }
}
