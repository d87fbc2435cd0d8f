// LLaMA-family decoders, following transformers' models/llama/modeling_llama.py (and Qwen2, which adds
// biases to q, k and v): token embedding; per layer RMSNorm -> grouped-query attention with rotary
// positions and a causal mask -> residual, RMSNorm -> SwiGLU MLP -> residual; final RMSNorm; LM head
// (tied to the embedding or not). Properties spell the checkpoint keys (model.layers.3.self_attn.q_proj.weight).
// Shapes: B batch, T tokens, C hidden, H query heads, K key/value heads, D head size, V vocabulary.
import BonsaiEngine
import BonsaiNN
import BonsaiTokenizers
import Foundation

public final class LlamaAttention: Module {
  public let q_proj: Linear, k_proj: Linear, v_proj: Linear, o_proj: Linear
  let _heads: Int, _kvHeads: Int, _headDim: Int

  init(_ c: LlamaConfig, rng: RandomSource) {
    let qkv = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim
    q_proj = Linear(c.hiddenSize, qkv, bias: c.qkvBias, rng: rng)
    k_proj = Linear(c.hiddenSize, kv, bias: c.qkvBias, rng: rng)
    v_proj = Linear(c.hiddenSize, kv, bias: c.qkvBias, rng: rng)
    o_proj = Linear(qkv, c.hiddenSize, bias: c.outputBias, rng: rng)
    _heads = c.numAttentionHeads; _kvHeads = c.numKeyValueHeads; _headDim = c.headDim
  }

  /// h [B*T, C] -> [B*T, C] under a causal mask, rows rotated by `rotary` [B*T], `keyMask` B*T additive
  /// values; `store` sees the rotated keys and the values [B*T, K*D] (a KV cache's prefill).
  func callAsFunction(_ h: Tensor, batch: Int, tokens: Int, rotary: RotaryTable, keyMask: [Float]?,
                      store: ((Tensor, Tensor) -> Void)? = nil) -> Tensor {
    let q = q_proj(h).rotary(rotary, heads: _heads)
    var k = k_proj(h).rotary(rotary, heads: _kvHeads), v = v_proj(h)
    store?(k, v)
    if _kvHeads < _heads { k = repeatHeads(k); v = repeatHeads(v) }
    let shape = AttentionShape(batch: batch, tokens: tokens, heads: _heads, headSize: _headDim)
    let context = Tensor.attention(query: q, key: k, value: v, shape: shape, keyMask: keyMask, causal: true)
    return o_proj(context.reshaped(to: [batch * tokens, _heads * _headDim]))
  }

  /// [N, K*D] -> [N, H*D]: query head j reads key/value head j / (H/K) (transformers' repeat_kv).
  func repeatHeads(_ x: Tensor) -> Tensor {
    let n = x.count / (_kvHeads * _headDim), group = _heads / _kvHeads
    let rows = (0..<(n * _heads)).map { r in (r / _heads) * _kvHeads + (r % _heads) / group }
    return x.reshaped(to: [n * _kvHeads, _headDim]).gatherRows(rows).reshaped(to: [n, _heads * _headDim])
  }
}

public final class LlamaMLP: Module {
  public let gate_proj: Linear, up_proj: Linear, down_proj: Linear

  init(_ c: LlamaConfig, rng: RandomSource) {
    gate_proj = Linear(c.hiddenSize, c.intermediateSize, bias: false, rng: rng)
    up_proj = Linear(c.hiddenSize, c.intermediateSize, bias: false, rng: rng)
    down_proj = Linear(c.intermediateSize, c.hiddenSize, bias: false, rng: rng)
  }

  func callAsFunction(_ x: Tensor) -> Tensor {
    let gateUp = Linear.outputs(x, [gate_proj, up_proj])
    return down_proj(Tensor.swiglu(gate: gateUp[0], up: gateUp[1]), outputOnlySummed: true)  // the residual sum reads it
  }
}

public final class LlamaDecoderLayer: Module {
  public let self_attn: LlamaAttention
  public let mlp: LlamaMLP
  public let input_layernorm: RMSNorm, post_attention_layernorm: RMSNorm

