// The `bonsai` tool as a user runs it: output format, and one clear error line with a non-zero exit
// for each kind of bad input (never a crash, never a partial output).
import Foundation
import XCTest

let assetHome: URL = {
  if let h = ProcessInfo.processInfo.environment["BONSAI_HOME"] { return URL(fileURLWithPath: h) }
  let cache = ProcessInfo.processInfo.environment["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
    ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
  return cache.appendingPathComponent("bonsai")
}()

struct Run { let status: Int32; let stdout: String; let stderr: String }

final class CLITests: XCTestCase {
  var tmp: URL!

  override func setUpWithError() throws {
    tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

  /// The `bonsai` binary built next to this test bundle.
  var binary: URL {
    var dir = Bundle.main.bundleURL
    for b in Bundle.allBundles where b.bundlePath.hasSuffix(".xctest") { dir = b.bundleURL.deletingLastPathComponent() }
    if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("bonsai").path) { dir = Bundle.main.bundleURL }
    return dir.appendingPathComponent("bonsai")
  }

  func run(_ args: [String], stdin: Data = Data()) throws -> Run {
    let p = Process()
    p.executableURL = binary
    p.arguments = args
    let inPipe = Pipe(), outPipe = Pipe(), errPipe = Pipe()
    p.standardInput = inPipe; p.standardOutput = outPipe; p.standardError = errPipe
    try p.run()
    inPipe.fileHandleForWriting.write(stdin)
    try inPipe.fileHandleForWriting.close()
    let out = outPipe.fileHandleForReading.readDataToEndOfFile(), err = errPipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return Run(status: p.terminationStatus, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
  }

  var minilm: String { assetHome.appendingPathComponent("models/minilm").path }

  /// A copy of MiniLM's folder (weights linked, not copied) that a test may break.
  func modelCopy() throws -> URL {
    let dir = tmp.appendingPathComponent("model-\(UUID().uuidString.prefix(6))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"] {
      try FileManager.default.copyItem(atPath: minilm + "/" + f, toPath: dir.appendingPathComponent(f).path)
    }
    try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("model.safetensors").path, withDestinationPath: minilm + "/model.safetensors")
    return dir
  }

  func assertCleanFailure(_ r: Run, mentions: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertNotEqual(r.status, 0, "exit status", file: file, line: line)
    XCTAssertLessThan(r.status, 128, "killed by a signal: \(r.stderr)", file: file, line: line)
    XCTAssertTrue(r.stderr.contains(mentions), "stderr should mention \(mentions): \(r.stderr)", file: file, line: line)
    XCTAssertEqual(r.stdout, "", "no partial output", file: file, line: line)
  }

  func testTokenizeAndEmbed() throws {
    let r = try run(["tokenize", "--model", minilm], stdin: Data("the movie was a delight from start to finish .\nhi\n".utf8))
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(r.stdout, "[101,1996,3185,2001,1037,12208,2013,2707,2000,3926,1012,102]\n[101,7632,102]\n")
    let long = String(repeating: "word ", count: 2000)
    let t = try run(["tokenize", "--model", minilm, "--max-length", "16"], stdin: Data((long + "\n").utf8))
    XCTAssertEqual(t.stdout.split(separator: ",").count, 16, "truncated to --max-length")
    let e = try run(["embed", "--model", minilm, "--normalize"], stdin: Data("a short text\n\(long)\n".utf8))
    XCTAssertEqual(e.status, 0, e.stderr)
    let vectors = try e.stdout.split(separator: "\n").map { try JSONDecoder().decode([Float].self, from: Data($0.utf8)) }
    XCTAssertEqual(vectors.count, 2, "a text longer than the model's positions is truncated, not an error")
    for v in vectors {
      XCTAssertEqual(v.count, 384)
      XCTAssertEqual(v.reduce(0) { $0 + $1 * $1 }, 1, accuracy: 1e-4)
    }
  }

  func testBadModelInput() throws {
    assertCleanFailure(try run(["embed", "--model", tmp.appendingPathComponent("nope").path], stdin: Data("x\n".utf8)), mentions: "nope")

    let truncated = try modelCopy()
    let st = truncated.appendingPathComponent("model.safetensors")
    try FileManager.default.removeItem(at: st)
    let whole = try Data(contentsOf: URL(fileURLWithPath: minilm + "/model.safetensors"))
    try whole.prefix(whole.count / 2).write(to: st)
    assertCleanFailure(try run(["embed", "--model", truncated.path], stdin: Data("x\n".utf8)), mentions: "model.safetensors")

    let llama = try modelCopy()
    try #"{"model_type": "llama"}"#.write(to: llama.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["embed", "--model", llama.path], stdin: Data("x\n".utf8)), mentions: "config.json")

    let bpe = try modelCopy()
    try #"{"model": {"type": "BPE", "vocab": {}, "merges": []}}"#.write(to: bpe.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["tokenize", "--model", bpe.path], stdin: Data("x\n".utf8)), mentions: "tokenizer.json")

    let noTokenizer = try modelCopy()
    try FileManager.default.removeItem(at: noTokenizer.appendingPathComponent("tokenizer.json"))
    assertCleanFailure(try run(["embed", "--model", noTokenizer.path], stdin: Data("x\n".utf8)), mentions: "tokenizer.json")

    assertCleanFailure(try run(["tokenize", "--model", minilm], stdin: Data([0x61, 0x0A, 0xFF, 0xFE, 0x0A])), mentions: "line 2")
    assertCleanFailure(try run(["embed", "--model", minilm, "--batch-size", "0"]), mentions: "--batch-size")
  }

  func testFinetuneSavePredict() throws {
    var csv = "label,text\n"
    for i in 0..<40 { csv += i % 2 == 0 ? "pos,\"a wonderful, delightful film \(i)\"\n" : "neg,\"a dull and boring mess \(i)\"\n" }
    let data = tmp.appendingPathComponent("tiny.csv")
    try csv.write(to: data, atomically: true, encoding: .utf8)
    let out = tmp.appendingPathComponent("out")
    let r = try run(["finetune", "--model", minilm, "--data", data.path, "--epochs", "3", "--batch-size", "8", "--max-length", "16",
                     "--learning-rate", "1e-4", "--output", out.path])
    XCTAssertEqual(r.status, 0, r.stderr)
    let summary = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
    XCTAssertGreaterThan(summary["test_accuracy"] as! Double, 0.5, "above chance on a trivially separable set")
    let p = try run(["predict", "--model", out.path], stdin: Data("a wonderful, delightful film\na dull and boring mess\n".utf8))
    XCTAssertEqual(p.status, 0, p.stderr)
    let rows = try p.stdout.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    XCTAssertEqual(rows.map { $0["label"] as! String }, ["pos", "neg"])
    for row in rows { XCTAssertEqual((row["probabilities"] as! [String: Double]).values.reduce(0, +), 1, accuracy: 1e-5) }

    let bad = tmp.appendingPathComponent("bad.csv")
    try "label,text\npos,fine\nneg\n".write(to: bad, atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["finetune", "--model", minilm, "--data", bad.path]), mentions: "line 3")
    assertCleanFailure(try run(["predict", "--model", minilm], stdin: Data("x\n".utf8)), mentions: "id2label")
  }
}
