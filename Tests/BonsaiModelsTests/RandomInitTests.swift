// `bonsai init`'s students: a BERT of the asked shape with transformers' initialisation statistics and the
// tokenizer of the model it is like; reproducible by seed; a bad shape is one clear error.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation
import XCTest

final class RandomInitTests: XCTestCase {
  func testARandomFourLayerBERTLikeMiniLMHasTransformersInitialisation() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rinit-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let like = try modelFolder("minilm")
    let config = try RandomInit.makeBERT(like: like, shape: RandomInit.Shape(layers: 4), seed: 3, output: dir.appendingPathComponent("a"))
    XCTAssertEqual([config.numHiddenLayers, config.hiddenSize, config.numAttentionHeads, config.intermediateSize], [4, 384, 12, 1536])
    let file = try SafeTensorsFile(folder: dir.appendingPathComponent("a"))
    XCTAssertEqual(try Shrink.layerCount(file), 4)
    for (key, _) in file.tensors {
      let v = try file.tensor(key).scalars
      if key.hasSuffix(".bias") { XCTAssertTrue(v.allSatisfy { $0 == 0 }, key) }
      else if key.contains("LayerNorm") { XCTAssertTrue(v.allSatisfy { $0 == 1 }, key) }
      else if v.count > 10_000 {
        let mean = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
        let std = (v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(v.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 1e-3, key); XCTAssertEqual(std, 0.02, accuracy: 0.0006, "\(key): N(0, initializer_range)")
      }
    }
    let words = try file.tensor("embeddings.word_embeddings.weight").scalars
    XCTAssertTrue(words[0..<384].allSatisfy { $0 == 0 }, "the padding token's row (id 0) is zero, as nn.Embedding(padding_idx=0)")
    // MiniLM's tokenizer, a loadable model, reproducible by seed
    let (model, tokenizer, _) = try ModelFolder.loadClassifier(dir.appendingPathComponent("a"), numLabels: 3)
    let original = try WordPieceTokenizer(contentsOf: like.appendingPathComponent("tokenizer.json"))
    XCTAssertEqual(tokenizer.encode("Distillation instead of pre-training", maxLength: 32).ids, original.encode("Distillation instead of pre-training", maxLength: 32).ids)
    let logits = model(TokenBatch([tokenizer.encode("a test", maxLength: 16)], tokenizer: tokenizer), rng: nil)
    XCTAssertEqual(logits.shape, [1, 3]); XCTAssertTrue(logits.scalars.allSatisfy(\.isFinite))
    try RandomInit.makeBERT(like: like, shape: RandomInit.Shape(layers: 4), seed: 3, output: dir.appendingPathComponent("b"))
    try RandomInit.makeBERT(like: like, shape: RandomInit.Shape(layers: 4), seed: 4, output: dir.appendingPathComponent("c"))
    let bytes = { (n: String) in try Data(contentsOf: dir.appendingPathComponent("\(n)/model.safetensors")) }
    XCTAssertEqual(try bytes("a"), try bytes("b")); XCTAssertNotEqual(try bytes("a"), try bytes("c"))
    // another width: the feed-forward follows at 4x; a width the heads do not divide is refused
    let wide = try RandomInit.makeBERT(like: like, shape: RandomInit.Shape(layers: 2, hidden: 256, heads: 8), seed: 0, output: dir.appendingPathComponent("d"))
    XCTAssertEqual(wide.intermediateSize, 1024)
    XCTAssertThrowsError(try RandomInit.makeBERT(like: like, shape: RandomInit.Shape(hidden: 100, heads: 12), seed: 0, output: dir.appendingPathComponent("e"))) {
      XCTAssertEqual(($0 as? LocalizedError)?.errorDescription, "--hidden 100 must be a positive multiple of --heads 12")
    }
  }
}
