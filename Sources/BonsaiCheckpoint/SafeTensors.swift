// safetensors read through mmap with full header validation, and atomic writes that the Python
// `safetensors` library and transformers load. Format: u64 little-endian header length, JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data.
import BonsaiEngine
import Foundation

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Equatable, Sendable {
  public let dtype: String
  public let shape: [Int]
  public let begin: Int
  public let end: Int
}

/// A memory-mapped safetensors file, or the shards of one checkpoint listed by a
/// `model.safetensors.index.json` (`weight_map`: key -> file), read as one. Tensors are read (and
/// converted to fp32) on demand.
public final class SafeTensorsFile: @unchecked Sendable {
  /// The file, or the index of a sharded checkpoint.
  public let path: String
  public let tensors: [String: TensorInfo]
  public let metadata: [String: String]
  private let shards: [Shard]
  /// Key -> index in `shards` (for sharded checkpoints).
  private let shardOf: [String: Int]

  /// One mapped file: its header parsed and validated, offsets relative to `dataStart`.
  struct Shard {
    let path: String, mapping: MappedFile, dataStart: Int
    let tensors: [String: TensorInfo], metadata: [String: String]
  }

  public convenience init(path: String) throws {
    let shard = try SafeTensorsFile.parse(path)
    self.init(path: path, shards: [shard], tensors: shard.tensors, metadata: shard.metadata, shardOf: [:])
  }

  private init(path: String, shards: [Shard], tensors: [String: TensorInfo], metadata: [String: String], shardOf: [String: Int]) {
    self.path = path; self.shards = shards; self.tensors = tensors; self.metadata = metadata; self.shardOf = shardOf
  }

  /// The weights in a Hugging Face folder: `NAME.safetensors`, or else the shards that
  /// `NAME.safetensors.index.json` lists (as transformers writes checkpoints over its shard size).
  public convenience init(folder: URL, name: String = "model") throws {
    let single = folder.appendingPathComponent(name + ".safetensors").path
    let indexPath = folder.appendingPathComponent(name + ".safetensors.index.json").path
    guard !FileManager.default.fileExists(atPath: single), FileManager.default.fileExists(atPath: indexPath) else {
      try self.init(path: single); return
    }
    guard let data = FileManager.default.contents(atPath: indexPath),
          let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
          let map = obj["weight_map"] as? [String: String] else {
      throw CheckpointError.corrupt(path: indexPath, reason: "not a JSON object with a \"weight_map\" of tensor names to file names")
    }
    let files = Array(Set(map.values)).sorted()
    var shards: [Shard] = [], tensors: [String: TensorInfo] = [:], shardOf: [String: Int] = [:]
    for (i, file) in files.enumerated() {
      guard !file.contains("/") else { throw CheckpointError.corrupt(path: indexPath, reason: "shard '\(file)' is not a file name in the folder") }
      let shard = try SafeTensorsFile.parse(folder.appendingPathComponent(file).path)
      for (key, info) in shard.tensors {
        guard map[key] == file else {
          throw CheckpointError.corrupt(path: indexPath, reason: "tensor '\(key)' is in \(file) but the weight_map puts it in \(map[key] ?? "no file")")
        }
        tensors[key] = info; shardOf[key] = i
      }
      shards.append(shard)
    }
    if let missing = map.keys.sorted().first(where: { tensors[$0] == nil }) {
      throw CheckpointError.missingKey(path: folder.appendingPathComponent(map[missing]!).path, key: missing)
    }
    self.init(path: indexPath, shards: shards, tensors: tensors, metadata: shards.first?.metadata ?? [:], shardOf: shardOf)
  }

