// GGUF reading and ggml dequantisation against the `gguf` package (scripts/make-golden-gguf.py):
// generated blocks of every supported type bit for bit, a small file with every metadata value type,
// SmolLM2's real file (metadata and whole tensors), and damaged files refused with a clear message.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import Foundation
import XCTest

final class GGUFTests: XCTestCase {
  struct Generated: Decodable { let type: String; let type_id: UInt32; let bytes: String; let bits: [UInt32] }
  struct Real: Decodable { let name: String; let type: String; let shape: [Int]; let hash: String; let first: [UInt32] }
  struct Golden: Decodable { let generated: [Generated]; let real: [Real] }
  struct TinyTensor: Decodable { let name: String; let type_id: UInt32; let dims: [Int]; let offset: Int; let bytes: Int }
  struct Tiny: Decodable { let tensors: [TinyTensor]; let data_offset: Int; let alignment: Int }

  func fixture(_ name: String) throws -> URL {
    try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil))
  }
  func golden() throws -> Golden { try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixture("gguf-dequant-golden.json"))) }

  /// sum_i (2 bits[i] + 1) P^(i+1) mod 2^64, as the fixture script computes it.
  func polyHash(_ values: UnsafeBufferPointer<Float>) -> String {
    var h: UInt64 = 0, p: UInt64 = 1
    for v in values { p = p &* 1_099_511_628_211; h = h &+ (2 &* UInt64(v.bitPattern) &+ 1) &* p }
    return String(format: "%016lx", h)
  }

  func testEveryTypeDequantisesBitForBitAsTheGGUFPackage() throws {
    let g = try golden()
    XCTAssertEqual(Set(g.generated.map(\.type_id)), Set(GGMLType.dequantizable.map(\.rawValue)), "every supported type has golden blocks")
    for item in g.generated {
      let type = try XCTUnwrap(GGMLType(rawValue: item.type_id))
      let bytes = hexBytes(item.bytes)
      XCTAssertEqual(bytes.count, type.byteCount(elements: item.bits.count), item.type)
      var out = [Float](repeating: .nan, count: item.bits.count)
      bytes.withUnsafeBytes { src in out.withUnsafeMutableBufferPointer { GGML.dequantize(type, src.baseAddress!, count: item.bits.count, into: $0.baseAddress!) } }
      let mismatches = zip(out, item.bits).enumerated().filter { $0.element.0.bitPattern != $0.element.1 }
      XCTAssertTrue(mismatches.isEmpty, "\(item.type): \(mismatches.count) of \(out.count) differ, first at \(mismatches.first.map { "\($0.offset): \($0.element.0) vs \(Float(bitPattern: $0.element.1))" } ?? "")")
    }
  }

  func testASmallFileWithEveryValueType() throws {
    let f = try GGUFFile(path: try fixture("tiny.gguf").path)
    let tiny = try JSONDecoder().decode(Tiny.self, from: Data(contentsOf: fixture("tiny-gguf.json")))
    XCTAssertEqual(f.version, 3)
    XCTAssertEqual(f.alignment, 64)
    XCTAssertEqual(f.dataOffset, tiny.data_offset)
    XCTAssertEqual(f.metadata["general.architecture"], .string("llama"))
    XCTAssertEqual(f.metadata["test.u8"]?.int, 200); XCTAssertEqual(f.metadata["test.i8"]?.int, -100)
    XCTAssertEqual(f.metadata["test.u16"]?.int, 60000); XCTAssertEqual(f.metadata["test.i16"]?.int, -30000)
    XCTAssertEqual(f.metadata["test.u32"]?.int, 4_000_000_000); XCTAssertEqual(f.metadata["test.i32"]?.int, -2_000_000_000)
    XCTAssertEqual(f.metadata["test.f32"]?.double.map { Float($0) }, Float(0.1))
    XCTAssertEqual(f.metadata["test.bool"], .bool(true))
    XCTAssertEqual(f.metadata["test.string"], .string("héllo wörld ✓"))
    XCTAssertEqual(f.metadata["test.u64"], .uint(1 << 63 + 5))
    XCTAssertEqual(f.metadata["test.i64"]?.int, -(1 << 62))
    XCTAssertEqual(f.metadata["test.f64"]?.double, 1e-300)
    XCTAssertEqual(f.metadata["test.strings"], .array([.string("a"), .string(""), .string("ĠĊ")]))
    XCTAssertEqual(f.metadata["test.ints"]?.array?.compactMap(\.int), [1, -2, 3])
    XCTAssertEqual(f.tensors.map(\.name), tiny.tensors.map(\.name))
    let g = try golden()
    var checked: Set<GGMLType> = []
    for (t, want) in zip(f.tensors, tiny.tensors) {
      XCTAssertEqual(t.type.rawValue, want.type_id); XCTAssertEqual(t.dims, want.dims)
      XCTAssertEqual(t.offset, want.offset); XCTAssertEqual(t.byteCount, want.bytes)
      XCTAssertEqual(t.shape, [2, 256])
      let values = try f.dequantize(t.name)
      let bits = try XCTUnwrap(g.generated.first { $0.type_id == want.type_id }).bits
      XCTAssertEqual(values.scalars.map(\.bitPattern), bits, t.name)
      if let packed = f.packed(t) {  // the block kernels' dequantisation (prompts, training) is gguf's too
        XCTAssertEqual(packed.dequantized().scalars.map(\.bitPattern), bits, "\(t.name) read in place")
        checked.insert(t.type)
      }
    }
    XCTAssertEqual(checked, [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1], "every format the kernels read")
  }

  func testSmolLM2FileAndWholeTensors() throws {
    let path = Assets.modelPath("smollm2").path
    guard FileManager.default.fileExists(atPath: path) else { return XCTFail("\(path) is missing: bonsai fetch smollm2 (scripts/test.sh does)") }
    let f = try GGUFFile(path: path)
    XCTAssertEqual(f.version, 3)
    XCTAssertEqual(f.tensors.count, 272)
    XCTAssertEqual(f.metadataKeys.count, 33)
    XCTAssertEqual(f.dataOffset, 1_785_664)
    XCTAssertEqual(f.metadata["general.architecture"], .string("llama"))
    XCTAssertEqual(f.metadata["llama.block_count"]?.int, 30)
    XCTAssertEqual(f.metadata["llama.rope.freq_base"]?.double.map { Float($0) }, 100000)
    XCTAssertEqual(f.metadata["llama.attention.layer_norm_rms_epsilon"]?.double.map { Float($0) }, Float(1e-5))
    XCTAssertEqual(f.metadata["tokenizer.ggml.tokens"]?.array?.count, 49152)
    XCTAssertEqual(f.metadata["tokenizer.ggml.tokens"]?.array?.prefix(3).compactMap(\.string), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    XCTAssertEqual(f.metadata["tokenizer.ggml.merges"]?.array?.first?.string, "Ġ t")
    XCTAssertEqual(f.metadata["tokenizer.ggml.merges"]?.array?.count, 48900)
    XCTAssertEqual(f.tensors.last?.offset, 1_785_664 + 96_574_464)
    for real in try golden().real {
      let t = try f.tensor(named: real.name)
      XCTAssertEqual("\(t.type)".uppercased(), real.type); XCTAssertEqual(t.shape, real.shape)
      let values = try f.dequantize(real.name)
      XCTAssertEqual(polyHash(UnsafeBufferPointer(start: values.data, count: values.count)), real.hash, "\(real.name): every element bit for bit")
      XCTAssertEqual(values.scalars.prefix(8).map(\.bitPattern), real.first, real.name)
      guard t.dims.count == 2 else { XCTAssertNil(f.packed(t), "vectors are not packed"); continue }
      let packed = try XCTUnwrap(f.packed(t)).dequantized()
      XCTAssertEqual(polyHash(UnsafeBufferPointer(start: packed.data, count: packed.count)), real.hash, "\(real.name) read in place")
    }
  }

  func testDamagedFilesAreRefusedNamingTheProblem() throws {
    let good = try Data(contentsOf: fixture("tiny.gguf"))
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-gguf-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    func refused(_ bytes: Data, _ expect: String, file: StaticString = #filePath, line: UInt = #line) {
      let path = dir.appendingPathComponent("bad.gguf").path
      FileManager.default.createFile(atPath: path, contents: bytes)
      XCTAssertThrowsError(try GGUFFile(path: path), file: file, line: line) { error in
        let message = (error as? LocalizedError)?.errorDescription ?? "\(error)"
        XCTAssertTrue(message.contains(path) && message.contains(expect), "\(message) should name the file and say '\(expect)'", file: file, line: line)
      }
    }
    let tiny = try JSONDecoder().decode(Tiny.self, from: Data(contentsOf: fixture("tiny-gguf.json")))
    let end = tiny.tensors.map { $0.offset + $0.bytes }.max()!  // (the file is padded after the last tensor)
    for cut in [3, 20, 100, 600, 1000, end - 1] { refused(good.prefix(cut), cut < 24 ? "shorter than" : "truncated?") }
    var magic = good; magic[0] = UInt8(ascii: "X")
    refused(magic, "magic 'GGUF'")
    var version = good; version[4] = 1
    refused(version, "version 1")
    let name = [5, 0, 0, 0, 0, 0, 0, 0] + Array("t.f32".utf8)  // the tensor info's name (u64 length, bytes)
    let at = try XCTUnwrap((0..<(good.count - name.count)).first { Array(good[$0..<($0 + name.count)]) == name })
    var unknown = good; unknown[at + name.count + 4 + 16] = 99
    refused(unknown, "tensor 't.f32': unknown ggml type id 99")
    // a known type Bonsai cannot dequantise: the file opens, the tensor is refused by name
    var iq = good; iq[at + name.count + 4 + 16] = UInt8(GGMLType.iq2_xxs.rawValue)
    let path = dir.appendingPathComponent("iq.gguf").path
    FileManager.default.createFile(atPath: path, contents: iq)
    let f = try GGUFFile(path: path)
    XCTAssertThrowsError(try f.dequantize("t.f32")) { XCTAssertTrue("\($0.localizedDescription)".contains("'t.f32': type iq2_xxs is not supported")) }
  }

  func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = [], chars = Array(hex.utf8)
    out.reserveCapacity(chars.count / 2)
    func v(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : c - 87 }
    var i = 0
    while i + 1 < chars.count { out.append(v(chars[i]) << 4 | v(chars[i + 1])); i += 2 }
    chars = []
    return out
  }
}
