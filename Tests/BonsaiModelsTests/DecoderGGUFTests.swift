// Writing decoders as GGUF (issue 16's export): Bonsai reads its own files back to the same model (F32
// exactly; F16, Q8_0 and Q4_0 to exactly the weights the quantisers give), for llama (permuted q/k rows,
// grouped-query attention, untied head, Llama-3 rope scaling) and qwen2 (q/k/v biases, tied head), with
// the tokenizer and chat template intact. llama.cpp's side is scripts/check-gguf-export.sh (by hand).
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation
import XCTest

final class DecoderGGUFTests: XCTestCase {
  func testGGUFExportReadsBackToTheSameModel() throws {
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-gguf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: tmp) }
    for name in ["llama", "qwen2"] {
      let folder = try XCTUnwrap(Bundle.module.url(forResource: "tiny-\(name)", withExtension: nil, subdirectory: "Fixtures"))
      let (model, tokenizer) = try DecoderCheckpoint.load(folder)
      let x = TokenBatch(batch: 1, tokens: 6, ids: [5, 70, 120, 33, 2, 9])
      let before = withoutGrad { model(x) }.scalars
      let weights = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.key, $0.tensor) })
      for dtype in ["f32", "f16", "q8_0", "q4_0"] {
        let path = tmp.appendingPathComponent("\(name)-\(dtype).gguf").path
        try DecoderCheckpoint.saveGGUF(model, tokenizer: tokenizer, to: path, dtype: dtype)
        let (again, tok2) = try DecoderCheckpoint.load(URL(fileURLWithPath: path))
        XCTAssertEqual(again.config.numKeyValueHeads, model.config.numKeyValueHeads)
        XCTAssertEqual(again.config.tieWordEmbeddings, model.config.tieWordEmbeddings)
        XCTAssertEqual(again.config.ropeLlama3, model.config.ropeLlama3, "\(name) \(dtype)")
        XCTAssertEqual(again.config.qkvBias, model.config.qkvBias)
        for text in ["naïve café — Zürich 12345", "<|im_start|>user\nhi<|im_end|>"] { XCTAssertEqual(tok2.encode(text), tokenizer.encode(text)) }
        XCTAssertEqual(tok2.chatTemplate, tokenizer.chatTemplate)
        let format = DecoderCheckpoint.ggufFormats[dtype]!
        var quantized = 0
        for (key, t) in again.namedParameters() {
          let w = try XCTUnwrap(weights[key])
          // matrices come back as the quantiser made them (F32 when a row is no whole number of blocks); vectors stay F32
          let blocks = w.rank == 2 && format != .f32 && w.shape[1] % format.blockSize == 0
          if blocks { quantized += 1 }
          let expected = blocks ? PackedMatrix(quantizing: w, to: format).dequantized().scalars : w.scalars
          XCTAssertEqual(t.scalars, expected, "\(name) \(dtype) \(key)")
        }
        if format != .f32 { XCTAssertGreaterThan(quantized, 0, "\(name) \(dtype): some matrices are in blocks") }
        let after = withoutGrad { again(x) }.scalars
        let worst = zip(before, after).map { abs($0 - $1) }.max()!
        if dtype == "f32" { XCTAssertEqual(worst, 0, name) }
        print("gguf \(name) \(dtype): largest logit change \(worst)")
      }
    }
  }

  /// An override (a merged LoRA weight) replaces the model's own in the file, q rows still permuted for
  /// llama; a model kept in blocks writes its dequantised matrices.
  func testGGUFExportWritesOverridesAndDequantisedBlocks() throws {
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-gguf-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: tmp) }
    let folder = try XCTUnwrap(Bundle.module.url(forResource: "tiny-llama", withExtension: nil, subdirectory: "Fixtures"))
    let (model, tokenizer) = try DecoderCheckpoint.load(folder)
    let key = "model.layers.0.self_attn.q_proj.weight"
    let own = try XCTUnwrap(model.parameterDictionary()[key])
    let replaced = Tensor(own.scalars.indices.map { Float($0 % 7) * 0.01 }, shape: own.shape)
    var made = 0
    let path = tmp.appendingPathComponent("merged.gguf").path
    try DecoderCheckpoint.saveGGUF(model, tokenizer: tokenizer, to: path, dtype: "f32", overrides: [key: { made += 1; return replaced }])
    XCTAssertEqual(made, 1, "the override is made once, when its tensor is written")
    let (again, _) = try DecoderCheckpoint.load(URL(fileURLWithPath: path))
    XCTAssertEqual(again.parameterDictionary()[key]?.scalars, replaced.scalars)
    XCTAssertNotEqual(again.parameterDictionary()[key]?.scalars, own.scalars)

    let q8 = tmp.appendingPathComponent("q8.gguf").path
    try DecoderCheckpoint.saveGGUF(model, tokenizer: tokenizer, to: q8, dtype: "q8_0")
    let (blocks, _) = try DecoderCheckpoint.load(URL(fileURLWithPath: q8), keepingBlocks: true)
    XCTAssertFalse(blocks.namedPackedWeights().isEmpty)
    let fromBlocks = tmp.appendingPathComponent("from-blocks.gguf").path
    try DecoderCheckpoint.saveGGUF(blocks, tokenizer: tokenizer, to: fromBlocks, dtype: "f32")
    let (plain, _) = try DecoderCheckpoint.load(URL(fileURLWithPath: fromBlocks))
    let expected = Dictionary(uniqueKeysWithValues: blocks.materializedParameters().map { ($0.key, $0.tensor.scalars) })
    for (k, t) in plain.namedParameters() { XCTAssertEqual(t.scalars, expected[k], k) }
  }

  func testUnknownExportTypeIsRefused() throws {
    let folder = try XCTUnwrap(Bundle.module.url(forResource: "tiny-qwen2", withExtension: nil, subdirectory: "Fixtures"))
    let (model, tokenizer) = try DecoderCheckpoint.load(folder)
    XCTAssertThrowsError(try DecoderCheckpoint.saveGGUF(model, tokenizer: tokenizer, to: "/tmp/x.gguf", dtype: "q5_k")) {
      XCTAssertEqual($0.localizedDescription, "/tmp/x.gguf: unsupported dtype 'q5_k (f32, f16, q8_0, q4_0)'")
    }
  }
}