  /// Maps and validates one file's header.
  static func parse(_ path: String) throws -> Shard {
    let mapping = try MappedFile(path: path, minimumLength: 8) {
      CheckpointError.corrupt(path: path, reason: "file is \($0) bytes, shorter than the 8-byte header length")
    }
    let base = mapping.base, length = mapping.length
    let headerLength = Int(clamping: base.loadUnaligned(as: UInt64.self).littleEndian)
    guard headerLength <= 100_000_000, 8 + headerLength <= length else {
      throw CheckpointError.corrupt(path: path, reason: "header length \(headerLength) exceeds the file size \(length)")
    }
    let dataStart = 8 + headerLength
    let header = Data(bytes: base + 8, count: headerLength)
    guard let obj = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else {
      throw CheckpointError.corrupt(path: path, reason: "header is not a JSON object")
    }
    var infos: [String: TensorInfo] = [:]
    var meta: [String: String] = [:]
    for (key, value) in obj {
      if key == "__metadata__" { meta = value as? [String: String] ?? [:]; continue }
      guard let d = value as? [String: Any], let dtype = d["dtype"] as? String, let shape = d["shape"] as? [Int],
            let offs = d["data_offsets"] as? [Int], offs.count == 2 else {
        throw CheckpointError.badTensor(path: path, key: key, reason: "entry needs dtype, shape and two data_offsets")
      }
      guard let size = Self.elementSize(dtype) else { throw CheckpointError.badTensor(path: path, key: key, reason: "unsupported dtype \(dtype)") }
      guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[1] >= offs[0] else {
        throw CheckpointError.badTensor(path: path, key: key, reason: "negative shape or offsets \(shape) \(offs)")
      }
      let bytes = shape.reduce(1, *) * size
      guard offs[1] - offs[0] == bytes else {
        throw CheckpointError.badTensor(path: path, key: key, reason: "\(offs[1] - offs[0]) bytes for \(dtype) \(shape), which needs \(bytes)")
      }
      guard dataStart + offs[1] <= length else {
        throw CheckpointError.corrupt(path: path, reason: "tensor '\(key)' ends at byte \(dataStart + offs[1]), past the end of the file (\(length) bytes): truncated?")
      }
      infos[key] = TensorInfo(dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
    }
    let sorted = infos.sorted { $0.value.begin < $1.value.begin }
    for (a, b) in zip(sorted, sorted.dropFirst()) where b.value.begin < a.value.end {
      throw CheckpointError.corrupt(path: path, reason: "tensors '\(a.key)' and '\(b.key)' overlap")
    }
    return Shard(path: path, mapping: mapping, dataStart: dataStart, tensors: infos, metadata: meta)
  }

  /// The file holding `key`, its entry, and where its bytes start.
  private func locate(_ key: String) throws -> (path: String, info: TensorInfo, start: UnsafeRawPointer) {
    guard let info = tensors[key] else { throw CheckpointError.missingKey(path: path, key: key) }
    let shard = shards[shardOf[key] ?? 0]
    return (shard.path, info, shard.mapping.base + shard.dataStart + info.begin)
  }

  static func elementSize(_ dtype: String) -> Int? {
    switch dtype {
    case "F64", "I64", "U64": return 8
    case "F32", "I32", "U32": return 4
    case "F16", "BF16", "I16", "U16": return 2
    case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": return 1
    default: return nil
    }
  }

  /// A 1-D int32 tensor (sparse indices) as an array.
  public func int32s(_ key: String) throws -> [Int32] {
    let (path, info, src) = try locate(key)
    guard info.dtype == "I32" else { throw CheckpointError.badTensor(path: path, key: key, reason: "dtype \(info.dtype), expected I32") }
    let n = (info.end - info.begin) / 4
    return [Int32](unsafeUninitializedCapacity: n) { buf, count in
      memcpy(buf.baseAddress!, src, 4 * n); count = n
    }
  }

  /// Names of all tensors.
  public var keys: [String] { Array(tensors.keys).sorted() }

  /// The tensor `key` as fp32 (F16 and BF16 are widened).
  public func tensor(_ key: String) throws -> Tensor {
    guard let info = tensors[key] else { throw CheckpointError.missingKey(path: path, key: key) }
    let t = Tensor(uninitialized: info.shape)
    try read(key, into: t)
    return t
  }

  /// Reads tensor `key` straight into `t` (same shape), widening F16/BF16 to fp32.
  public func read(_ key: String, into t: Tensor) throws {
    let (path, info, src) = try locate(key)
    guard info.shape == t.shape else { throw CheckpointError.shapeMismatch(path: path, key: key, expected: t.shape, actual: info.shape) }
    guard ["F32", "F16", "BF16"].contains(info.dtype) else {
      throw CheckpointError.badTensor(path: path, key: key, reason: "dtype \(info.dtype) cannot be read as floating point (F32, F16, BF16)")
    }
    let n = info.shape.reduce(1, *)
    let dst = t.mutableData
    let width = info.dtype == "F32" ? 4 : 2
    // Copy in 8 MiB pieces and drop each piece's file pages from this process's resident set right
    // after: peak RSS at load is then the parameters plus 8 MiB, not parameters plus the file.
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let piece = (8 << 20) / width
    var start = 0
    while start < n {
      let end = min(n, start + piece)
      switch info.dtype {
      case "F32":
        UnsafeMutableRawPointer(dst + start).copyMemory(from: src + 4 * start, byteCount: (end - start) * 4)
      case "BF16":
        for i in start..<end { dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian) << 16) }
      default: // F16
        for i in start..<end { dst[i] = Float(Float16(bitPattern: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)) }
      }
      let lo = Int(bitPattern: src + width * start) / page * page, hi = Int(bitPattern: src + width * end)
      if hi > lo { madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, MADV_DONTNEED) }
      start = end
    }
  }
}

