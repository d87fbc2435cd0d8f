// MPNet encoder and sequence-classification head, following transformers'
// `models/mpnet/modeling_mpnet.py`: BERT blocks plus a T5-style bucketed relative position bias shared
// by all layers, RoBERTa-style position ids (counting from padding_idx + 1), no token types.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

/// `config.json` of an MPNet model.
public struct MPNetConfig: Codable, Sendable {
  public var modelType: String
  public var vocabSize: Int
  public var hiddenSize: Int
  public var numHiddenLayers: Int
  public var numAttentionHeads: Int
  public var intermediateSize: Int
  public var hiddenAct: String
  public var hiddenDropoutProb: Float
  public var attentionProbsDropoutProb: Float
  public var maxPositionEmbeddings: Int
  public var initializerRange: Float
  public var layerNormEps: Float
  public var relativeAttentionNumBuckets: Int
  public var padTokenId: Int?
  public var id2label: [String: String]?

  enum CodingKeys: String, CodingKey {
    case modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size"
    case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
    case intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
    case hiddenDropoutProb = "hidden_dropout_prob", attentionProbsDropoutProb = "attention_probs_dropout_prob"
    case maxPositionEmbeddings = "max_position_embeddings", initializerRange = "initializer_range"
    case layerNormEps = "layer_norm_eps", relativeAttentionNumBuckets = "relative_attention_num_buckets"
    case padTokenId = "pad_token_id", id2label
  }

  func validate(path: String) throws {
    guard modelType == "mpnet" else { throw CheckpointError.unsupportedConfig(path: path, key: "model_type", value: modelType) }
    guard hiddenAct == "gelu" else { throw CheckpointError.unsupportedConfig(path: path, key: "hidden_act", value: hiddenAct) }
    guard hiddenSize % numAttentionHeads == 0 else {
      throw CheckpointError.unsupportedConfig(path: path, key: "num_attention_heads", value: "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
    }
  }

  /// MPNet's padding index, also the offset of position ids.
  var paddingIndex: Int { 1 }
}

public final class MPNetEmbeddings: Module {
  public let word_embeddings: Embedding
  public let position_embeddings: Embedding
  public let LayerNorm: BonsaiNN.LayerNorm
  let _config: MPNetConfig

  init(_ c: MPNetConfig, rng: RandomSource) {
    word_embeddings = Embedding(c.vocabSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    position_embeddings = Embedding(c.maxPositionEmbeddings, c.hiddenSize, std: c.initializerRange, rng: rng)
    LayerNorm = BonsaiNN.LayerNorm(c.hiddenSize, eps: c.layerNormEps)
    _config = c
  }

  /// Position ids: cumulative count of non-pad ids, times the mask, plus padding_idx.
  func positionIds(_ x: TokenBatch) -> [Int] {
    var out = [Int](repeating: 0, count: x.ids.count)
    for b in 0..<x.batch {
      var n = 0
      for t in 0..<x.tokens {
        let i = b * x.tokens + t
        let real = x.ids[i] != _config.paddingIndex
        if real { n += 1 }
        out[i] = (real ? n : 0) + _config.paddingIndex
      }
    }
    return out
  }

  func callAsFunction(_ x: TokenBatch, rng: RandomSource?) -> Tensor {
    let sum = word_embeddings(x.ids) + position_embeddings(positionIds(x))
    return LayerNorm(sum).dropout(_config.hiddenDropoutProb, rng: rng)
  }
}

public final class MPNetSelfAttention: Module {
  public let q: Linear, k: Linear, v: Linear, o: Linear
  init(_ c: MPNetConfig, rng: RandomSource) {
    q = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    k = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    v = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    o = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
  }
}

public final class MPNetAttention: Module {
  public let attn: MPNetSelfAttention
  public let LayerNorm: BonsaiNN.LayerNorm
  init(_ c: MPNetConfig, rng: RandomSource) {
    attn = MPNetSelfAttention(c, rng: rng)
    LayerNorm = BonsaiNN.LayerNorm(c.hiddenSize, eps: c.layerNormEps)
  }
}

public final class MPNetIntermediate: Module {
  public let dense: Linear
  init(_ c: MPNetConfig, rng: RandomSource) { dense = Linear(c.hiddenSize, c.intermediateSize, std: c.initializerRange, rng: rng) }
}

public final class MPNetOutput: Module {
  public let dense: Linear
  public let LayerNorm: BonsaiNN.LayerNorm
  init(_ c: MPNetConfig, rng: RandomSource) {
    dense = Linear(c.intermediateSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    LayerNorm = BonsaiNN.LayerNorm(c.hiddenSize, eps: c.layerNormEps)
  }
}

public final class MPNetLayer: Module {
  public let attention: MPNetAttention
  public let intermediate: MPNetIntermediate
  public let output: MPNetOutput
  let _config: MPNetConfig

  init(_ c: MPNetConfig, rng: RandomSource) {
    attention = MPNetAttention(c, rng: rng)
    intermediate = MPNetIntermediate(c, rng: rng)
    output = MPNetOutput(c, rng: rng)
    _config = c
  }

  /// h [B*T, C] -> [B*T, C]; `bias` [H, T, T] is the shared relative position bias.
  func callAsFunction(_ h: Tensor, shape: AttentionShape, mask: [Float], bias: Tensor, rng: RandomSource?) -> Tensor {
    let a = attention.attn, p = _config.hiddenDropoutProb
    let context = Tensor.attention(query: a.q(h), key: a.k(h), value: a.v(h), shape: shape, keyMask: mask,
                                   positionBias: bias, dropout: _config.attentionProbsDropoutProb, rng: rng)
    let h1 = attention.LayerNorm(a.o(context.reshaped(to: h.shape)).dropout(p, rng: rng) + h)
    // GELU (MPNetIntermediate's activation) is fused into the output projection
    let inner = intermediate.dense(h1)
    return output.LayerNorm(output.dense.geluThen(inner).dropout(p, rng: rng) + h1)
  }
}

public final class MPNetEncoder: Module {
  public let layer: [MPNetLayer]
  public let relative_attention_bias: Embedding
  let _buckets: Int