  init(_ c: LlamaConfig, rng: RandomSource) {
    self_attn = LlamaAttention(c, rng: rng); mlp = LlamaMLP(c, rng: rng)
    input_layernorm = RMSNorm(c.hiddenSize, eps: c.rmsNormEps); post_attention_layernorm = RMSNorm(c.hiddenSize, eps: c.rmsNormEps)
  }
}

extension LlamaDecoderLayer {
  /// The layer's parameters and its adapters' (what a checkpointed layer's recomputation may train).
  var trainableTensors: [Tensor] {
    namedParameters().map(\.tensor) + namedLinears().compactMap(\.linear.adapter.lora).flatMap { [$0.A, $0.B] }
  }
}

public final class LlamaModel: Module {
  public let embed_tokens: Embedding
  public let layers: [LlamaDecoderLayer]
  public let norm: RMSNorm

  init(_ c: LlamaConfig, rng: RandomSource) {
    embed_tokens = Embedding(c.vocabSize, c.hiddenSize, rng: rng)
    layers = (0..<c.numHiddenLayers).map { _ in LlamaDecoderLayer(c, rng: rng) }
    norm = RMSNorm(c.hiddenSize, eps: c.rmsNormEps)
  }
}

/// A causal language model: logits over the vocabulary at every position.
public final class LlamaForCausalLM: Module {
  public let _config: LlamaConfig
  public let model: LlamaModel
  /// nil when the head is tied to the embedding (the checkpoint then has no lm_head.weight).
  public let lm_head: Linear?
  let _frequencies: RotaryFrequencies
  /// In training, what each layer keeps for the backward pass, which recomputes the rest (`Tensor.checkpointed`:
  /// the same gradients, a fraction of the memory); nil keeps every activation.
  public var checkpointing: CheckpointPolicy?
  /// With `checkpointing` `.products`: how many layers (the first ones) are recomputed whole instead (`.input`),
  /// a dial between the two policies' memory and time.
  public var wholeRecomputedLayers = 0

  /// A model with random weights (N(0, 0.02), as transformers initialises), or zeros to be loaded over.
  public init(config c: LlamaConfig, seed: UInt64 = 0) {
    let rng = RandomSource(seed: seed)
    _config = c
    model = LlamaModel(c, rng: rng)
    lm_head = c.tieWordEmbeddings ? nil : Linear(c.hiddenSize, c.vocabSize, bias: false, rng: rng)
    _frequencies = RotaryFrequencies(headSize: c.headDim, theta: c.ropeTheta,
                                     llama3: c.ropeLlama3.map { ($0.factor, $0.low, $0.high, $0.original) })
  }

  public var config: LlamaConfig { _config }

  /// Every layer's input and the final normed states, each [B*T, C] (transformers' hidden_states), and
  /// the logits [B*T, V]. `positions` default to 0..<T in every row; padding (attention mask 0) is masked as keys.
  public func forward(_ x: TokenBatch, positions: [Int]? = nil) -> (hidden: [Tensor], logits: Tensor) {
    let pos = positions ?? (0..<(x.batch * x.tokens)).map { $0 % x.tokens }
    let hidden = hiddenStates(x, positions: pos)
    return (hidden, head(hidden.last!))
  }

  /// Hidden states as `forward`, and logits [rows.count, V] at rows `rows` of [B*T] alone (a training
  /// step's scored positions: the LM head is the largest matrix, and prompts need no logits).
  public func forward(_ x: TokenBatch, logitRows rows: [Int]) -> (hidden: [Tensor], logits: Tensor) {
    let (hidden, states) = forward(x, stateRows: rows)
    return (hidden, head(states))
  }

  /// Hidden states as `forward`, and the final normed states [rows.count, C] at rows `rows` of [B*T]
  /// (what the LM head reads at a training step's scored positions; `logits(states)` or `loss(states:labels:)` next).
  public func forward(_ x: TokenBatch, stateRows rows: [Int]) -> (hidden: [Tensor], states: Tensor) {
    let hidden = hiddenStates(x, positions: (0..<(x.batch * x.tokens)).map { $0 % x.tokens })
    return (hidden, hidden.last!.gatherRows(rows))
  }

