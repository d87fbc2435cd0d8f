// fp32 -> ggml block formats by the formulas of ggml's reference quantisers (ggml-quants.c
// quantize_row_*_ref; llama-quantize's compiler may fuse a multiply-add there, so a rare code can differ):
//   Q8_0: d = max|x| / 127, q = round(x / d) (ties away from zero)
//   Q4_0: d = (the x of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5))
//   Q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))
//   F16 round to nearest even; BF16 round to nearest even (NaN kept quiet).
// d and m are stored as fp16 (round to nearest even).

extension PackedMatrix {
  /// `t` [rows, columns] in `format` (columns a multiple of the block size), in a buffer of its own.
  public convenience init(quantizing t: Tensor, to format: PackedFormat) {
    precondition(t.rank == 2 && t.shape[1] % format.blockSize == 0, "PackedMatrix: \(t.shape) does not fit \(format) blocks")
    let rows = t.shape[0], cols = t.shape[1], rowBytes = cols / format.blockSize * format.blockBytes
    let buffer = PackedBuffer(bytes: rows * rowBytes)
    let src = t.data, dst = buffer.pointer
    parallelFor(rows, grain: Swift.max(1, 4096 / cols)) { r in
      for row in r { PackedMatrix.quantizeRow(src + row * cols, cols, format, dst + row * rowBytes) }
    }
    self.init(rows: rows, columns: cols, format: format, base: buffer.pointer, owner: buffer)
  }

  static func quantizeRow(_ x: UnsafePointer<Float>, _ n: Int, _ format: PackedFormat, _ out: UnsafeMutableRawPointer) {
    func half(_ v: Float, _ at: Int, _ p: UnsafeMutableRawPointer) { p.storeBytes(of: Float16(v).bitPattern.littleEndian, toByteOffset: at, as: UInt16.self) }
    switch format {
    case .f32:
      for j in 0..<n { out.storeBytes(of: x[j].bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self) }
    case .f16:
      for j in 0..<n { half(x[j], 2 * j, out) }
    case .bf16:
      for j in 0..<n {
        let u = x[j].bitPattern
        let b = x[j].isNaN ? UInt16(u >> 16) | 64 : UInt16((u &+ (0x7FFF &+ ((u >> 16) & 1))) >> 16)
        out.storeBytes(of: b.littleEndian, toByteOffset: 2 * j, as: UInt16.self)
      }
    case .q8_0, .q4_0, .q4_1:
      let bb = format.blockBytes
      for b in 0..<(n / 32) {
        let v = x + b * 32, o = out + b * bb
        let q = (o + (format == .q4_1 ? 4 : 2)).assumingMemoryBound(to: UInt8.self)
        switch format {
        case .q8_0:
          var amax: Float = 0
          for j in 0..<32 { amax = Swift.max(amax, abs(v[j])) }
          let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
          half(d, 0, o)
          for j in 0..<32 { q[j] = UInt8(bitPattern: Int8((v[j] * id).rounded())) }
        case .q4_0:
          var amax: Float = 0, extreme: Float = 0
          for j in 0..<32 where amax < abs(v[j]) { amax = abs(v[j]); extreme = v[j] }
          let d = extreme / -8, id: Float = d != 0 ? 1 / d : 0
          half(d, 0, o)
          for j in 0..<16 {
            let lo = Swift.min(15, Int8(v[j] * id + 8.5)), hi = Swift.min(15, Int8(v[j + 16] * id + 8.5))
            q[j] = UInt8(lo) | UInt8(hi) << 4
          }
        default:
          var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
          for j in 0..<32 { lo = Swift.min(lo, v[j]); hi = Swift.max(hi, v[j]) }
          let d = (hi - lo) / 15, id: Float = d != 0 ? 1 / d : 0
          half(d, 0, o); half(lo, 2, o)
          for j in 0..<16 {
            let a = Swift.min(15, Int8((v[j] - lo) * id + 0.5)), c = Swift.min(15, Int8((v[j + 16] - lo) * id + 0.5))
            q[j] = UInt8(a) | UInt8(c) << 4
          }
        }
      }
    }
  }
}
