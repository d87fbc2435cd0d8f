// Small random checkpoints that transformers wrote (scripts/make-golden-decoder.py --tiny), read from their
// Hugging Face folders: Qwen2 (q/k/v biases, tied head) and Llama (grouped-query attention, untied head,
// Llama-3 rope scaling), each with a byte-level BPE tokenizer.json; ids and logits against transformers.
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation
import XCTest

final class TinyDecoderTests: XCTestCase {
  struct Golden: Decodable { let ids: [[Int]]; let mask: [[Int]]; let logits: [[[Double]]]; let texts: [String]; let text_ids: [[Int]] }

  func testQwen2AndLlamaFoldersMatchTransformers() throws {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "tiny-decoders-golden", withExtension: "json", subdirectory: "Fixtures"))
    let goldens = try JSONDecoder().decode([String: Golden].self, from: Data(contentsOf: url))
    for name in ["llama", "qwen2"] {
      let folder = try XCTUnwrap(Bundle.module.url(forResource: "tiny-\(name)", withExtension: nil, subdirectory: "Fixtures"))
      let g = try XCTUnwrap(goldens[name])
      XCTAssertTrue(DecoderCheckpoint.isDecoder(folder))
      let (model, tokenizer) = try DecoderCheckpoint.load(folder)
      XCTAssertEqual(model.config.modelType, name)
      XCTAssertEqual(model.config.qkvBias, name == "qwen2")
      XCTAssertEqual(model.config.tieWordEmbeddings, name == "qwen2")
      XCTAssertEqual(model.config.ropeLlama3 != nil, name == "llama")
      for (text, ids) in zip(g.texts, g.text_ids) { XCTAssertEqual(tokenizer.encode(text), ids, "\(name): \(text)") }
      let B = g.ids.count, T = g.ids[0].count
      let x = TokenBatch(batch: B, tokens: T, ids: g.ids.flatMap { $0 }, attentionMask: g.mask.flatMap { $0 })
      let z = withoutGrad { model(x) }.scalars, V = model.config.vocabSize
      var worst = 0.0, scale = 0.0
      for b in 0..<B { for t in 0..<T where g.mask[b][t] != 0 { for v in 0..<V {
        worst = max(worst, abs(Double(z[(b * T + t) * V + v]) - g.logits[b][t][v])); scale = max(scale, abs(g.logits[b][t][v]))
      } } }
      print("tiny \(name): largest logit error \(worst) (logits up to \(scale))")
      XCTAssertLessThan(worst, 1e-5, name)
    }
  }

  func testSavedFolderReadsBackTheSame() throws {
    let folder = try XCTUnwrap(Bundle.module.url(forResource: "tiny-qwen2", withExtension: nil, subdirectory: "Fixtures"))
    let (model, tokenizer) = try DecoderCheckpoint.load(folder)
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-convert-\(getpid())")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let x = TokenBatch(batch: 1, tokens: 5, ids: [5, 70, 120, 33, 2])
    let before = withoutGrad { model(x) }.scalars
    for dtype in ["F32", "BF16", "F16"] {
      try DecoderCheckpoint.save(model, tokenizer: tokenizer, to: tmp, dtype: dtype)
      let (again, tok2) = try DecoderCheckpoint.load(tmp)
      var expected = model.config  // the saved config also names the tokenizer's bos and eos
      expected.bosTokenId = tokenizer.bosId; expected.eosTokenIds = tokenizer.eosId.map { [$0] } ?? []
      XCTAssertEqual(again.config, expected)
      XCTAssertEqual(tok2.encode("naïve café — Zürich, 日本語 😀<|im_end|>"), tokenizer.encode("naïve café — Zürich, 日本語 😀<|im_end|>"))
      let after = withoutGrad { again(x) }.scalars
      let worst = zip(before, after).map { abs($0 - $1) }.max()!
      if dtype == "F32" { XCTAssertEqual(worst, 0, "F32 round trip is exact") } else { XCTAssertLessThan(worst, 0.05, dtype) }
    }
  }
}