  /// Logits [N, V] of final normed states [N, C].
  public func logits(_ states: Tensor) -> Tensor { head(states) }

  /// Mean cross-entropy of `labels` under the logits of `states` [N, C], without making the logits of every
  /// row at once (`Tensor.linearCrossEntropy`); through the separate head when the head has an adapter.
  /// With checkpointing (memory asked for), a tied head's gradient is made at the end of the backward pass,
  /// after the embedding's, rather than held beside the activations (one more product of the scored rows).
  public func loss(states: Tensor, labels: [Int]) -> Tensor {
    if let l = lm_head, l.adapter.lora != nil { return Tensor.crossEntropy(logits: l(states), labels: labels) }
    let (packed, weight) = lm_head.map { ($0.packedWeight, $0.weight) } ?? (model.embed_tokens.packedWeight, model.embed_tokens.weight)
    return Tensor.linearCrossEntropy(states, head: packed.map { .packed($0) } ?? .dense(weight), labels: labels,
                                     lateWeightGradient: lm_head == nil && checkpointing != nil)
  }

  /// The embedding output, every layer's output and (last) the final normed states, each [B*T, C] (with
  /// `finalNorm` false the last is the last layer's output itself); `store(layer, keys, values)` sees each
  /// layer's rotated keys and values.
  func hiddenStates(_ x: TokenBatch, positions: [Int], store: ((Int, Tensor, Tensor) -> Void)? = nil, finalNorm: Bool = true) -> [Tensor] {
    let (B, T) = (x.batch, x.tokens)
    precondition(positions.count == B * T, "LlamaForCausalLM: \(positions.count) positions for \(B) x \(T) tokens")
    let keyMask = x.attentionMask.contains(0) ? x.additiveMask : nil
    let rotary = _frequencies.table(positions)
    var h = model.embed_tokens(x.ids)
    var hidden = [h]
    for (l, layer) in model.layers.enumerated() {
      let block = { (h: Tensor) -> Tensor in
        let a = h + layer.self_attn(layer.input_layernorm(h), batch: B, tokens: T, rotary: rotary, keyMask: keyMask,
                                    store: store.map { s in { s(l, $0, $1) } })
        return a + layer.mlp(layer.post_attention_layernorm(a))
      }
      if let policy = checkpointing, store == nil {
        h = Tensor.checkpointed(h, parameters: layer.trainableTensors, keeping: l < wholeRecomputedLayers ? .input : policy, block)
      } else {
        h = block(h)
      }
      hidden.append(h)
    }
    if finalNorm { hidden[hidden.count - 1] = model.norm(h) }
    return hidden
  }

  /// Logits [N, V] of final states [N, C] (the LM head, or the embedding when tied).
  func head(_ h: Tensor) -> Tensor { lm_head.map { $0(h) } ?? model.embed_tokens.logits(h) }

  /// Logits [B*T, V].
  public func callAsFunction(_ x: TokenBatch, positions: [Int]? = nil) -> Tensor { forward(x, positions: positions).logits }

  /// Mean cross-entropy of every next token (transformers' `labels=ids` loss): position t predicts id t+1
  /// where both are real tokens; padding and each row's last position are not scored.
  public static func nextTokenLoss(logits: Tensor, batch x: TokenBatch) -> Tensor {
    Tensor.crossEntropy(logits: logits, labels: nextTokenLabels(x))
  }

  /// The same loss from the final states [B*T, C] (`forward(_:stateRows:)` at every row), without the logits.
  public func nextTokenLoss(states: Tensor, batch x: TokenBatch) -> Tensor { loss(states: states, labels: Self.nextTokenLabels(x)) }

  /// Each position's next token where both are real tokens, else -100.
  static func nextTokenLabels(_ x: TokenBatch) -> [Int] {
    let (B, T) = (x.batch, x.tokens)
    var labels = [Int](repeating: -100, count: B * T)
    for b in 0..<B { for t in 0..<(T - 1) where x.attentionMask[b * T + t] != 0 && x.attentionMask[b * T + t + 1] != 0 { labels[b * T + t] = x.ids[b * T + t + 1] } }
    return labels
  }
}
