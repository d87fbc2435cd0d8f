// A frozen weight matrix kept in one of ggml's block formats (as a GGUF file stores it, read in place
// through its mapping): Q8_0, Q4_0, Q4_1 (blocks of 32 along a row, 8.5 / 4.5 / 5 bits per weight),
// F16, BF16 and F32. Products read the blocks directly (PackedLinear.swift); nothing converts the whole
// matrix to fp32.
import CBonsaiQuant

/// The block formats a `PackedMatrix` can hold, by ggml type id.
public enum PackedFormat: Int32, Sendable, CaseIterable {
  case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 8, bf16 = 30

  /// Elements per block, and bytes per block.
  public var blockSize: Int { isQuantized ? 32 : 1 }
  public var blockBytes: Int {
    switch self {
    case .f32: return 4
    case .f16, .bf16: return 2
    case .q4_0: return 18
    case .q4_1: return 20
    case .q8_0: return 34
    }
  }
  /// Formats whose products quantise the activations to 16 bits per block of 32 (llama.cpp: 8).
  public var isQuantized: Bool { self == .q8_0 || self == .q4_0 || self == .q4_1 }
}

/// Bytes allocated for a matrix that does not live in a mapped file (rows copied in another order).
final class PackedBuffer: @unchecked Sendable {
  let pointer: UnsafeMutableRawPointer
  init(bytes: Int) { pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 1), alignment: 64) }
  deinit { pointer.deallocate() }
}

/// A [rows, columns] matrix in a block format; row r is `rowBytes` bytes at `base + r * rowBytes`, or, when
/// `isTiled`, the rows are kept in tiles of 16 (bq_tile_rows: the same bytes, each block's 16 rows' codes in the
/// order the batched products read them, so they need not transpose them in registers).
public final class PackedMatrix: @unchecked Sendable {
  public let rows: Int, columns: Int
  public let format: PackedFormat
  public let base: UnsafeRawPointer
  public let isTiled: Bool
  public var rowBytes: Int { columns / format.blockSize * format.blockBytes }
  public var byteCount: Int { rows * rowBytes }
  /// What keeps `base` valid (a mapped file, or a buffer of this matrix's own).
  let owner: AnyObject

  /// The matrix at `base`, kept valid by `owner`. `columns` must be a whole number of blocks.
  public init(rows: Int, columns: Int, format: PackedFormat, base: UnsafeRawPointer, owner: AnyObject, tiled: Bool = false) {
    precondition(rows > 0 && columns > 0 && columns % format.blockSize == 0,
                 "PackedMatrix: \(rows) x \(columns) does not fit \(format) blocks of \(format.blockSize)")
    precondition(format != .f32 || Int(bitPattern: base) % 4 == 0, "PackedMatrix: F32 data must be 4-byte aligned")
    precondition(!tiled || (format.isQuantized && rows % 16 == 0), "PackedMatrix: tiles need Q8_0/Q4_0/Q4_1 and rows in 16s")
    self.rows = rows; self.columns = columns; self.format = format; self.base = base; self.owner = owner; self.isTiled = tiled
  }

  /// Whether `tiled()` makes tiles of this matrix (Q8_0, Q4_0, Q4_1 with rows a multiple of 16).
  public var canTile: Bool { format.isQuantized && rows % 16 == 0 }

  /// This matrix in tiles of 16 rows, in a buffer of its own (the layout that batched decoding reads fastest; every
  /// other product and `dequantizeRows` read it too, with the same values); itself when it is tiled or cannot be.
  public func tiled() -> PackedMatrix {
    guard canTile && !isTiled else { return self }
    let buffer = PackedBuffer(bytes: byteCount), rb = rowBytes
    let src = base.assumingMemoryBound(to: UInt8.self), dst = buffer.pointer.assumingMemoryBound(to: UInt8.self)
    parallelFor(rows / 16, grain: 16) { t in
      bq_tile_rows(format.rawValue, src, rb, Int32(columns), dst, Int32(t.lowerBound), Int32(t.upperBound))
    }
    return PackedMatrix(rows: rows, columns: columns, format: format, base: buffer.pointer, owner: buffer, tiled: true)
  }

  /// A copy whose row i is row `order[i]` of this matrix (whole rows, so blocks stay intact).
  public func permutingRows(_ order: [Int]) -> PackedMatrix {
    precondition(!isTiled, "permutingRows: the matrix is kept in tiles")
    precondition(order.count == rows, "permutingRows: \(order.count) indices for \(rows) rows")
    let buffer = PackedBuffer(bytes: byteCount), rb = rowBytes
    for (i, r) in order.enumerated() { (buffer.pointer + i * rb).copyMemory(from: base + r * rb, byteCount: rb) }
    return PackedMatrix(rows: rows, columns: columns, format: format, base: buffer.pointer, owner: buffer)
  }

  /// Rows `range` in fp32 into `out` (row stride `columns`): exactly the values gguf's dequantize gives.
  public func dequantizeRows(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
    precondition(range.lowerBound >= 0 && range.upperBound <= rows, "dequantizeRows: \(range) of \(rows) rows")
    let dequantize = isTiled ? bq_dequantize_tiled : bq_dequantize_rows
    dequantize(format.rawValue, base.assumingMemoryBound(to: UInt8.self), rowBytes, Int32(columns), out,
                       Int32(range.lowerBound), Int32(range.upperBound))
  }

  /// The whole matrix in fp32 [rows, columns].
  public func dequantized() -> Tensor {
    let t = Tensor(uninitialized: [rows, columns])
    let out = t.mutableData, n = columns
    parallelFor(rows, grain: max(1, 16384 / n)) { r in self.dequantizeRows(r, into: out + r.lowerBound * n) }
    return t
  }

  /// The F32 matrix's own values, when its format is F32.
  var floats: UnsafePointer<Float>? { format == .f32 ? base.assumingMemoryBound(to: Float.self) : nil }
}

extension PackedFormat {
  /// `count` elements (whole blocks) at `src` in fp32 into `dst`, over the threads: gguf's values, bit for bit.
  public func dequantize(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
    precondition(count % blockSize == 0, "dequantize: \(count) elements of \(self) is not a whole number of blocks")
    let bs = blockSize, bb = blockBytes
    parallelFor(count / bs, grain: Swift.max(1, 16384 / bs)) { r in  // any run of whole blocks is one "row"
      bq_dequantize_rows(rawValue, (src + r.lowerBound * bb).assumingMemoryBound(to: UInt8.self), r.count * bb,
                         Int32(r.count * bs), dst + r.lowerBound * bs, 0, 1)
    }
  }
}

/// Which kernels packed products use ("avx512", "avx2" or "scalar").
public var packedKernels: String { String(cString: bq_kernel_name()) }

/// The kernel sets for packed products that this build has, best first (the first is the default).
public var availablePackedKernels: [String] { (0..<bq_kernel_count()).map { String(cString: bq_kernel_at($0)) } }

/// Uses the named kernels for packed products from now on (not while products run); false if this build lacks them.
@discardableResult
public func usePackedKernels(_ name: String) -> Bool { bq_use_kernels(name) != 0 }
