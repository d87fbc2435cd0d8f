// Small random checkpoints that transformers wrote (scripts/make-golden-decoder.py --tiny), read from their
// Hugging Face folders: Qwen2 (q/k/v biases, tied head) and Llama (grouped-query attention, untied head,
// Llama-3 rope scaling), each with a byte-level BPE tokenizer.json; ids and logits against transformers.
import BonsaiCheckpoint
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

  func testShardedSafetensorsFolderLoadsAsOne() throws {
    let fixture = try XCTUnwrap(Bundle.module.url(forResource: "tiny-llama", withExtension: nil, subdirectory: "Fixtures"))
    let fm = FileManager.default
    let tmp = fm.temporaryDirectory.appendingPathComponent("bonsai-shards-\(getpid())")
    defer { try? fm.removeItem(at: tmp) }
    try? fm.removeItem(at: tmp)
    try fm.copyItem(at: fixture, to: tmp)
    let (model, _) = try DecoderCheckpoint.load(fixture)
    // two shards and an index, as transformers' save_pretrained writes them over its shard size
    let whole = try SafeTensorsFile(path: tmp.appendingPathComponent("model.safetensors").path)
    let keys = whole.keys, names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    var map: [String: String] = [:]
    for (i, part) in [keys[..<(keys.count / 2)], keys[(keys.count / 2)...]].enumerated() {
      try writeSafeTensors(part.map { ($0, try whole.tensor($0)) }, to: tmp.appendingPathComponent(names[i]).path)
      for k in part { map[k] = names[i] }
    }
    try fm.removeItem(at: tmp.appendingPathComponent("model.safetensors"))
    func writeIndex(_ map: [String: String]) throws {
      try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": map])
        .write(to: tmp.appendingPathComponent("model.safetensors.index.json"))
    }
    try writeIndex(map)
    let (sharded, _) = try DecoderCheckpoint.load(tmp)
    let x = TokenBatch(batch: 1, tokens: 6, ids: [5, 70, 120, 33, 2, 9])
    XCTAssertEqual(withoutGrad { sharded(x) }.scalars, withoutGrad { model(x) }.scalars)
    // an index that disagrees with the shards is refused, naming the file
    var wrong = map
    wrong[keys[0]] = names[1]
    try writeIndex(wrong)
    XCTAssertThrowsError(try DecoderCheckpoint.load(tmp)) { error in
      XCTAssertTrue("\(error.localizedDescription)".contains("model.safetensors.index.json"), "\(error.localizedDescription)")
      XCTAssertTrue("\(error.localizedDescription)".contains(keys[0]), "\(error.localizedDescription)")
    }
    try writeIndex(map.merging(["model.extra.weight": "model-00003-of-00003.safetensors"]) { a, _ in a })
    XCTAssertThrowsError(try DecoderCheckpoint.load(tmp)) { error in
      XCTAssertTrue("\(error.localizedDescription)".contains("model-00003-of-00003.safetensors"), "\(error.localizedDescription)")
    }
  }

  func testLlama3RopeScalingFromAGGUFsDivisors() throws {
    // tiny-llama written as llama.cpp's converter writes Llama 3 (rope_freqs.weight, permuted q/k rows)
    let url = try XCTUnwrap(Bundle.module.url(forResource: "tiny-decoders-golden", withExtension: "json", subdirectory: "Fixtures"))
    let g = try XCTUnwrap(JSONDecoder().decode([String: Golden].self, from: Data(contentsOf: url))["llama"])
    let path = try XCTUnwrap(Bundle.module.url(forResource: "tiny-llama3", withExtension: "gguf", subdirectory: "Fixtures")).path
    let folder = try XCTUnwrap(Bundle.module.url(forResource: "tiny-llama", withExtension: nil, subdirectory: "Fixtures"))
    let model = try LlamaForCausalLM.load(gguf: GGUFFile(path: path))
    XCTAssertEqual(model.config.ropeLlama3, try DecoderCheckpoint.load(folder).0.config.ropeLlama3)
    let B = g.ids.count, T = g.ids[0].count, V = model.config.vocabSize
    let z = withoutGrad { model(TokenBatch(batch: B, tokens: T, ids: g.ids.flatMap { $0 }, attentionMask: g.mask.flatMap { $0 })) }.scalars
    var worst = 0.0
    for b in 0..<B { for t in 0..<T where g.mask[b][t] != 0 { for v in 0..<V { worst = max(worst, abs(Double(z[(b * T + t) * V + v]) - g.logits[b][t][v])) } } }
    XCTAssertLessThan(worst, 1e-5, "GGUF with rope_freqs vs transformers on the folder")
    // divisors that are not Llama-3 scaling are refused, naming the tensor
    XCTAssertNil(try LlamaConfig.llama3Scaling(divisors: [1, 1, 1, 1], headDim: 8, theta: 10000, original: 8192, path: path))
    XCTAssertEqual(try LlamaConfig.llama3Scaling(divisors: [1, 1, 1, 32], headDim: 8, theta: 10000, original: 4096, path: path)?.factor, 32)
    XCTAssertThrowsError(try LlamaConfig.llama3Scaling(divisors: [1, 2, 1, 3], headDim: 8, theta: 10000, original: 8192, path: path)) { error in
      XCTAssertTrue(error.localizedDescription.contains("rope_freqs.weight"), error.localizedDescription)
    }
  }
}
