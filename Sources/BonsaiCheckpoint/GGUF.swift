// GGUF files (llama.cpp's format, versions 2 and 3), read through mmap with every offset and size
// checked. Layout, little-endian: "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata
// (gguf string key, u32 value type, value); tensor infos (name, u32 n_dims, u64 ne[n_dims] with ne[0]
// the contiguous row length, u32 ggml type, u64 offset into the data section); padding to
// general.alignment (default 32); the data section. shared/DECODERS.md section 2 has SmolLM2's file.
import BonsaiEngine
import Foundation

/// A metadata value. Integers keep their sign class, f32 values are held exactly as Double.
public enum GGUFValue: Equatable, Sendable {
  case uint(UInt64)
  case int(Int64)
  case float(Double)
  case bool(Bool)
  case string(String)
  case array([GGUFValue])

  public var int: Int? {
    switch self {
    case let .uint(v): return Int(exactly: v)
    case let .int(v): return Int(exactly: v)
    default: return nil
    }
  }
  public var double: Double? {
    switch self {
    case let .float(v): return v
    case let .uint(v): return Double(v)
    case let .int(v): return Double(v)
    default: return nil
    }
  }
  public var string: String? { if case let .string(s) = self { return s }; return nil }
  public var bool: Bool? { if case let .bool(b) = self { return b }; return nil }
  public var array: [GGUFValue]? { if case let .array(a) = self { return a }; return nil }
}

/// One tensor of a GGUF file.
public struct GGUFTensor: Sendable {
  public let name: String
  /// GGUF dims: ne[0] is the contiguous (row) length.
  public let dims: [Int]
  public let type: GGMLType
  /// Absolute byte offset in the file, and byte length.
  public let offset: Int
  public let byteCount: Int
  public var count: Int { dims.reduce(1, *) }
  /// The PyTorch / Hugging Face shape: the dims reversed ([out_features, in_features] for a matrix).
  public var shape: [Int] { dims.reversed() }
}

/// A memory-mapped GGUF file.
public final class GGUFFile: @unchecked Sendable {
  public let path: String
  public let version: Int
  /// Metadata in file order.
  public let metadataKeys: [String]
  public let metadata: [String: GGUFValue]
  /// Tensor infos in file order.
  public let tensors: [GGUFTensor]
  public let tensorsByName: [String: GGUFTensor]
  public let alignment: Int
  public let dataOffset: Int
  private let mapping: MappedFile
  private var base: UnsafeRawPointer { mapping.base }

