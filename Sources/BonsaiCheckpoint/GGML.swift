// ggml's tensor types and their dequantisation to fp32, bit for bit what the `gguf` Python package
// (gguf/quants.py) computes: every product and sum in fp32, in its order, no fused multiply-add. F32, F16,
// BF16, Q8_0, Q4_0 and Q4_1 go through the engine's kernels (PackedFormat.dequantize); the others are here.
// Blocks run along a row (ne[0]); a row of n elements is n / blockSize consecutive blocks.
//   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0: 32 elements, one fp16 scale d (and min m), 4/5/8-bit codes
//   Q4_K, Q5_K, Q6_K: 256 elements in sub-blocks of 32 (16 for Q6_K) with 6/8-bit sub-scales
import BonsaiEngine
import Foundation

/// A ggml tensor type (the type id of a GGUF tensor info).
public enum GGMLType: UInt32, Sendable, CaseIterable {
  case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
  case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
  case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
  case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30, tq1_0 = 34, tq2_0 = 35

  /// Elements per block and bytes per block.
  public var blockSize: Int {
    switch self {
    case .f32, .f16, .bf16, .i8, .i16, .i32, .i64, .f64: return 1
    case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl: return 32
    default: return 256
    }
  }
  public var blockBytes: Int {
    switch self {
    case .f32, .i32: return 4
    case .f16, .bf16, .i16: return 2
    case .i8: return 1
    case .i64, .f64: return 8
    case .q4_0: return 18
    case .q4_1: return 20
    case .q5_0: return 22
    case .q5_1: return 24
    case .q8_0: return 34
    case .q8_1: return 36
    case .q2_K: return 84
    case .q3_K: return 110
    case .q4_K: return 144
    case .q5_K: return 176
    case .q6_K: return 210
    case .q8_K: return 292
    case .iq2_xxs: return 66
    case .iq2_xs: return 74
    case .iq3_xxs: return 98
    case .iq1_s: return 50
    case .iq4_nl: return 18
    case .iq3_s: return 110
    case .iq2_s: return 82
    case .iq4_xs: return 136
    case .iq1_m: return 56
    case .tq1_0: return 54
    case .tq2_0: return 66
    }
  }

  /// The types Bonsai turns into fp32.
  public static let dequantizable: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q4_K, .q5_K, .q6_K]
  public var isDequantizable: Bool { GGMLType.dequantizable.contains(self) }

  /// Bytes of `count` elements (a whole number of blocks).
  public func byteCount(elements count: Int) -> Int { count / blockSize * blockBytes }
}

@inline(__always) func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
  Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian))
}

public enum GGML {
  /// Dequantises `count` elements of `type` (a whole number of blocks) from `src` into `dst`.
  public static func dequantize(_ type: GGMLType, _ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
    precondition(count % type.blockSize == 0, "GGML.dequantize: \(count) elements of \(type) is not a whole number of blocks")
    // the formats products read in place share the engine's dequantisation (CBonsaiQuant)
    if let format = PackedFormat(rawValue: Int32(type.rawValue)) { return format.dequantize(src, count: count, into: dst) }
    let blocks = count / type.blockSize, bs = type.blockSize, bb = type.blockBytes
    parallelFor(blocks, grain: max(1, 16384 / bs)) { r in
      for b in r { dequantizeBlock(type, src + b * bb, dst + b * bs) }
    }
  }

  static func dequantizeBlock(_ type: GGMLType, _ p: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
    let q = p.assumingMemoryBound(to: UInt8.self)
    switch type {
    case .q5_0, .q5_1:
      let hasMin = type == .q5_1
      let d = half(p, 0), m: Float = hasMin ? half(p, 2) : 0
      let h = hasMin ? 4 : 2
      let qh = p.loadUnaligned(fromByteOffset: h, as: UInt32.self).littleEndian
      for j in 0..<16 {
        let lo = Int(q[h + 4 + j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
        let hi = Int(q[h + 4 + j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
        if hasMin { y[j] = d * Float(lo) + m; y[j + 16] = d * Float(hi) + m }
        else { y[j] = d * Float(lo - 16); y[j + 16] = d * Float(hi - 16) }
      }
    case .q4_K, .q5_K:
      let d = half(p, 0), dmin = half(p, 2)
      let scales = q + 4
      let qh: UnsafePointer<UInt8>? = type == .q5_K ? q + 16 : nil
      let qs = q + (type == .q5_K ? 48 : 16)
      for s in 0..<8 {
        let (sc, mn) = scaleMin(s, scales)
        let ds = d * Float(sc), dm = dmin * Float(mn)
        let base = qs + (s / 2) * 32, shift = UInt8(4 * (s % 2))
        for l in 0..<32 {
          var v = (base[l] >> shift) & 0x0F
          if let qh { v |= ((qh[l] >> UInt8(s)) & 1) << 4 }
          y[s * 32 + l] = ds * Float(v) - dm
        }
      }
    case .q6_K:
      let ql = q, qh = q + 128
      let scales = UnsafeRawPointer(q + 192).assumingMemoryBound(to: Int8.self)
      let d = half(p, 208)
      for g in 0..<8 {
        let chunk = g / 4, k = g % 4
        for l in 0..<32 {
          let low = (ql[chunk * 64 + (k % 2) * 32 + l] >> UInt8(4 * (k / 2))) & 0x0F
          let high = (qh[chunk * 32 + l] >> UInt8(2 * k)) & 0x03
          let v = Int8(bitPattern: low | high << 4) &- 32
          let e = g * 32 + l
          y[e] = (d * Float(scales[e / 16])) * Float(v)
        }
      }
    default:
      preconditionFailure("GGML.dequantize: \(type) is not dequantizable (check isDequantizable first)")
    }
  }

  /// Q4_K/Q5_K's 6-bit scale and min of sub-block `j` (ggml's get_scale_min_k4).
  @inline(__always) static func scaleMin(_ j: Int, _ q: UnsafePointer<UInt8>) -> (UInt8, UInt8) {
    if j < 4 { return (q[j] & 63, q[j + 4] & 63) }
    return ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
  }
}
