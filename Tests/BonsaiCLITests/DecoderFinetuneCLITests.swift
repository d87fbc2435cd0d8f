// Decoder fine-tuning from the outside: finetune on a tiny random Llama (the model fixtures) prints the test
// metrics; eval scores the result with the same JSON; convert --to gguf writes a file generate reads; bad
// data is one line naming file, line and field.
import Foundation
import XCTest

extension CLITests {
  var tinyLlama: String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("BonsaiModelsTests/Fixtures/tiny-llama").path
  }

  func testDecoderFinetuneEvalAndGGUFExport() throws {
    let data = tmp.appendingPathComponent("pairs.jsonl")
    try (0..<30).map { #"{"prompt": "item \#($0) ->", "completion": " \#($0 % 3 == 0 ? "fizz" : "plain")"}"# }.joined(separator: "\n")
      .write(to: data, atomically: true, encoding: .utf8)
    let runDir = tmp.appendingPathComponent("lm-run")
    let f = try run(["finetune", "--model", tinyLlama, "--data", data.path, "--epochs", "2", "--batch-size", "4", "--max-length", "16",
                     "--learning-rate", "1e-3", "--generation-tokens", "3", "--export-gguf", "q8_0", "--selective-checkpointing", "--whole-layers", "1", "--output", runDir.path])
    XCTAssertEqual(f.status, 0, f.stderr)
    let out = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(f.stdout.utf8)) as? [String: Any], f.stdout)
    for key in ["test_loss", "test_perplexity", "test_rougeL", "test_exact_match"] { XCTAssertNotNil(out[key] as? Double, key) }
    XCTAssertEqual(out["test_examples"] as? Int, 6)

    let e = try run(["eval", "--model", runDir.appendingPathComponent("final").path, "--data", data.path, "--generation-tokens", "3"])
    XCTAssertEqual(e.status, 0, e.stderr)
    let ev = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any], e.stdout)
    XCTAssertEqual(ev["examples"] as? Int, 30); XCTAssertNotNil(ev["rougeL"] as? Double); XCTAssertNotNil(ev["perplexity"] as? Double)

    // the exported GGUF (q8_0) generates; convert writes one from any decoder Bonsai reads
    let gguf = runDir.appendingPathComponent("final/model.gguf")
    let g = try run(["generate", "--model", gguf.path, "--max-new-tokens", "3"], stdin: Data("item 3 ->\n".utf8))
    XCTAssertEqual(g.status, 0, g.stderr)
    let converted = tmp.appendingPathComponent("tiny.gguf")
    let c = try run(["convert", "--model", tinyLlama, "--to", "gguf", "--dtype", "f16", "--output", converted.path])
    XCTAssertEqual(c.status, 0, c.stderr)
    XCTAssertEqual(try run(["tokenize", "--model", converted.path], stdin: Data("item 3\n".utf8)).stdout,
                   try run(["tokenize", "--model", tinyLlama], stdin: Data("item 3\n".utf8)).stdout)
    assertCleanFailure(try run(["convert", "--model", tinyLlama, "--to", "gguf", "--dtype", "bf16", "--output", converted.path]), mentions: "--dtype must be")

    // a decoder shrinks by block influence on sample text, and the student generates
    let student = tmp.appendingPathComponent("student")
    let sh = try run(["shrink", "--teacher", tinyLlama, "--num-layers", "1", "--select", "similarity", "--data", data.path, "--samples", "8",
                      "--output", student.path])
    XCTAssertEqual(sh.status, 0, sh.stderr)
    let shrunk = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(sh.stdout.utf8)) as? [String: Any], sh.stdout)
    XCTAssertEqual((shrunk["block_influence"] as? [Double])?.count, 2); XCTAssertEqual((shrunk["copied_layers"] as? [Int])?.count, 1)
    XCTAssertEqual(try run(["generate", "--model", student.path, "--max-new-tokens", "2"], stdin: Data("item 3 ->\n".utf8)).status, 0)
    assertCleanFailure(try run(["shrink", "--teacher", tinyLlama, "--num-layers", "1", "--select", "similarity", "--output", student.path]),
                       mentions: "--select similarity needs --num-layers and --data")

    // bad data: one line naming the file, the line and the field; nothing half-written
    let bad = tmp.appendingPathComponent("bad.jsonl")
    try "{\"prompt\": \"a\", \"completion\": \" b\"}\n{\"prompt\": \"c\"}\n".write(to: bad, atomically: true, encoding: .utf8)
    let r = try run(["finetune", "--model", tinyLlama, "--data", bad.path, "--output", tmp.appendingPathComponent("bad-run").path])
    assertCleanFailure(r, mentions: "\(bad.path): line 2: no field 'completion'")
    let chats = tmp.appendingPathComponent("chats.jsonl")
    try #"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#.write(to: chats, atomically: true, encoding: .utf8)
    assertCleanFailure(try run(["finetune", "--model", tinyLlama, "--data", chats.path, "--output", tmp.appendingPathComponent("chat-run").path]),
                       mentions: "has no chat template")
    assertCleanFailure(try run(["finetune", "--model", tinyLlama, "--data", data.path, "--metric", "accuracy", "--output", tmp.appendingPathComponent("m").path]),
                       mentions: "--metric accuracy is not a language-model metric")
    assertCleanFailure(try run(["finetune", "--model", tinyLlama, "--data", data.path, "--gradient-checkpointing", "--selective-checkpointing",
                                "--output", tmp.appendingPathComponent("c").path]), mentions: "exclude each other")
  }
}