  public init(path: String) throws {
    self.path = path
    mapping = try MappedFile(path: path, minimumLength: 24) { CheckpointError.corruptGGUF(path: path, reason: "\($0) bytes, shorter than the 24-byte header") }
    let length = mapping.length, base = mapping.base
    do {
      var r = Reader(base: base, length: length, path: path)
      guard try r.bytes(4) == Array("GGUF".utf8) else {
        throw CheckpointError.corruptGGUF(path: path, reason: "the file does not start with the magic 'GGUF'")
      }
      version = Int(try r.u32())
      guard version == 2 || version == 3 else {
        throw CheckpointError.corruptGGUF(path: path, reason: "version \(version); Bonsai reads GGUF versions 2 and 3")
      }
      let tensorCount = try r.count(try r.u64(), what: "tensor count")
      let kvCount = try r.count(try r.u64(), what: "metadata count")
      var keys: [String] = [], meta: [String: GGUFValue] = [:]
      for _ in 0..<kvCount {
        let key = try r.string()
        let type = try r.u32()
        meta[key] = try r.value(type: type, key: key)
        keys.append(key)
      }
      metadataKeys = keys; metadata = meta
      alignment = meta["general.alignment"]?.int ?? 32
      guard alignment > 0 && alignment & (alignment - 1) == 0 else {
        throw CheckpointError.corruptGGUF(path: path, reason: "general.alignment \(alignment) is not a power of two")
      }
      var infos: [(name: String, dims: [Int], type: GGMLType, offset: Int)] = []
      for _ in 0..<tensorCount {
        let name = try r.string()
        let nDims = Int(try r.u32())
        guard (1...4).contains(nDims) else { throw CheckpointError.badTensor(path: path, key: name, reason: "\(nDims) dims (GGUF allows 1 to 4)") }
        var dims: [Int] = []
        for _ in 0..<nDims { dims.append(try r.count(try r.u64(), what: "tensor '\(name)' dim")) }
        let typeId = try r.u32()
        guard let type = GGMLType(rawValue: typeId) else {
          throw CheckpointError.badTensor(path: path, key: name, reason: "unknown ggml type id \(typeId)")
        }
        let offset = try r.count(try r.u64(), what: "tensor '\(name)' offset")
        guard dims.allSatisfy({ $0 > 0 }), dims[0] % type.blockSize == 0 else {
          throw CheckpointError.badTensor(path: path, key: name, reason: "dims \(dims) do not fit \(type) blocks of \(type.blockSize)")
        }
        guard offset % alignment == 0 else {
          throw CheckpointError.badTensor(path: path, key: name, reason: "offset \(offset) is not a multiple of the alignment \(alignment)")
        }
        infos.append((name, dims, type, offset))
      }
      dataOffset = (r.position + alignment - 1) / alignment * alignment
      var list: [GGUFTensor] = [], byName: [String: GGUFTensor] = [:]
      for info in infos {
        let (count, overflow) = info.dims.reduce((1, false)) { acc, d in let p = acc.0.multipliedReportingOverflow(by: d); return (p.partialValue, acc.1 || p.overflow) }
        guard !overflow, count < 1 << 40 else { throw CheckpointError.badTensor(path: path, key: info.name, reason: "dims \(info.dims) are too large") }
        let t = GGUFTensor(name: info.name, dims: info.dims, type: info.type, offset: dataOffset + info.offset, byteCount: info.type.byteCount(elements: count))
        guard t.offset + t.byteCount <= length else {
          throw CheckpointError.corruptGGUF(path: path, reason: "tensor '\(t.name)' ends at byte \(t.offset + t.byteCount), past the end of the file (\(length) bytes): truncated?")
        }
        guard byName[t.name] == nil else { throw CheckpointError.badTensor(path: path, key: t.name, reason: "appears twice") }
        list.append(t); byName[t.name] = t
      }
      let sorted = list.sorted { $0.offset < $1.offset }
      for (a, b) in zip(sorted, sorted.dropFirst()) where b.offset < a.offset + a.byteCount {
        throw CheckpointError.corruptGGUF(path: path, reason: "tensors '\(a.name)' and '\(b.name)' overlap")
      }
      tensors = list; tensorsByName = byName
    }
  }

  /// The tensor's bytes as stored (blocks of its type).
  public func rawBytes(_ t: GGUFTensor) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + t.offset, count: t.byteCount) }

  public func tensor(named name: String) throws -> GGUFTensor {
    guard let t = tensorsByName[name] else { throw CheckpointError.missingKey(path: path, key: name) }
    return t
  }

  /// A 2-D tensor as it lies in the file, for products that read its blocks (Q8_0, Q4_0, Q4_1, F16, BF16,
  /// F32); nil for other types. The matrix keeps this file mapped.
  public func packed(_ t: GGUFTensor) -> PackedMatrix? {
    guard t.dims.count == 2, let format = PackedFormat(rawValue: Int32(t.type.rawValue)) else { return nil }
    return PackedMatrix(rows: t.dims[1], columns: t.dims[0], format: format, base: base + t.offset, owner: mapping)
  }

  /// Lets the pages of `t`'s bytes leave memory once they have been copied (they are re-read if used).
  public func releasePages(of t: GGUFTensor) { mapping.release(offset: t.offset, count: t.byteCount) }

  /// The tensor in fp32, in its Hugging Face shape (dims reversed).
  public func dequantize(_ name: String) throws -> Tensor {
    let t = try tensor(named: name)
    let out = Tensor(uninitialized: t.shape)
    try dequantize(t, into: out.mutableData)
    return out
  }

  public func dequantize(_ t: GGUFTensor, into dst: UnsafeMutablePointer<Float>) throws {
    guard t.type.isDequantizable else {
      throw CheckpointError.badTensor(path: path, key: t.name, reason: "type \(t.type) is not supported (Bonsai reads \(GGMLType.dequantizable.map { "\($0)" }.joined(separator: ", ")))")
    }
    GGML.dequantize(t.type, base + t.offset, count: t.count, into: dst)
  }

  /// A required metadata value, or an error naming the key.
  public func value(_ key: String) throws -> GGUFValue {
    guard let v = metadata[key] else { throw CheckpointError.missingKey(path: path, key: key) }
    return v
  }
}

