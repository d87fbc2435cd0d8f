// SIMD16 helpers for the kernels. Written against the concrete SIMD16<Float> type: generic widths,
// SIMD.sum()/max() and squareRoot() lower to scalar code (ENGINE-NOTES.md §2).

public typealias V16 = SIMD16<Float>

@inlinable @inline(__always)
public func load16(_ p: UnsafePointer<Float>, _ i: Int) -> V16 {
  UnsafeRawPointer(p + i).loadUnaligned(as: V16.self)
}

@inlinable @inline(__always)
public func load16(_ p: UnsafeMutablePointer<Float>, _ i: Int) -> V16 {
  UnsafeRawPointer(p + i).loadUnaligned(as: V16.self)
}

@inlinable @inline(__always)
public func store16(_ v: V16, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
  UnsafeMutableRawPointer(p + i).storeBytes(of: v, as: V16.self)
}

/// exp with Cody-Waite range reduction and a degree-6 polynomial; 2^n built from exponent bits.
/// Relative error ~2e-7 over the clamped range [-87, 88].
@inlinable @inline(__always)
public func vexp(_ x0: V16) -> V16 {
  var x = x0.replacing(with: V16(repeating: -87), where: x0 .< -87)
  x = x.replacing(with: V16(repeating: 88), where: x .> 88)
  let magic = V16(repeating: 12582912.0)
  let t = x * 1.44269504 + magic
  let n = t - magic
  let r = x - n * 0.693359375 + n * 2.12194440e-4
  var p = r * 0.0013888889 + 0.0083333338
  p = p * r + 0.041666668
  p = p * r + 0.16666667
  p = p * r + 0.5
  p = p * r + 1
  p = p * r + 1
  let e = (unsafeBitCast(t, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
  return p * unsafeBitCast(e, to: V16.self)
}

/// Scalar exp matching `vexp`'s accuracy, for tails.
@inlinable @inline(__always)
public func sexp(_ x: Float) -> Float { Float(Foundation.exp(Double(x))) }

/// erf(x), Abramowitz-Stegun 7.1.26 refined: max abs error 1.5e-7.
@inlinable @inline(__always)
public func verf(_ x: V16) -> V16 {
  let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
  let sign = bits & 0x8000_0000
  let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: V16.self)
  let t = 1 / (1 + 0.3275911 * a)
  var p = t * 1.061405429 - 1.453152027
  p = p * t + 1.421413741
  p = p * t - 0.284496736
  p = p * t + 0.254829592
  p = p * t
  let y = 1 - p * vexp(-a * a)
  return unsafeBitCast(unsafeBitCast(y, to: SIMD16<UInt32>.self) | sign, to: V16.self)
}

/// tanh(x) = 1 - 2/(exp(2x)+1), saturating for large |x|.
@inlinable @inline(__always)
public func vtanh(_ x: V16) -> V16 {
  let e = vexp(x * 2)
  return 1 - 2 / (e + 1)
}

/// sqrt via reciprocal-sqrt bit trick and three Newton steps (SIMD.squareRoot() lowers to scalar code).
/// Relative error ~1e-7; exact 0 for 0.
@inlinable @inline(__always)
public func vsqrt(_ x: V16) -> V16 {
  var y = unsafeBitCast(SIMD16<UInt32>(repeating: 0x5F37_5A86) &- (unsafeBitCast(x, to: SIMD16<UInt32>.self) &>> 1), to: V16.self)
  let hx = x * 0.5
  y = y * (1.5 - hx * y * y)
  y = y * (1.5 - hx * y * y)
  y = y * (1.5 - hx * y * y)
  return (x * y).replacing(with: 0, where: x .== 0)
}

@inlinable @inline(__always)
public func hsum(_ v: V16) -> Float {
  let a = v.lowHalf + v.highHalf
  let b = a.lowHalf + a.highHalf
  let c = b.lowHalf + b.highHalf
  return c[0] + c[1]
}

@inlinable @inline(__always)
public func vmax(_ a: V16, _ b: V16) -> V16 { a.replacing(with: b, where: b .> a) }

@inlinable @inline(__always)
public func hmax(_ v: V16) -> Float {
  let a = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
  let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
  let c = b.lowHalf.replacing(with: b.highHalf, where: b.highHalf .> b.lowHalf)
  return max(c[0], c[1])
}

import Foundation

/// sum a[i] b[i] over n floats.
@inlinable @inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc = V16(), i = 0
  while i + 16 <= n { acc += load16(a, i) * load16(b, i); i += 16 }
  var s = hsum(acc)
  while i < n { s += a[i] * b[i]; i += 1 }
  return s
}

/// y[i] += s x[i] over n floats.
@inlinable @inline(__always)
public func addScaled(_ y: UnsafeMutablePointer<Float>, _ s: Float, _ x: UnsafePointer<Float>, _ n: Int) {
  var i = 0
  while i + 16 <= n { store16(load16(y, i) + s * load16(x, i), y, i); i += 16 }
  while i < n { y[i] += s * x[i]; i += 1 }
}

/// The first index of the largest of n > 0 floats (NaNs never win), 16 at a time: greedy decoding's argmax
/// over a 49,152-word vocabulary was 1% of a batch-8 step as a scalar loop.
@inlinable
public func argmax(_ p: UnsafePointer<Float>, _ n: Int) -> Int {
  precondition(n > 0, "argmax of nothing")
  var m = V16(repeating: -.infinity), i = 0
  while i + 16 <= n { m = vmax(m, load16(p, i)); i += 16 }
  var best = hmax(m)
  while i < n { if p[i] > best { best = p[i] }; i += 1 }
  let target = V16(repeating: best)
  i = 0
  while i + 16 <= n {
    if any(load16(p, i) .== target) { break }
    i += 16
  }
  while i < n && p[i] != best { i += 1 }
  return i < n ? i : 0  // all NaN: 0
}
