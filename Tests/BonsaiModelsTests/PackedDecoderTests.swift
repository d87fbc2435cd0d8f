// SmolLM2 generating straight from GGUF blocks against the fp32 path on the same weights: the Q4_1 file as
// it is (its Q8_0 embedding included; loaded into tiles of 16 rows, and equal to the rows it came from), and its weights re-quantised to Q8_0, Q4_0, F16, BF16 and F32.
// Prompts (more than 8 tokens) dequantise rows exactly for GEMM, so their logits equal the fp32 path's to
// summation order; decoding rounds activations to 16 bits per block, within a small tolerance; greedy
// continuations of the decoder goldens' prompts must be identical.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import BonsaiTokenizers
import Foundation
import XCTest

final class PackedDecoderTests: XCTestCase {
  func prompts() throws -> [[Int]] {
    let url = try XCTUnwrap(Bundle.module.url(forResource: "smollm2-golden", withExtension: "json", subdirectory: "Fixtures"))
    return try JSONDecoder().decode(DecoderGolden.self, from: Data(contentsOf: url)).generate.map(\.prompt_ids)
  }

  func file() throws -> GGUFFile {
    let path = Assets.modelPath("smollm2").path
    guard FileManager.default.fileExists(atPath: path) else { XCTFail("\(path) is missing: bonsai fetch smollm2"); throw CocoaError(.fileNoSuchFile) }
    return try GGUFFile(path: path)
  }

  /// `packed` against `reference` (fp32, the same weights): prompt logits, decoding logits, greedy tokens.
  func compare(_ packed: LlamaForCausalLM, _ reference: LlamaForCausalLM, _ name: String, tokenizer: ByteLevelBPETokenizer, prompts: [[Int]]) {
    let long = prompts.max { $0.count < $1.count }!
    XCTAssertGreaterThan(long.count, 8, "a prompt long enough for the GEMM path")
    let x = TokenBatch(batch: 1, tokens: long.count, ids: long)
    let prompt = withoutGrad { maxDifference(packed(x), reference(x)) }
    XCTAssertLessThan(prompt, 1e-4, "\(name): prompt logits as the fp32 path's")
    let (cacheP, firstP) = packed.prefill(ids: [long], extra: 4)
    let (cacheR, firstR) = reference.prefill(ids: [long], extra: 4)
    let last = maxDifference(firstP, firstR) / firstR.scalars.map(abs).max()!
    XCTAssertLessThan(last, 5e-4, "\(name): the last position's logits (one row: 16-bit activations)")
    let next = [argmax(firstR)]
    let stepP = packed.step(next, cache: cacheP), stepR = reference.step(next, cache: cacheR)
    let step = maxDifference(stepP, stepR) / stepR.scalars.map(abs).max()!
    XCTAssertLessThan(step, 5e-4, "\(name): decoding logits within the 16-bit activation rounding")
    print(String(format: "packed %@: prompt logits max abs %.2e; decoding logits max abs / largest %.2e, %.2e", name, prompt, last, step))
    var options = GenerationOptions()
    options.maxNewTokens = 64
    let a = Generator(model: packed, tokenizer: tokenizer).generate(prompts, options: options)
    let b = Generator(model: reference, tokenizer: tokenizer).generate(prompts, options: options)
    for (i, (x, y)) in zip(a, b).enumerated() { XCTAssertEqual(x.tokens, y.tokens, "\(name): greedy continuation of prompt \(i)") }
  }

  func maxDifference(_ a: Tensor, _ b: Tensor) -> Float { zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()! }
  func argmax(_ t: Tensor) -> Int { t.scalars.indices.max { t.scalars[$0] < t.scalars[$1] }! }

  func testTheQ4_1FileAsItIs() throws {
    let f = try file(), tok = try ByteLevelBPETokenizer(gguf: f)
    let packed = try LlamaForCausalLM.load(gguf: f, keepingBlocks: true), reference = try LlamaForCausalLM.load(gguf: f)
    XCTAssertEqual(Set(packed.namedPackedWeights().map { "\($0.matrix.format)" }), ["q4_1", "q8_0"])
    XCTAssertEqual(packed.namedPackedWeights().count, 30 * 7 + 1, "every matrix, the tied embedding included")
    XCTAssertTrue(packed.namedPackedWeights().allSatisfy(\.matrix.isTiled), "Q4_1 and Q8_0 matrices kept in tiles of 16 rows")
    let rows = try LlamaForCausalLM.load(gguf: f, keepingBlocks: true, tiling: false)
    XCTAssertFalse(rows.namedPackedWeights().contains(where: \.matrix.isTiled))
    let batch = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]  // three sequences decoded at once: products of 3 rows, the same bits
    let (cacheT, _) = packed.prefill(ids: batch, extra: 1), (cacheRows, _) = rows.prefill(ids: batch, extra: 1)
    XCTAssertEqual(packed.step([10, 11, 12], cache: cacheT).scalars, rows.step([10, 11, 12], cache: cacheRows).scalars)
    XCTAssertEqual(packed.parameterCount, reference.parameterCount)
    let fp32 = Dictionary(uniqueKeysWithValues: reference.namedParameters().map { ($0.key, $0.tensor) })
    for (key, t) in packed.materializedParameters() where key.contains("layers.3.") || key.hasPrefix("model.embed") {
      XCTAssertEqual(t.scalars, fp32[key]?.scalars, "\(key): q/k rows in Hugging Face order, values as gguf dequantises")
    }
    // with every kernel set this build has (avx512, avx2, scalar)
    defer { usePackedKernels(availablePackedKernels[0]) }
    for kernels in availablePackedKernels {
      XCTAssertTrue(usePackedKernels(kernels))
      compare(packed, reference, "Q4_1 file, \(kernels) kernels", tokenizer: tok, prompts: try prompts())
    }
  }

  func testEveryFormatAgainstTheFP32PathOnItsWeights() throws {
    let f = try file(), tok = try ByteLevelBPETokenizer(gguf: f), prompts = try prompts()
    let reference = try LlamaForCausalLM.load(gguf: f)
    for format in [PackedFormat.q8_0, .q4_0, .f16, .bf16, .f32] {
      let packed = try LlamaForCausalLM.load(gguf: f)
      for (_, m) in packed.namedModules() {
        if let l = m as? Linear { l.pack(PackedMatrix(quantizing: l.weight, to: format)) }
        if let e = m as? Embedding { e.pack(PackedMatrix(quantizing: e.weight, to: format)) }
      }
      let weights = Dictionary(uniqueKeysWithValues: packed.materializedParameters().map { ($0.key, $0.tensor) })
      for (key, t) in reference.namedParameters() { t.copyValues(from: weights[key]!) }
      compare(packed, reference, "\(format)", tokenizer: tok, prompts: prompts)
    }
  }
}
