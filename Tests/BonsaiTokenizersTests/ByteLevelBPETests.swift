// SmolLM2's byte-level BPE tokenizer, built from its GGUF, against transformers 5.24 building it from the
// same file (scripts/make-golden-decoder.py --tokenizer): every text of the four data sets, the 3000
// generated Unicode strings, explicit cases, decoding back to the text.
import BonsaiCheckpoint
import BonsaiData
import BonsaiModels
import BonsaiTokenizers
import Foundation
import XCTest

struct DecoderTokenizerGolden: Decodable {
  struct Set: Decodable { let count: Int; let tokens: Int; let chunks: [String] }
  struct Case: Decodable { let text: String; let ids: [Int]; let decoded: String }
  struct Unicode: Decodable { let count: Int; let ids: [[Int]] }
  struct Special: Decodable { let bos: Int?; let eos: Int?; let pad: Int?; let unk: Int? }
  struct Chat: Decodable { let messages: [ChatMessage]; let add_generation_prompt: Bool; let text: String; let ids: [Int] }
  let chunk: Int
  let sets: [String: Set]
  let cases: [Case]
  let unicode: Unicode
  let special: Special
  let chat: [Chat]
  struct Split: Decodable { let pattern: String; let cases: [Case2]; let sets: [String: Set] }
  struct Case2: Decodable { let text: String; let ids: [Int] }
  let splits: [String: Split]
}

final class ByteLevelBPETests: XCTestCase {
  nonisolated(unsafe) static var shared: (ByteLevelBPETokenizer, DecoderTokenizerGolden)?

  func setup() throws -> (ByteLevelBPETokenizer, DecoderTokenizerGolden) {
    if let s = Self.shared { return s }
    let url = try XCTUnwrap(Bundle.module.url(forResource: "smollm2-tokenizer-golden", withExtension: "json", subdirectory: "Fixtures"))
    let golden = try JSONDecoder().decode(DecoderTokenizerGolden.self, from: Data(contentsOf: url))
    let tok = try ByteLevelBPETokenizer(gguf: GGUFFile(path: requireAsset("models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf").path))
    Self.shared = (tok, golden)
    return (tok, golden)
  }

  func testSpecialTokensAndExplicitCases() throws {
    let (tok, golden) = try setup()
    XCTAssertEqual(tok.bosId, golden.special.bos); XCTAssertEqual(tok.eosId, golden.special.eos)
    XCTAssertEqual(tok.padId, golden.special.pad); XCTAssertEqual(tok.unkId, golden.special.unk)
    XCTAssertEqual(tok.vocabularySize, 49152)
    XCTAssertEqual(tok.specialIds, Set(0...16))
    for c in golden.cases {
      XCTAssertEqual(tok.encode(c.text), c.ids, c.text.debugDescription)
      XCTAssertEqual(tok.decode(c.ids), c.decoded, c.text.debugDescription)
      XCTAssertEqual(tok.decode(tok.encode(c.text)), c.text, "round trip: \(c.text.debugDescription)")
    }
    XCTAssertEqual(tok.decode([1, 4093, 2], skipSpecialTokens: true), "user")
  }

  func check(_ name: String, _ texts: [String]) throws {
    let (tok, golden) = try setup()
    assertChunks(tok, texts, try XCTUnwrap(golden.sets[name]), chunk: golden.chunk, "smollm2/\(name)")
  }

  /// The texts' ids, FNV-1a hashed per chunk as the fixture script hashes them, and the total token count.
  func assertChunks(_ tok: ByteLevelBPETokenizer, _ texts: [String], _ want: DecoderTokenizerGolden.Set, chunk: Int, _ label: String) {
    XCTAssertEqual(texts.count, want.count, "\(label): number of texts")
    var tokens = 0
    for (c, start) in stride(from: 0, to: texts.count, by: chunk).enumerated() {
      var bytes: [UInt8] = []
      for t in texts[start..<min(start + chunk, texts.count)] {
        let ids = tok.encode(t)
        tokens += ids.count
        bytes += Array((ids.map(String.init).joined(separator: ",") + "\n").utf8)
      }
      XCTAssertEqual(fnv1a64(bytes), want.chunks[c], "\(label): texts \(start)..<\(start + chunk) differ from the reference")
    }
    XCTAssertEqual(tokens, want.tokens, "\(label): total token count")
  }