/// A bounds-checked little-endian cursor over the mapped file.
private struct Reader {
  let base: UnsafeRawPointer, length: Int, path: String
  var position = 0

  mutating func need(_ n: Int, _ what: String) throws {
    guard n >= 0, position + n <= length else {
      throw CheckpointError.corruptGGUF(path: path, reason: "\(what) at byte \(position) runs past the end of the file (\(length) bytes): truncated?")
    }
  }
  mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
    try need(MemoryLayout<T>.size, "a \(T.self)")
    defer { position += MemoryLayout<T>.size }
    return T(littleEndian: base.loadUnaligned(fromByteOffset: position, as: T.self))
  }
  mutating func u32() throws -> UInt32 { try load(UInt32.self) }
  mutating func u64() throws -> UInt64 { try load(UInt64.self) }
  mutating func bytes(_ n: Int) throws -> [UInt8] {
    try need(n, "\(n) bytes")
    defer { position += n }
    return Array(UnsafeRawBufferPointer(start: base + position, count: n))
  }
  /// A count or offset that must fit the file.
  func count(_ v: UInt64, what: String) throws -> Int {
    guard v < 1 << 48 else { throw CheckpointError.corruptGGUF(path: path, reason: "\(what) \(v) is impossible") }
    return Int(v)
  }
  mutating func string() throws -> String {
    let n = try count(try u64(), what: "string length")
    try need(n, "a string of \(n) bytes")
    defer { position += n }
    return String(decoding: UnsafeRawBufferPointer(start: base + position, count: n), as: UTF8.self)
  }
  mutating func value(type: UInt32, key: String) throws -> GGUFValue {
    switch type {
    case 0: return .uint(UInt64(try load(UInt8.self)))
    case 1: return .int(Int64(try load(Int8.self)))
    case 2: return .uint(UInt64(try load(UInt16.self)))
    case 3: return .int(Int64(try load(Int16.self)))
    case 4: return .uint(UInt64(try load(UInt32.self)))
    case 5: return .int(Int64(try load(Int32.self)))
    case 6: return .float(Double(Float(bitPattern: try load(UInt32.self))))
    case 7:
      let b = try load(UInt8.self)
      guard b <= 1 else { throw CheckpointError.corruptGGUF(path: path, reason: "metadata '\(key)': bool byte \(b)") }
      return .bool(b == 1)
    case 8: return .string(try string())
    case 9:
      let elementType = try u32()
      guard elementType != 9 else { throw CheckpointError.corruptGGUF(path: path, reason: "metadata '\(key)': arrays of arrays are not supported") }
      let n = try count(try u64(), what: "metadata '\(key)' array length")
      guard n <= length - position else { throw CheckpointError.corruptGGUF(path: path, reason: "metadata '\(key)': \(n) elements cannot fit the file") }
      var out: [GGUFValue] = []
      out.reserveCapacity(n)
      for _ in 0..<n { out.append(try value(type: elementType, key: key)) }
      return .array(out)
    case 10: return .uint(try load(UInt64.self))
    case 11: return .int(try load(Int64.self))
    case 12: return .float(Double(bitPattern: try load(UInt64.self)))
    default: throw CheckpointError.corruptGGUF(path: path, reason: "metadata '\(key)': unknown value type \(type)")
    }
  }
}
