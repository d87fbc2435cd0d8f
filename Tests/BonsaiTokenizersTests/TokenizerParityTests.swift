// Token ids equal to Hugging Face `tokenizers` on every text of the sentence-polarity, movie-review,
// BBC and tweets sets (golden chunk hashes from scripts/make-golden.py), on thousands of generated
// messy strings covering every Unicode general category (scripts/unicode_strings.py), plus explicit
// cases and bad input.
import BonsaiTokenizers
import BonsaiData
import Foundation
import XCTest

let assetHome = Assets.home

func requireAsset(_ relative: String) throws -> URL {
  let url = assetHome.appendingPathComponent(relative)
  guard FileManager.default.fileExists(atPath: url.path) else {
    XCTFail("missing \(url.path): run `bonsai fetch` (or scripts/test.sh) first")
    throw CocoaError(.fileNoSuchFile)
  }
  return url
}

/// FNV-1a 64, as scripts/make-golden.py computes it.
func fnv1a64(_ bytes: some Sequence<UInt8>) -> String {
  var h: UInt64 = 0xcbf29ce484222325
  for b in bytes { h ^= UInt64(b); h = h &* 0x100000001b3 }
  return String(format: "%016llx", h)
}

/// The texts of a data set in file order, read by BonsaiData (as scripts/make-golden.py reads them with Python's csv module).
func texts(_ relative: String) throws -> [String] {
  try Dataset.load(path: requireAsset(relative).path).examples.map(\.text)
}

/// The `text` column of the tweets file, in file order.
func tweetTexts() throws -> [String] {
  try readTable(path: requireAsset("data/tweets.csv").path).rows.map { $0["text"] ?? "" }
}

struct UnicodeGolden: Decodable {
  let tokenizers_version: String
  let unicode_version: String
  let texts: [String]
  let ids: [String: [[Int]]]
}

struct TokenizerGolden: Decodable {
  struct Set: Decodable { let count: Int; let tokens: Int; let chunks: [String] }
  struct Case: Decodable { let model: String; let text: String; let pair: String?; let max_length: Int?; let ids: [Int]; let type_ids: [Int] }
  let chunk: Int
  let sets: [String: Set]
  let cases: [Case]
}

final class TokenizerParityTests: XCTestCase {
  var golden: TokenizerGolden!

  override func setUpWithError() throws {
    let url = Bundle.module.url(forResource: "tokenizer-golden", withExtension: "json", subdirectory: "Fixtures")!
    golden = try JSONDecoder().decode(TokenizerGolden.self, from: Data(contentsOf: url))
  }

  func checkSet(model: String, name: String, texts: [String]) throws {
    let tok = try WordPieceTokenizer(contentsOf: requireAsset("models/\(model)"))
    let want = try XCTUnwrap(golden.sets["\(model)/\(name)"])
    XCTAssertEqual(texts.count, want.count, "\(name): number of texts")
    var tokens = 0
    for (c, start) in stride(from: 0, to: texts.count, by: golden.chunk).enumerated() {
      var bytes: [UInt8] = []
      for t in texts[start..<min(start + golden.chunk, texts.count)] {
        let ids = tok.encode(t, maxLength: Int.max).ids
        tokens += ids.count
        bytes += Array((ids.map(String.init).joined(separator: ",") + "\n").utf8)
      }
      XCTAssertEqual(fnv1a64(bytes), want.chunks[c], "\(model)/\(name): texts \(start)..<\(start + golden.chunk) differ from tokenizers")
    }
    XCTAssertEqual(tokens, want.tokens, "\(model)/\(name): total token count")
  }

  func testMiniLMOnAllDataSets() throws {
    try checkSet(model: "minilm", name: "polarity", texts: texts("data/polarity.csv"))
    try checkSet(model: "minilm", name: "reviews", texts: texts("data/reviews.csv"))
    try checkSet(model: "minilm", name: "bbc", texts: texts("data/bbc"))
    try checkSet(model: "minilm", name: "tweets", texts: tweetTexts())
  }

