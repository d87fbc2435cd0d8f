// The decoder commands from the outside: generate (plain, chat, sampling with a seed), score and
// tokenize on SmolLM2 by name, and their bad input.
import BonsaiData
import Foundation
import XCTest

extension CLITests {
  func testGenerateChatScoreAndTokenizeWithADecoder() throws {
    let g = try run(["generate", "--model", "smollm2", "--max-new-tokens", "10"], stdin: Data("The capital of France is\n".utf8))
    XCTAssertEqual(g.status, 0, g.stderr)
    let out = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(g.stdout.utf8)) as? [String: Any])
    XCTAssertEqual(out["tokens"] as? [Int], [7042, 30, 198, 198, 504, 2988, 314, 42, 216, 34], "transformers' greedy continuation")
    XCTAssertEqual(out["text"] as? String, " Paris.\n\nThe answer is: 2")
    XCTAssertEqual(out["finish_reason"] as? String, "length")

    let c = try run(["generate", "--model", "smollm2", "--chat", "--max-new-tokens", "20"], stdin: Data("What is the capital of France?\n".utf8))
    let chat = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(c.stdout.utf8)) as? [String: Any], c.stderr)
    XCTAssertEqual(chat["tokens"] as? [Int], [504, 3575, 282, 4649, 314, 7042, 30, 2], "stops at <|im_end|>")
    XCTAssertEqual(chat["finish_reason"] as? String, "stop")

    let stop = try run(["generate", "--model", "smollm2", "--max-new-tokens", "10", "--stop", "answer"], stdin: Data("The capital of France is\n".utf8))
    let s = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stop.stdout.utf8)) as? [String: Any], stop.stderr)
    XCTAssertEqual(s["text"] as? String, " Paris.\n\nThe ", "cut before the stop string")
    XCTAssertEqual(s["finish_reason"] as? String, "stop")

    let args = ["generate", "--model", "smollm2", "--max-new-tokens", "12", "--temperature", "0.9", "--top-p", "0.9", "--seed", "7"]
    let a = try run(args, stdin: Data("Once upon a time\nThe sea\n".utf8)), b = try run(args, stdin: Data("Once upon a time\nThe sea\n".utf8))
    XCTAssertEqual(a.status, 0, a.stderr)
    XCTAssertEqual(a.stdout, b.stdout, "a seed makes sampling reproducible")
    XCTAssertEqual(a.stdout.split(separator: "\n").count, 2, "one line per prompt")

    let sc = try run(["score", "--model", "smollm2"], stdin: Data("The capital of France is Paris.\nx\n".utf8))
    let lines = sc.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    XCTAssertEqual(lines.count, 2, sc.stderr)
    XCTAssertEqual(lines[0]["tokens"] as? Int, 7)
    XCTAssertEqual(try XCTUnwrap(lines[0]["nll"] as? Double) / 6, 2.5674, accuracy: 1e-3, "transformers' mean loss on it")
    XCTAssertEqual(lines[1]["tokens"] as? Int, 1)
    XCTAssertTrue(lines[1]["perplexity"] is NSNull, "one token: nothing predicted")

    let t = try run(["tokenize", "--model", "smollm2"], stdin: Data("<|im_start|>user\nHi there!<|im_end|>\n".utf8))
    XCTAssertEqual(t.stdout, "[1,4093]\n[26843,665,17,2]\n", "special tokens matched whole, none added")
  }

  func testDecoderBadInput() throws {
    assertCleanFailure(try run(["generate", "--model", "smollm2", "--max-new-tokens", "2"], stdin: Data("hello\n\nworld\n".utf8)), mentions: "stdin line 2: empty input")
    assertCleanFailure(try run(["generate", "--model", "smollm2", "--max-new-tokens", "0"], stdin: Data("hi\n".utf8)), mentions: "--max-new-tokens")
    let gguf = assetHome.appendingPathComponent("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    let cut = tmp.appendingPathComponent("cut.gguf")
    try Data(contentsOf: gguf).prefix(5_000_000).write(to: cut)
    assertCleanFailure(try run(["generate", "--model", cut.path], stdin: Data("hi\n".utf8)), mentions: "truncated?")
    assertCleanFailure(try run(["score", "--model", minilm], stdin: Data("hi\n".utf8)), mentions: "not a decoder")
    var bytes = try Data(contentsOf: gguf).prefix(4096)
    bytes[0] = UInt8(ascii: "X")
    let bad = tmp.appendingPathComponent("bad.gguf")
    try bytes.write(to: bad)
    assertCleanFailure(try run(["tokenize", "--model", bad.path], stdin: Data("hi\n".utf8)), mentions: "magic 'GGUF'")
  }
}
