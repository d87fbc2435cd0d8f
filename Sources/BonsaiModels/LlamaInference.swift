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
  /// Per layer [B, K, capacity, D]: each key/value head's positions in a row, so that attending streams them.
  var keys: [[Float]], values: [[Float]]
  /// Filled positions (the same for every row), and which of them are real tokens, per row.
  public internal(set) var length = 0
  var real: [[Bool]]
  /// The position (rotary index) of each row's next token.
  var nextPosition: [Int]

  init(layers: Int, batch: Int, capacity: Int, heads: Int, headSize: Int) {
    self.batch = batch; self.capacity = capacity; self.width = heads * headSize; self.heads = heads
    keys = Array(repeating: [Float](repeating: 0, count: batch * capacity * width), count: layers)
    values = keys
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
          let dst = ((b * K + h) * capacity + at) * D, src = rowOf(b) * width + h * D
          (kb.baseAddress! + dst).update(from: kp + src, count: D)
          (vb.baseAddress! + dst).update(from: vp + src, count: D)
        }
      }
    } }
  }

  /// softmax(q k^T / sqrt(D)) v for one query per row over its first `length` cached positions (padding
  /// skipped); query head h reads key/value head h / (H/K). Returns [B, H*D]. The query heads that share a
  /// key/value head are done together, so that each cached row is read once for all of them (at batch 8
  /// the cache no longer fits the caches: reading it once per query head took a seventh of a step).
  func attend(layer l: Int, queries q: Tensor, heads H: Int, headSize D: Int, length L: Int) -> Tensor {
    let K = width / D, group = H / K, scale = 1 / Float(D).squareRoot()
    let out = Tensor(zeros: [batch, H * D])
    let qp = q.data, op = out.mutableData
    keys[l].withUnsafeBufferPointer { kb in values[l].withUnsafeBufferPointer { vb in
      parallelFor(batch * K) { range in
        var scores = [Float](repeating: 0, count: group * L), top = [Float](repeating: 0, count: group)
        for bk in range {
          let b = bk / K, kvh = bk % K, real = self.real[b]
          let queries = qp + (b * H + kvh * group) * D, outputs = op + (b * H + kvh * group) * D
          let row = { (j: Int) in (b * K + kvh) * self.capacity + j }  // a cached position's row of D
          for g in 0..<group { top[g] = -Float.infinity }
          for j in 0..<L where real[j] {
            let k = kb.baseAddress! + row(j) * D
            for g in 0..<group {
              let s = dot(queries + g * D, k, D) * scale
              scores[g * L + j] = s
              top[g] = max(top[g], s)
            }
          }
          for g in 0..<group {  // softmax of each head's scores; top[g] becomes its total
            var total: Float = 0
            for j in 0..<L where real[j] { scores[g * L + j] = Foundation.exp(scores[g * L + j] - top[g]); total += scores[g * L + j] }
            top[g] = total
          }
          for j in 0..<L where real[j] {
            let v = vb.baseAddress! + row(j) * D
            for g in 0..<group { addScaled(outputs + g * D, scores[g * L + j] / top[g], v, D) }
          }
        }
      }
    } }
    return out
  }
}
