// Writing GGUF v3 files (ggml/docs/gguf.md): header, typed metadata, tensor infos (dims innermost
// first), data aligned to `general.alignment` (32). Written beside the destination and renamed into place.
import Foundation

/// A metadata value with its GGUF type.
public enum GGUFMetadata: Sendable {
  case uint32(UInt32), int32(Int32), float32(Float), bool(Bool), string(String)
  case strings([String]), int32s([Int32]), float32s([Float])
}

/// A tensor to write: its GGUF name, shape in PyTorch order ([rows, columns]), ggml type, and its bytes, made
/// only when the writer reaches it (so a model is never held twice in memory) and `byteCount` long.
public struct GGUFTensorData {
  public var name: String
  public var shape: [Int]
  public var type: Int32
  public var byteCount: Int
  public var bytes: () -> Data
  public init(name: String, shape: [Int], type: Int32, byteCount: Int, bytes: @escaping () -> Data) {
    self.name = name; self.shape = shape; self.type = type; self.byteCount = byteCount; self.bytes = bytes
  }
}

public enum GGUFWriter {
  public static let alignment = 32

  /// Writes `metadata` (in order) and `tensors` to `path`.
  public static func write(_ metadata: [(String, GGUFMetadata)], tensors: [GGUFTensorData], to path: String) throws {
    var out = Data()
    func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
    func string(_ s: String) { u64(UInt64(s.utf8.count)); out.append(contentsOf: Array(s.utf8)) }
    func pad() { while out.count % alignment != 0 { out.append(0) } }
    out.append(contentsOf: Array("GGUF".utf8))
    u32(3); u64(UInt64(tensors.count)); u64(UInt64(metadata.count))
    for (key, value) in metadata {
      string(key)
      switch value {
      case let .uint32(v): u32(4); u32(v)
      case let .int32(v): u32(5); u32(UInt32(bitPattern: v))
      case let .float32(v): u32(6); u32(v.bitPattern)
      case let .bool(v): u32(7); out.append(v ? 1 : 0)
      case let .string(s): u32(8); string(s)
      case let .strings(a): u32(9); u32(8); u64(UInt64(a.count)); a.forEach(string)
      case let .int32s(a): u32(9); u32(5); u64(UInt64(a.count)); a.forEach { u32(UInt32(bitPattern: $0)) }
      case let .float32s(a): u32(9); u32(6); u64(UInt64(a.count)); a.forEach { u32($0.bitPattern) }
      }
    }
    var offset = 0
    for t in tensors {
      string(t.name)
      u32(UInt32(t.shape.count))
      for d in t.shape.reversed() { u64(UInt64(d)) }
      u32(UInt32(bitPattern: t.type))
      u64(UInt64(offset))
      offset += (t.byteCount + alignment - 1) / alignment * alignment
    }
    pad()
    let url = URL(fileURLWithPath: path)
    let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
    FileManager.default.createFile(atPath: tmp.path, contents: nil)
    guard let handle = FileHandle(forWritingAtPath: tmp.path) else { throw CheckpointError.unreadable(path: tmp.path, reason: "cannot create the file") }
    do {
      try handle.write(contentsOf: out)
      for t in tensors {
        let bytes = t.bytes()
        guard bytes.count == t.byteCount else { throw CheckpointError.badTensor(path: path, key: t.name, reason: "\(bytes.count) bytes, \(t.byteCount) announced") }
        try handle.write(contentsOf: bytes)
        let padding = (alignment - t.byteCount % alignment) % alignment
        if padding > 0 { try handle.write(contentsOf: Data(count: padding)) }
      }
      try handle.close()
      if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
      try FileManager.default.moveItem(at: tmp, to: url)
    } catch {
      try? FileManager.default.removeItem(at: tmp)
      throw error
    }
  }
}