  func testAllDataSets() throws {
    try check("polarity", texts("data/polarity.csv"))
    try check("reviews", texts("data/reviews.csv"))
    try check("bbc", texts("data/bbc"))
    try check("tweets", tweetTexts())
  }

  func testGeneratedUnicodeStrings() throws {
    let (tok, golden) = try setup()
    let url = try XCTUnwrap(Bundle.module.url(forResource: "unicode-golden", withExtension: "json", subdirectory: "Fixtures"))
    let texts = try JSONDecoder().decode(UnicodeGolden.self, from: Data(contentsOf: url)).texts
    XCTAssertEqual(texts.count, golden.unicode.count)
    var failures = 0, roundTrips = 0
    for (text, ids) in zip(texts, golden.unicode.ids) {
      let got = tok.encode(text)
      if got != ids {
        failures += 1
        if failures <= 5 {
          let scalars = text.unicodeScalars.map { String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
          XCTFail("[\(scalars)] gives \(got), transformers gives \(ids)")
        }
      }
      if tok.coversBytes(of: text) && tok.decode(got) != text { XCTFail("round trip of [\(text.debugDescription)]"); failures += 1 }
      if tok.coversBytes(of: text) { roundTrips += 1 }
    }
    XCTAssertEqual(failures, 0, "\(failures) of \(texts.count) generated strings differ")
    XCTAssertGreaterThan(roundTrips, 2000, "strings whose every byte has a token decode back to themselves")
  }

  func testChatTemplateRendersAsTransformers() throws {
    let (tok, golden) = try setup()
    let template = try ChatTemplate(try XCTUnwrap(tok.chatTemplate), source: "smollm2")
    XCTAssertEqual(template.defaultSystem, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    for c in golden.chat {
      let text = template.render(c.messages, addGenerationPrompt: c.add_generation_prompt)
      XCTAssertEqual(text, c.text)
      XCTAssertEqual(tok.encode(text, addSpecialTokens: false), c.ids)
    }
    XCTAssertThrowsError(try ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}", source: "x.gguf")) {
      XCTAssertTrue($0.localizedDescription.hasPrefix("x.gguf: chat template not supported"), $0.localizedDescription)
    }
  }

  /// Llama 3's and Qwen2's split regexes, written by hand, against `tokenizers` running them (Oniguruma) on
  /// SmolLM2's vocabulary: explicit cases, every data set, the 3000 generated strings.
  func testLlama3AndQwen2Splits() throws {
    let (base, golden) = try setup()
    let url = try XCTUnwrap(Bundle.module.url(forResource: "unicode-golden", withExtension: "json", subdirectory: "Fixtures"))
    let sets: [(String, [String])] = [("polarity", try texts("data/polarity.csv")), ("reviews", try texts("data/reviews.csv")),
                                      ("bbc", try texts("data/bbc")), ("tweets", try tweetTexts()),
                                      ("unicode", try JSONDecoder().decode(UnicodeGolden.self, from: Data(contentsOf: url)).texts)]
    for (name, split) in [("llama3", ByteLevelPreTokenizer.llama3), ("qwen2", .qwen2)] {
      let g = try XCTUnwrap(golden.splits[name])
      XCTAssertEqual(split.splitPattern, g.pattern, "\(name): the pattern transformers installs")
      let tok = try ByteLevelBPETokenizer(tokens: base.tokens, merges: base.mergeList, special: Array(base.specialIds), preTokenizer: split, source: name)
      for c in g.cases { XCTAssertEqual(tok.encode(c.text), c.ids, "\(name): \(c.text.debugDescription)") }
      // written as tokenizer.json (Split + ByteLevel) and read back
      let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-split-\(name)-\(getpid())")
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      defer { try? FileManager.default.removeItem(at: dir) }
      try tok.tokenizerJSON().write(to: dir.appendingPathComponent("tokenizer.json"))
      XCTAssertEqual(try ByteLevelBPETokenizer(folder: dir).preTokenizer, split)
      for (set, texts) in sets { assertChunks(tok, texts, try XCTUnwrap(g.sets[set]), chunk: golden.chunk, "\(name)/\(set)") }
    }
  }
}
