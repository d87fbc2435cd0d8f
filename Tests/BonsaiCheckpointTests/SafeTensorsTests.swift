import BonsaiCheckpoint
import BonsaiEngine
import Foundation
import XCTest

final class SafeTensorsTests: XCTestCase {
  var dir: URL!

  override func setUpWithError() throws {
    dir = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-st-\(getpid())-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

  /// A raw safetensors file from a header dictionary and payload bytes.
  func raw(_ header: [String: Any], payload: [UInt8], name: String = "x.safetensors") throws -> String {
    let json = try JSONSerialization.data(withJSONObject: header)
    var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
    bytes += Array(json) + payload
    let path = dir.appendingPathComponent(name).path
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    return path
  }

  func testRoundTrip() throws {
    let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3]), b = Tensor([-0.5], shape: [1])
    let path = dir.appendingPathComponent("m.safetensors").path
    try writeSafeTensors([("layer.weight", a), ("layer.bias", b)], to: path)
    let f = try SafeTensorsFile(path: path)
    XCTAssertEqual(f.keys, ["layer.bias", "layer.weight"])
    XCTAssertEqual(try f.tensor("layer.weight").scalars, a.scalars)
    XCTAssertEqual(try f.tensor("layer.weight").shape, [2, 3])
    XCTAssertEqual(f.metadata["format"], "pt")
    XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".tmp-\(getpid())"), "no temporary file left")
  }

  func testHalfPrecisionIsWidened() throws {
    let f16: [Float16] = [1.5, -2.25]
    let bf16: [UInt16] = [0x3FC0, 0xC010]  // 1.5, -2.25
    var payload = f16.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
    payload += bf16.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }
    let path = try raw(["h": ["dtype": "F16", "shape": [2], "data_offsets": [0, 4]],
                        "b": ["dtype": "BF16", "shape": [2], "data_offsets": [4, 8]]], payload: payload)
    let f = try SafeTensorsFile(path: path)
    XCTAssertEqual(try f.tensor("h").scalars, [1.5, -2.25])
    XCTAssertEqual(try f.tensor("b").scalars, [1.5, -2.25])
  }

  func testCorruptFilesAreRejectedWithTheirName() throws {
    let four = [UInt8](repeating: 0, count: 16)
    let cases: [(String, [String: Any], [UInt8], String)] = [
      ("truncated", ["w": ["dtype": "F32", "shape": [4], "data_offsets": [0, 16]]], Array(four.prefix(8)), "truncated"),
      ("size", ["w": ["dtype": "F32", "shape": [3], "data_offsets": [0, 16]]], four, "needs 12"),
      ("overlap", ["w": ["dtype": "F32", "shape": [2], "data_offsets": [0, 8]], "v": ["dtype": "F32", "shape": [2], "data_offsets": [4, 12]]], four, "overlap"),
      ("dtype", ["w": ["dtype": "Q4", "shape": [2], "data_offsets": [0, 8]]], four, "unsupported dtype"),
      ("entry", ["w": ["shape": [2]]], four, "needs dtype"),
    ]
    for (name, header, payload, message) in cases {
      let path = try raw(header, payload: payload, name: name + ".safetensors")
      XCTAssertThrowsError(try SafeTensorsFile(path: path), name) { e in
        XCTAssertTrue(e.localizedDescription.contains(path), "\(name): \(e.localizedDescription)")
        XCTAssertTrue(e.localizedDescription.contains(message), "\(name): \(e.localizedDescription)")
      }
    }
    let tiny = dir.appendingPathComponent("tiny.safetensors").path
    FileManager.default.createFile(atPath: tiny, contents: Data([1, 2, 3]))
    XCTAssertThrowsError(try SafeTensorsFile(path: tiny))
    let huge = dir.appendingPathComponent("huge.safetensors").path
    FileManager.default.createFile(atPath: huge, contents: Data(withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Array($0) } + [0x7B]))
    XCTAssertThrowsError(try SafeTensorsFile(path: huge)) { e in XCTAssertTrue(e.localizedDescription.contains("header length")) }
    XCTAssertThrowsError(try SafeTensorsFile(path: dir.appendingPathComponent("missing.safetensors").path))
  }

  func testIntegerTensorsPassValidationButAreNotReadAsFloats() throws {
    let path = try raw(["position_ids": ["dtype": "I64", "shape": [2], "data_offsets": [0, 16]]], payload: [UInt8](repeating: 0, count: 16))
    let f = try SafeTensorsFile(path: path)
    XCTAssertThrowsError(try f.tensor("position_ids"))
  }
}