  init(_ c: MPNetConfig, rng: RandomSource) {
    layer = (0..<c.numHiddenLayers).map { _ in MPNetLayer(c, rng: rng) }
    relative_attention_bias = Embedding(c.relativeAttentionNumBuckets, c.numAttentionHeads, std: c.initializerRange, rng: rng)
    _buckets = c.relativeAttentionNumBuckets
  }

  /// Bucket of relative position (key - query), bidirectional, max distance 128 (as transformers, in float32).
  public static func bucket(_ relative: Int, buckets: Int = 32, maxDistance: Int = 128) -> Int {
    var n = -relative
    let half = buckets / 2
    var ret = n < 0 ? half : 0
    n = abs(n)
    let maxExact = half / 2
    if n < maxExact { return ret + n }
    let ratio = Float(Foundation.log(Float(n) / Float(maxExact))) / Float(Foundation.log(Double(maxDistance) / Double(maxExact)))
    let large = maxExact + Int(ratio * Float(half - maxExact))
    ret += min(large, half - 1)
    return ret
  }

  /// The position bias [H, T, T] for T tokens, differentiable with respect to the bucket table.
  func positionBias(tokens t: Int, heads: Int) -> Tensor {
    var ids = [Int](repeating: 0, count: t * t)
    for i in 0..<t { for j in 0..<t { ids[i * t + j] = MPNetEncoder.bucket(j - i, buckets: _buckets) } }
    return relative_attention_bias(ids).reshaped(to: [t, t, heads]).permuted([2, 0, 1])
  }
}

/// The MPNet encoder.
public final class MPNetModel: Module, Encoder {
  public let config: MPNetConfig
  public let embeddings: MPNetEmbeddings
  public let encoder: MPNetEncoder

  public init(config c: MPNetConfig, seed: UInt64 = 0) {
    let rng = RandomSource(seed: seed)
    config = c
    embeddings = MPNetEmbeddings(c, rng: rng)
    encoder = MPNetEncoder(c, rng: rng)
  }

  public var hiddenSize: Int { config.hiddenSize }
  public var maxTokens: Int { config.maxPositionEmbeddings - config.paddingIndex - 1 }

  public var layerCount: Int { encoder.layer.count }

  /// Embedding output and each layer's output, [B*T, C] each.
  public func hiddenStates(_ x: TokenBatch, rng: RandomSource?) -> [Tensor] {
    precondition(x.tokens <= maxTokens, "MPNetModel: \(x.tokens) tokens exceed \(maxTokens) positions")
    let shape = AttentionShape(batch: x.batch, tokens: x.tokens, heads: config.numAttentionHeads,
                               headSize: config.hiddenSize / config.numAttentionHeads)
    let mask = x.additiveMask
    let bias = encoder.positionBias(tokens: x.tokens, heads: config.numAttentionHeads)
    var states = [embeddings(x, rng: rng)]
    for l in encoder.layer { states.append(l(states.last!, shape: shape, mask: mask, bias: bias, rng: rng)) }
    return states
  }

  /// Loads a base or task checkpoint into the encoder (heads in the file are skipped).
  public func load(from file: SafeTensorsFile) throws -> LoadReport {
    try load(from: file, basePrefix: "mpnet", freshPrefixes: [], ignorable: ["embeddings.position_ids", "pooler.", "lm_head.", "classifier."])
  }
}

/// `MPNetClassificationHead`: first token -> dropout -> dense -> tanh -> dropout -> out_proj.
public final class MPNetClassificationHead: Module {
  public let dense: Linear
  public let out_proj: Linear
  init(_ c: MPNetConfig, numLabels: Int, rng: RandomSource) {
    dense = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    out_proj = Linear(c.hiddenSize, numLabels, std: c.initializerRange, rng: rng)
  }
}

/// `MPNetForSequenceClassification`.
public final class MPNetForSequenceClassification: Module, SequenceClassifier {
  public let mpnet: MPNetModel
  public let classifier: MPNetClassificationHead
  public let numLabels: Int

  public init(config: MPNetConfig, numLabels: Int, seed: UInt64 = 0) {
    mpnet = MPNetModel(config: config, seed: seed)
    classifier = MPNetClassificationHead(config, numLabels: numLabels, rng: RandomSource(seed: seed &+ 1))
    self.numLabels = numLabels
  }

  public var encoderModel: Encoder { mpnet }

  /// Logits [B, K] from the last hidden states [B, T, C].
  public func head(_ h: Tensor, batch x: TokenBatch, rng: RandomSource?) -> Tensor {
    let c = mpnet.config.hiddenSize, p = mpnet.config.hiddenDropoutProb
    let first = h.reshaped(to: [x.batch, x.tokens * c]).slice(axis: 1, 0..<c)
    let hidden = classifier.dense(first.dropout(p, rng: rng)).tanh()
    return classifier.out_proj(hidden.dropout(p, rng: rng))
  }

  public func load(from file: SafeTensorsFile) throws -> LoadReport {
    try load(from: file, basePrefix: "mpnet", freshPrefixes: ["classifier."], ignorable: ["embeddings.position_ids", "pooler.", "lm_head."])
  }
}
