// Inference with a key/value cache: the prompt is read in one pass (prefill), then every new token is one
// row per sequence through each layer, attending over the cached keys and values of its sequence.
// Rows of a batch are left-padded prompts; as transformers' generate does, positions count real tokens
// only (cumulative attention mask - 1) and padded keys stay masked. No autodiff here.
import BonsaiEngine
import BonsaiNN
import Foundation

/// Keys (after rotary) and values of every layer for B sequences, up to `capacity` positions each.
public final class LlamaKVCache {
  let batch: Int, capacity: Int, width: Int, heads: Int
  /// Per layer: keys [B, K, keyStride / 16, D, 16] (transposed by blocks of 16 positions: 16 positions of
  /// one dimension are one vector, so that scores need no horizontal sums, and a block's 4 KB are contiguous,
  /// so that the hardware prefetcher follows them, which it did not across D rows of the whole capacity) and
  /// values [B, K, capacity, D]; each head's positions in a row.
  var keys: [[Float]], values: [[Float]]
  /// Positions per key row: the capacity rounded up to 16.
  let keyStride: Int
  /// Filled positions (the same for every row), and which of them are real tokens, per row.
  public internal(set) var length = 0
  var real: [[Bool]]
  /// The position (rotary index) of each row's next token.
  var nextPosition: [Int]

  init(layers: Int, batch: Int, capacity: Int, heads: Int, headSize: Int) {
    self.batch = batch; self.capacity = capacity; self.width = heads * headSize; self.heads = heads
    keyStride = (capacity + 15) / 16 * 16
    keys = Array(repeating: [Float](repeating: 0, count: batch * keyStride * width), count: layers)
    values = Array(repeating: [Float](repeating: 0, count: batch * capacity * width), count: layers)
    real = Array(repeating: [], count: batch)
    nextPosition = Array(repeating: 0, count: batch)
  }
}

extension LlamaForCausalLM {
  /// Reads left-padded prompts (`mask` 0 on padding) into a new cache with room for `extra` more tokens;
  /// returns the last position's logits [B, V].
  public func prefill(ids: [[Int]], extra: Int) -> (LlamaKVCache, Tensor) {
    let B = ids.count, T = ids.map(\.count).max() ?? 0, c = config
    precondition(T > 0, "prefill: empty prompts")
    let cache = LlamaKVCache(layers: c.numHiddenLayers, batch: B, capacity: T + extra, heads: c.numKeyValueHeads, headSize: c.headDim)
    var flat: [Int] = [], mask: [Int] = [], positions: [Int] = []
    for (b, row) in ids.enumerated() {
      let pad = T - row.count
      flat += [Int](repeating: c.eosTokenIds.first ?? 0, count: pad) + row
      mask += [Int](repeating: 0, count: pad) + [Int](repeating: 1, count: row.count)
      positions += [Int](repeating: 0, count: pad) + Array(0..<row.count)
      cache.real[b] = [Bool](repeating: false, count: pad) + [Bool](repeating: true, count: row.count)
      cache.nextPosition[b] = row.count
    }
    let x = TokenBatch(batch: B, tokens: T, ids: flat, attentionMask: mask)
    let logits = withoutGrad { () -> Tensor in
      let h = hiddenStates(x, positions: positions) { l, k, v in cache.store(layer: l, keys: k, values: v, tokens: T) }.last!
      return head(h.gatherRows((0..<B).map { $0 * T + T - 1 }))
    }
    cache.length = T
    return (cache, logits)
  }

  /// One token per row appended to the cache; returns logits [B, V].
  public func step(_ tokens: [Int], cache: LlamaKVCache) -> Tensor {
    let B = tokens.count, c = config
    precondition(B == cache.batch && cache.length < cache.capacity, "step: \(B) tokens for a cache of \(cache.batch) rows at \(cache.length)/\(cache.capacity)")
    let positions = cache.nextPosition
    for b in 0..<B { cache.real[b].append(true); cache.nextPosition[b] += 1 }
    return withoutGrad { () -> Tensor in
      let rotary = _frequencies.table(positions)
      var h = model.embed_tokens(tokens)
      for (l, layer) in model.layers.enumerated() {
        let attn = layer.self_attn
        let qkv = Linear.outputs(layer.input_layernorm(h), [attn.q_proj, attn.k_proj, attn.v_proj])
        cache.append(layer: l, keys: qkv[1].rotary(rotary, heads: c.numKeyValueHeads), values: qkv[2])
        let q = qkv[0].rotary(rotary, heads: c.numAttentionHeads)
        h = h + attn.o_proj(cache.attend(layer: l, queries: q, heads: c.numAttentionHeads, headSize: c.headDim, length: cache.length + 1))
        h = h + layer.mlp(layer.post_attention_layernorm(h))
      }
      cache.length += 1
      return head(model.norm(h))
    }
  }
}

extension LlamaKVCache {
  /// The prompt's keys and values [B*T, K*D] into positions 0..<T.
  func store(layer l: Int, keys k: Tensor, values v: Tensor, tokens T: Int) {
    for t in 0..<T { put(layer: l, keys: k.data, values: v.data, rowOf: { $0 * T + t }, at: t) }
  }

  /// One row per sequence at position `length`.
  func append(layer l: Int, keys k: Tensor, values v: Tensor) {
    put(layer: l, keys: k.data, values: v.data, rowOf: { $0 }, at: length)
  }

  /// Row rowOf(b) of k and v ([rows, K*D]) into position `at` of sequence b, for every b.
  private func put(layer l: Int, keys kp: UnsafePointer<Float>, values vp: UnsafePointer<Float>, rowOf: (Int) -> Int, at: Int) {
    let K = heads, D = width / heads
    keys[l].withUnsafeMutableBufferPointer { kb in values[l].withUnsafeMutableBufferPointer { vb in
      for b in 0..<batch {
        for h in 0..<K {
          let src = rowOf(b) * width + h * D, keysT = kb.baseAddress! + (b * K + h) * D * keyStride + at / 16 * D * 16 + at % 16
          for d in 0..<D { keysT[d * 16] = kp[src + d] }
          (vb.baseAddress! + ((b * K + h) * capacity + at) * D).update(from: vp + src, count: D)
        }
      }
    } }
  }
}