  func testMPNetOnAllDataSets() throws {
    try checkSet(model: "mpnet", name: "polarity", texts: texts("data/polarity.csv"))
    try checkSet(model: "mpnet", name: "reviews", texts: texts("data/reviews.csv"))
    try checkSet(model: "mpnet", name: "bbc", texts: texts("data/bbc"))
    try checkSet(model: "mpnet", name: "tweets", texts: tweetTexts())
  }

  /// Differential test: every generated string (controls, format characters, unassigned and private-use
  /// code points, U+FFFD, combining marks in NFC/NFD, CJK and other scripts, emoji sequences, every
  /// whitespace, long words, literal special tokens) gets exactly the ids `tokenizers` gives it.
  func testGeneratedUnicodeStringsGiveTheIdsOfTokenizers() throws {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "unicode-golden", withExtension: "json", subdirectory: "Fixtures"))
    let golden = try JSONDecoder().decode(UnicodeGolden.self, from: Data(contentsOf: url))
    XCTAssertGreaterThanOrEqual(golden.texts.count, 3000)
    for model in ["minilm", "mpnet"] {
      let tok = try WordPieceTokenizer(contentsOf: requireAsset("models/\(model)"))
      let want = try XCTUnwrap(golden.ids[model])
      XCTAssertEqual(want.count, golden.texts.count)
      var failures = 0
      for (text, ids) in zip(golden.texts, want) {
        let got = tok.encode(text, maxLength: Int.max).ids
        if got != ids {
          failures += 1
          if failures <= 5 {
            let scalars = text.unicodeScalars.map { String($0.value, radix: 16, uppercase: true) }.joined(separator: " ")
            XCTFail("\(model): [\(scalars)] gives \(got), tokenizers \(golden.tokenizers_version) gives \(ids)")
          }
        }
      }
      XCTAssertEqual(failures, 0, "\(model): \(failures) of \(golden.texts.count) generated strings differ from tokenizers")
    }
  }

  func testExplicitCasesPairsAndTruncation() throws {
    for c in golden.cases {
      let tok = try WordPieceTokenizer(contentsOf: requireAsset("models/\(c.model)"))
      let e = tok.encode(c.text, pair: c.pair, maxLength: c.max_length ?? Int.max)
      XCTAssertEqual(e.ids, c.ids, "\(c.model): \(c.text) | \(c.pair ?? "-") | max \(c.max_length ?? 0)")
      XCTAssertEqual(e.typeIds, c.type_ids, "\(c.model): type ids of \(c.text)")
    }
  }

  func testPaddingAndDefaultTruncation() throws {
    let tok = try WordPieceTokenizer(contentsOf: requireAsset("models/minilm"))
    let long = String(repeating: "word ", count: 600)
    XCTAssertEqual(tok.encode(long).ids.count, 512, "default truncation to model_max_length")
    let padded = tok.pad([tok.encode("a b c"), tok.encode("a")])
    XCTAssertEqual(padded[1].ids, [101, 1037, 102, 0, 0])
    XCTAssertEqual(padded[1].attentionMask, [1, 1, 1, 0, 0])
  }

  func testBadInputNamesTheFile() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-tok-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let bpe = dir.appendingPathComponent("bpe.json")
    try #"{"model": {"type": "BPE", "vocab": {}}}"#.write(to: bpe, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try WordPieceTokenizer(contentsOf: bpe)) { e in
      XCTAssertEqual(e as? TokenizerError, .unsupported(path: bpe.path, key: "model.type", value: "BPE"))
      XCTAssertTrue(e.localizedDescription.contains("bpe.json"))
    }
    let broken = dir.appendingPathComponent("broken.json")
    try "{not json".write(to: broken, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try WordPieceTokenizer(contentsOf: broken)) { e in XCTAssertTrue(e.localizedDescription.contains("broken.json")) }
    XCTAssertThrowsError(try WordPieceTokenizer(contentsOf: dir.appendingPathComponent("none.json")))
  }
}
