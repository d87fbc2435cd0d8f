// Decoding with the key/value cache against the full forward, on random decoders whose head shapes take
// every path of the cache's attention: query heads in threes and alone, head sizes of 64 and others.
import BonsaiEngine
import BonsaiModels
import XCTest

final class KVCacheTests: XCTestCase {
  func testCachedStepsEqualTheFullForwardForEveryHeadShape() {
    // (query heads, key/value heads, head size): groups of 3, 2, 7 (3 + 3 + 1) and 1; sizes 64, 80 (64 + 16), 16
    for (H, K, D) in [(6, 2, 64), (4, 2, 64), (7, 1, 80), (4, 4, 16), (6, 3, 8)] {
      let name = "\(H) heads, \(K) key/value heads, size \(D)"
      let config = LlamaConfig(hiddenSize: 96, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: H, numKeyValueHeads: K,
                               headDim: D, rmsNormEps: 1e-5, vocabSize: 40, maxPositionEmbeddings: 64, tieWordEmbeddings: true)
      let model = LlamaForCausalLM(config: config, seed: 7)
      for layer in model.model.layers {  // larger queries and keys: peaked attention, so that a wrong position shows
        for w in [layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight] {
          for i in 0..<w.count { w.mutableData[i] *= 12 }
        }
      }
      let prompts = [[3, 17, 5, 29, 11, 2, 8], [21, 4, 9]], fed = [[13, 6, 38, 1, 27], [30, 12, 19, 7, 22]]
      let (cache, first) = model.prefill(ids: prompts, extra: fed[0].count)
      var steps = [first]
      for s in 0..<fed[0].count { steps.append(model.step(fed.map { $0[s] }, cache: cache)) }
      for (b, prompt) in prompts.enumerated() {
        for s in 0...fed[b].count {  // step s's logits: the full forward's at the last of prompt + fed[..<s]
          let ids = prompt + fed[b][..<s]
          let full = withoutGrad { model.forward(TokenBatch(batch: 1, tokens: ids.count, ids: Array(ids))).logits }.scalars
          let V = config.vocabSize, last = Array(full[(ids.count - 1) * V..<ids.count * V])
          let cached = Array(steps[s].scalars[b * V..<(b + 1) * V])
          let scale = last.map(abs).max()!, worst = zip(last, cached).map { abs($0 - $1) }.max()!
          XCTAssertGreaterThan(scale, 0.01, name)
          XCTAssertLessThan(worst, 1e-5 * scale + 1e-6, "\(name): row \(b), step \(s)")
        }
      }
    }
  }
}