extension CLITests {
  /// The named decoder data sets are derived from their corpora on first use: here in a scratch cache
  /// holding two BBC articles and two polarity reviews (a fresh machine once failed here: the JSONL's
  /// temporary file was deleted before being moved into place).
  func testDerivedDataSetsAreWrittenOnFirstUse() throws {
    let home = tmp.appendingPathComponent("home"), bbc = home.appendingPathComponent("data/bbc")
    for (label, file, text) in [("business", "001.txt", "Ad sales boost profits\r\n\r\nQuarterly profits rose.\r\n  Shares too. "),
                                ("tech", "001.txt", "New phone out\n\nIt is thin.\n\nAnd fast.")] {
      try FileManager.default.createDirectory(at: bbc.appendingPathComponent(label), withIntermediateDirectories: true)
      try text.write(to: bbc.appendingPathComponent("\(label)/\(file)"), atomically: true, encoding: .utf8)
    }
    for corpus in ["polarity", "reviews"] {  // (polarity is fetched with reviews: both present, nothing is fetched)
      try "\"1\",\"a fine film\"\n\"-1\",\"a dull film\"\n".write(to: home.appendingPathComponent("data/\(corpus).csv"), atomically: true, encoding: .utf8)
    }
    let r = try run(["fetch", "bbc-headlines", "polarity-instruct"], environment: ["BONSAI_HOME": home.path])
    XCTAssertEqual(r.status, 0, r.stderr)
    let read = { (name: String) throws -> [[String: String]] in
      try String(contentsOf: home.appendingPathComponent("data/\(name).jsonl"), encoding: .utf8).split(separator: "\n")
        .map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String]) }
    }
    XCTAssertEqual(try read("bbc-headlines"), [
      ["prompt": "Write a headline for this news article.\n\nQuarterly profits rose.\nShares too.\n\nHeadline:", "completion": " Ad sales boost profits"],
      ["prompt": "Write a headline for this news article.\n\nIt is thin.\nAnd fast.\n\nHeadline:", "completion": " New phone out"]])
    XCTAssertEqual(try read("polarity-instruct").map { $0["completion"] }, [" positive", " negative"])
    let left = try FileManager.default.contentsOfDirectory(atPath: home.appendingPathComponent("data").path).filter { $0.hasPrefix(".") }
    XCTAssertEqual(left, [], "temporary files left behind")
  }
}
