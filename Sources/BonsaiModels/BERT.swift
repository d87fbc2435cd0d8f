// BERT encoder and sequence-classification head, following transformers'
// `models/bert/modeling_bert.py` (BertModel, BertForSequenceClassification). Used for MiniLM.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

/// `config.json` of a BERT model (keys as in transformers' BertConfig).
public struct BertConfig: Codable, Sendable {
  /// Decodes a config.json. (Memberwise init is not public: configs come from files.)
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
  public var typeVocabSize: Int
  public var initializerRange: Float
  public var layerNormEps: Float
  public var padTokenId: Int?
  public var positionEmbeddingType: String?
  public var id2label: [String: String]?

  enum CodingKeys: String, CodingKey {
    case modelType = "model_type", vocabSize = "vocab_size", hiddenSize = "hidden_size"
    case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
    case intermediateSize = "intermediate_size", hiddenAct = "hidden_act"
    case hiddenDropoutProb = "hidden_dropout_prob", attentionProbsDropoutProb = "attention_probs_dropout_prob"
    case maxPositionEmbeddings = "max_position_embeddings", typeVocabSize = "type_vocab_size"
    case initializerRange = "initializer_range", layerNormEps = "layer_norm_eps", padTokenId = "pad_token_id"
    case positionEmbeddingType = "position_embedding_type", id2label
  }

  func validate(path: String) throws {
    guard modelType == "bert" else { throw CheckpointError.unsupportedConfig(path: path, key: "model_type", value: modelType) }
    guard hiddenAct == "gelu" else { throw CheckpointError.unsupportedConfig(path: path, key: "hidden_act", value: hiddenAct) }
    if let p = positionEmbeddingType, p != "absolute" { throw CheckpointError.unsupportedConfig(path: path, key: "position_embedding_type", value: p) }
    guard hiddenSize % numAttentionHeads == 0 else {
      throw CheckpointError.unsupportedConfig(path: path, key: "num_attention_heads", value: "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
    }
  }
}

public final class BertEmbeddings: Module {
  public let word_embeddings: Embedding
  public let position_embeddings: Embedding
  public let token_type_embeddings: Embedding
  public let LayerNorm: BonsaiNN.LayerNorm
  let _dropout: Float

  init(_ c: BertConfig, rng: RandomSource) {
    word_embeddings = Embedding(c.vocabSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    position_embeddings = Embedding(c.maxPositionEmbeddings, c.hiddenSize, std: c.initializerRange, rng: rng)
    token_type_embeddings = Embedding(c.typeVocabSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    LayerNorm = BonsaiNN.LayerNorm(c.hiddenSize, eps: c.layerNormEps)
    _dropout = c.hiddenDropoutProb
  }

  /// -> [B*T, C]
  func callAsFunction(_ x: TokenBatch, rng: RandomSource?) -> Tensor {
    let positions = (0..<x.batch * x.tokens).map { $0 % x.tokens }
    let sum = word_embeddings(x.ids) + position_embeddings(positions) + token_type_embeddings(x.typeIds)
    return LayerNorm(sum).dropout(_dropout, rng: rng)
  }
}

public final class BertSelfAttention: Module {
  public let query: Linear, key: Linear, value: Linear
  init(_ c: BertConfig, rng: RandomSource) {
    query = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    key = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    value = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng)
  }
}

/// Dense projection, dropout, residual and layer norm (BertSelfOutput and BertOutput).
public final class BertResidualOutput: Module {
  public let dense: Linear
  public let LayerNorm: BonsaiNN.LayerNorm
  init(_ inSize: Int, _ c: BertConfig, rng: RandomSource) {
    dense = Linear(inSize, c.hiddenSize, std: c.initializerRange, rng: rng)
    LayerNorm = BonsaiNN.LayerNorm(c.hiddenSize, eps: c.layerNormEps)
  }
  func callAsFunction(_ x: Tensor, residual: Tensor, dropout: Float, rng: RandomSource?) -> Tensor {
    LayerNorm(dense(x).dropout(dropout, rng: rng) + residual)
  }
  /// The same with GELU applied to `x` first, fused into the projection (BertIntermediate's activation).
  func gelu(_ x: Tensor, residual: Tensor, dropout: Float, rng: RandomSource?) -> Tensor {
    LayerNorm(dense.geluThen(x).dropout(dropout, rng: rng) + residual)
  }
}

public final class BertAttention: Module {
  public let selfAttention: BertSelfAttention
  public let output: BertResidualOutput
  public override var keyOverrides: [String: String] { ["selfAttention": "self"] }
  init(_ c: BertConfig, rng: RandomSource) {
    selfAttention = BertSelfAttention(c, rng: rng)
    output = BertResidualOutput(c.hiddenSize, c, rng: rng)
  }
}

public final class BertIntermediate: Module {
  public let dense: Linear
  init(_ c: BertConfig, rng: RandomSource) { dense = Linear(c.hiddenSize, c.intermediateSize, std: c.initializerRange, rng: rng) }
}

public final class BertLayer: Module {
  public let attention: BertAttention
  public let intermediate: BertIntermediate
  public let output: BertResidualOutput
  let _config: BertConfig

