// Broadcasting binary ops (add, sub, mul, div) and the reduction that undoes broadcasting in backward.

/// NumPy broadcasting of two shapes; nil when incompatible.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
  let r = max(a.count, b.count)
  var out = [Int](repeating: 1, count: r)
  for i in 0..<r {
    let da = i < r - a.count ? 1 : a[i - (r - a.count)]
    let db = i < r - b.count ? 1 : b[i - (r - b.count)]
    if da != db && da != 1 && db != 1 { return nil }
    out[i] = max(da, db)
  }
  return out
}

/// Element strides of `shape` seen through broadcasting to `target` (0 along broadcast dimensions).
func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
  var strides = [Int](repeating: 0, count: target.count)
  var s = 1
  for i in stride(from: shape.count - 1, through: 0, by: -1) {
    let t = i + target.count - shape.count
    strides[t] = shape[i] == 1 ? 0 : s
    s *= shape[i]
  }
  return strides
}

/// Calls `body(outIndex, aIndex, bIndex)` for every element of the broadcast result.
@inline(__always)
func forEachBroadcast(_ out: [Int], _ sa: [Int], _ sb: [Int], _ body: (Int, Int, Int) -> Void) {
  let r = out.count
  let total = out.reduce(1, *)
  if total == 0 { return }
  if r == 0 { body(0, 0, 0); return }
  var idx = [Int](repeating: 0, count: r)
  var ia = 0, ib = 0
  let inner = out[r - 1], ia1 = sa[r - 1], ib1 = sb[r - 1]
  var o = 0
  while o < total {
    var a = ia, b = ib
    for _ in 0..<inner { body(o, a, b); o += 1; a += ia1; b += ib1 }
    // advance the outer index
    var d = r - 2
    while d >= 0 {
      idx[d] += 1; ia += sa[d]; ib += sb[d]
      if idx[d] < out[d] { break }
      ia -= sa[d] * out[d]; ib -= sb[d] * out[d]; idx[d] = 0; d -= 1
    }
    if d < 0 { break }
  }
}

/// Sums `grad` (shape `from`) down to `shape` (which broadcasts to `from`), accumulating into `into`.
func accumulateReduced(_ grad: Tensor, to shape: [Int], into: UnsafeMutablePointer<Float>) {
  if grad.shape == shape {
    let g = grad.data
    parallelFor(grad.count, grain: 1 << 15) { r in for i in r { into[i] += g[i] } }
    return
  }
  let s = broadcastStrides(shape, to: grad.shape)
  let g = grad.data
  forEachBroadcast(grad.shape, s, s) { o, a, _ in into[a] += g[o] }
}

enum BinaryKind { case add, sub, mul, div }

func binary(_ a: Tensor, _ b: Tensor, _ kind: BinaryKind) -> Tensor {
  guard let shape = broadcastShape(a.shape, b.shape) else {
    preconditionFailure("broadcast: shapes \(a.shape) and \(b.shape) are incompatible")
  }
  let out = Tensor(uninitialized: shape)
  let pa = a.data, pb = b.data, po = out.mutableData
  if a.shape == b.shape {
    parallelFor(out.count, grain: 1 << 15) { r in
      switch kind {
      case .add: for i in r { po[i] = pa[i] + pb[i] }
      case .sub: for i in r { po[i] = pa[i] - pb[i] }
      case .mul: for i in r { po[i] = pa[i] * pb[i] }
      case .div: for i in r { po[i] = pa[i] / pb[i] }
      }
    }
  } else {
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    switch kind {
    case .add: forEachBroadcast(shape, sa, sb) { o, i, j in po[o] = pa[i] + pb[j] }
    case .sub: forEachBroadcast(shape, sa, sb) { o, i, j in po[o] = pa[i] - pb[j] }
    case .mul: forEachBroadcast(shape, sa, sb) { o, i, j in po[o] = pa[i] * pb[j] }
    case .div: forEachBroadcast(shape, sa, sb) { o, i, j in po[o] = pa[i] / pb[j] }
    }
  }
  if kind == .add || kind == .sub {
    // the values of a and b are not needed: keep only their gradient slots
    let ta = a.gradTarget, tb = b.gradTarget, aShape = a.shape, bShape = b.shape
    return Tensor.record(out, inputs: [a, b]) { g in
      let sb = broadcastStrides(bShape, to: shape), pg = g.data
      if kind == .add && aShape == shape && bShape == shape {  // a residual sum: b gets a copy, a may take g itself
        tb.accumulate(copyOf: g)
        ta.accumulate(g)
        return
      }
      if let ga = ta.buffer() { accumulateReduced(g, to: aShape, into: ga.mutableData) }
      if let gb = tb.buffer() {
        if kind == .add { accumulateReduced(g, to: bShape, into: gb.mutableData) }
        else { let q = gb.mutableData; forEachBroadcast(shape, sb, sb) { o, j, _ in q[j] -= pg[o] } }
      }
    }
  }
  return Tensor.record(out, inputs: [a, b]) { g in
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    let pg = g.data
    switch kind {
    case .add, .sub: break
    case .mul:
      if let ga = a.gradientBuffer() { let q = ga.mutableData; forEachBroadcast(shape, sa, sb) { o, i, j in q[i] += pg[o] * pb[j] } }
      if let gb = b.gradientBuffer() { let q = gb.mutableData; forEachBroadcast(shape, sa, sb) { o, i, j in q[j] += pg[o] * pa[i] } }
    case .div:
      if let ga = a.gradientBuffer() { let q = ga.mutableData; forEachBroadcast(shape, sa, sb) { o, i, j in q[i] += pg[o] / pb[j] } }
      if let gb = b.gradientBuffer() {
        let q = gb.mutableData
        forEachBroadcast(shape, sa, sb) { o, i, j in q[j] -= pg[o] * pa[i] / (pb[j] * pb[j]) }
      }
    }
  }
}

extension Tensor {
  public static func + (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .add) }
  public static func - (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .sub) }
  public static func * (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .mul) }
  public static func / (a: Tensor, b: Tensor) -> Tensor { binary(a, b, .div) }
  public static func + (a: Tensor, s: Float) -> Tensor { binary(a, Tensor([s], shape: []), .add) }
  public static func - (a: Tensor, s: Float) -> Tensor { binary(a, Tensor([s], shape: []), .sub) }
  public static func * (a: Tensor, s: Float) -> Tensor { a.scaled(by: s) }
  public static func / (a: Tensor, s: Float) -> Tensor { a.scaled(by: 1 / s) }
  public static prefix func - (a: Tensor) -> Tensor { a.scaled(by: -1) }

  /// Multiplies every element by a constant.
  public func scaled(by s: Float) -> Tensor {
    let out = Tensor(uninitialized: shape)
    let p = data, q = out.mutableData
    for i in 0..<count { q[i] = p[i] * s }
    let target = gradTarget
    return Tensor.record(out, inputs: [self]) { g in
      guard let gx = target.buffer() else { return }
      let pg = g.data, q = gx.mutableData
      for i in 0..<g.count { q[i] += pg[i] * s }
    }
  }
}