/// Writes tensors (as F32, or rounded to nearest even as F16 or BF16, the way torch converts them) and
/// 1-D int32 vectors (e.g. sparse indices) as a safetensors file, atomically (temporary name, then rename).
public func writeSafeTensors(_ tensors: [(key: String, tensor: Tensor)], int32 ints: [(key: String, values: [Int32])] = [],
                             to path: String, metadata: [String: String] = ["format": "pt"], dtype: String = "F32") throws {
  try writeSafeTensors(made: tensors.map { e in (e.key, e.tensor.shape, { e.tensor }) }, int32: ints, to: path, metadata: metadata, dtype: dtype)
}

/// `writeSafeTensors` for tensors made one at a time as they are written (`make` is called once, and its
/// result dropped after writing): e.g. weights dequantised or merged for an export, never all in memory at once.
public func writeSafeTensors(made tensors: [(key: String, shape: [Int], make: () -> Tensor)], int32 ints: [(key: String, values: [Int32])] = [],
                             to path: String, metadata: [String: String] = ["format": "pt"], dtype: String = "F32") throws {
  precondition(["F32", "F16", "BF16"].contains(dtype), "writeSafeTensors: dtype \(dtype)")
  let width = dtype == "F32" ? 4 : 2
  // one list in key order: each entry's dtype, shape, size and how its bytes are made
  var entries: [(key: String, dtype: String, shape: [Int], size: Int, bytes: () -> Data)] = []
  for (key, shape, make) in tensors {
    entries.append((key, dtype, shape, width * shape.reduce(1, *), { safeTensorBytes(make(), dtype: dtype) }))
  }
  for (key, values) in ints { entries.append((key, "I32", [values.count], 4 * values.count, { values.withUnsafeBytes { Data($0) } })) }
  let sorted = entries.sorted { $0.key < $1.key }
  var header: [String: Any] = ["__metadata__": metadata]
  var offset = 0
  for e in sorted {
    header[e.key] = ["dtype": e.dtype, "shape": e.shape, "data_offsets": [offset, offset + e.size]]
    offset += e.size
  }
  var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
  while (8 + json.count) % 8 != 0 { json.append(0x20) }  // pad with spaces so the data is 8-byte aligned
  let tmp = path + ".tmp-\(getpid())"
  guard FileManager.default.createFile(atPath: tmp, contents: nil), let handle = FileHandle(forWritingAtPath: tmp) else {
    throw CheckpointError.unreadable(path: tmp, reason: "cannot create file")
  }
  do {
    var len = UInt64(json.count).littleEndian
    try handle.write(contentsOf: Data(bytes: &len, count: 8))
    try handle.write(contentsOf: json)
    for e in sorted {
      let bytes = e.bytes()
      precondition(bytes.count == e.size, "writeSafeTensors: \(e.key) made \(bytes.count) bytes, its shape \(e.shape) needs \(e.size)")
      try handle.write(contentsOf: bytes)
    }
    try handle.synchronize()
    try handle.close()
  } catch {
    try? handle.close()
    unlink(tmp)
    throw CheckpointError.unreadable(path: path, reason: "write failed: \(error.localizedDescription)")
  }
  guard rename(tmp, path) == 0 else {
    unlink(tmp)
    throw CheckpointError.unreadable(path: path, reason: "cannot rename temporary file into place")
  }
}

/// A tensor's bytes in a safetensors dtype: F32 as it is (no copy; the Data keeps the tensor alive), F16/BF16 rounded.
func safeTensorBytes(_ t: Tensor, dtype: String) -> Data {
  let p = t.data, n = t.count
  switch dtype {
  case "F16":
    var d = Data(count: 2 * n)
    d.withUnsafeMutableBytes { b in for i in 0..<n { b.storeBytes(of: Float16(p[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) } }
    return d
  case "BF16":
    var d = Data(count: 2 * n)
    d.withUnsafeMutableBytes { b in for i in 0..<n { b.storeBytes(of: bfloat16Bits(p[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self) } }
    return d
  default:
    return Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: p), count: 4 * n, deallocator: .custom { _, _ in withExtendedLifetime(t) {} })
  }
}

/// fp32 -> bf16 bits, rounding to nearest even (NaN kept quiet), as torch and ggml convert.
func bfloat16Bits(_ x: Float) -> UInt16 {
  let u = x.bitPattern
  if u & 0x7FFF_FFFF > 0x7F80_0000 { return UInt16(u >> 16) | 0x40 }
  return UInt16(truncatingIfNeeded: (UInt64(u) + 0x7FFF + UInt64((u >> 16) & 1)) >> 16)
}