  init(_ c: BertConfig, rng: RandomSource) {
    attention = BertAttention(c, rng: rng)
    intermediate = BertIntermediate(c, rng: rng)
    output = BertResidualOutput(c.intermediateSize, c, rng: rng)
    _config = c
  }

  /// h [B*T, C] -> [B*T, C]
  func callAsFunction(_ h: Tensor, shape: AttentionShape, mask: [Float], rng: RandomSource?) -> Tensor {
    let a = attention.selfAttention
    let context = Tensor.attention(query: a.query(h), key: a.key(h), value: a.value(h), shape: shape, keyMask: mask,
                                   dropout: _config.attentionProbsDropoutProb, rng: rng)
    let h1 = attention.output(context.reshaped(to: h.shape), residual: h, dropout: _config.hiddenDropoutProb, rng: rng)
    let inner = intermediate.dense(h1)
    return output.gelu(inner, residual: h1, dropout: _config.hiddenDropoutProb, rng: rng)
  }
}

public final class BertEncoder: Module {
  public let layer: [BertLayer]
  init(_ c: BertConfig, rng: RandomSource) { layer = (0..<c.numHiddenLayers).map { _ in BertLayer(c, rng: rng) } }
}

public final class BertPooler: Module {
  public let dense: Linear
  init(_ c: BertConfig, rng: RandomSource) { dense = Linear(c.hiddenSize, c.hiddenSize, std: c.initializerRange, rng: rng) }
  /// first-token states [B, C] -> tanh(dense) [B, C]
  func callAsFunction(_ first: Tensor) -> Tensor { dense(first).tanh() }
}

/// The BERT encoder: embeddings, layers, optional pooler.
public final class BertModel: Module, Encoder {
  public let config: BertConfig
  public let embeddings: BertEmbeddings
  public let encoder: BertEncoder
  public let pooler: BertPooler?

  public init(config c: BertConfig, addPoolingLayer: Bool = true, seed: UInt64 = 0) {
    let rng = RandomSource(seed: seed)
    config = c
    embeddings = BertEmbeddings(c, rng: rng)
    encoder = BertEncoder(c, rng: rng)
    pooler = addPoolingLayer ? BertPooler(c, rng: rng) : nil
  }

  public var hiddenSize: Int { config.hiddenSize }
  public var maxTokens: Int { config.maxPositionEmbeddings }
  public var layerCount: Int { encoder.layer.count }

  /// Embedding output and each layer's output, [B*T, C] each. Dropout is active when `rng` is given.
  public func hiddenStates(_ x: TokenBatch, rng: RandomSource?) -> [Tensor] {
    precondition(x.tokens <= config.maxPositionEmbeddings, "BertModel: \(x.tokens) tokens exceed \(config.maxPositionEmbeddings) positions")
    let shape = AttentionShape(batch: x.batch, tokens: x.tokens, heads: config.numAttentionHeads,
                               headSize: config.hiddenSize / config.numAttentionHeads)
    let mask = x.additiveMask
    var states = [embeddings(x, rng: rng)]
    for l in encoder.layer { states.append(l(states.last!, shape: shape, mask: mask, rng: rng)) }
    return states
  }
}

/// `BertForSequenceClassification`: pooler output -> dropout -> linear classifier.
public final class BertForSequenceClassification: Module, SequenceClassifier {
  public let bert: BertModel
  public let classifier: Linear
  public let numLabels: Int

  public init(config: BertConfig, numLabels: Int, seed: UInt64 = 0) {
    bert = BertModel(config: config, addPoolingLayer: true, seed: seed)
    classifier = Linear(config.hiddenSize, numLabels, std: config.initializerRange, rng: RandomSource(seed: seed &+ 1))
    self.numLabels = numLabels
  }

  public var encoderModel: Encoder { bert }

  /// Logits [B, K] from the last hidden states [B, T, C].
  public func head(_ h: Tensor, batch x: TokenBatch, rng: RandomSource?) -> Tensor {
    let first = h.reshaped(to: [x.batch, x.tokens * bert.config.hiddenSize]).slice(axis: 1, 0..<bert.config.hiddenSize)
    let pooled = bert.pooler!(first)
    return classifier(pooled.dropout(bert.config.hiddenDropoutProb, rng: rng))
  }

  /// Loads a base (MiniLM) or task checkpoint; the classifier is new unless the checkpoint has one.
  public func load(from file: SafeTensorsFile) throws -> LoadReport {
    try load(from: file, basePrefix: "bert", freshPrefixes: ["classifier."], ignorable: ["embeddings.position_ids", "cls.", "bert.embeddings.position_ids"])
  }
}

extension BertModel {
  /// Loads a base or task checkpoint into the encoder (task heads in the file are skipped).
  public func load(from file: SafeTensorsFile) throws -> LoadReport {
    try load(from: file, basePrefix: "bert", freshPrefixes: [],
             ignorable: ["embeddings.position_ids", "cls.", "classifier."] + (pooler == nil ? ["pooler."] : []))
  }
}
