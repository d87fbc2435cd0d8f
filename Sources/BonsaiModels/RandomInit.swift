// Randomly initialised students (Farhat & Chen 2024, shared/METHODS.md section 5: distillation instead of
// pre-training): a BERT of any depth and width, initialised as transformers' BertPreTrainedModel._init_weights
// does (Linear and Embedding weights N(0, initializer_range), biases 0, LayerNorm weights 1, the padding
// token's embedding row 0), with the tokenizer of the model it is like, so that it reads the same tokens.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

public enum RandomInitError: LocalizedError, Equatable {
  case badShape(String)
  public var errorDescription: String? {
    switch self { case let .badShape(reason): return reason }
  }
}

public enum RandomInit {
  /// The shape of a new BERT: nil keeps the model it is like (an intermediate size follows a new width as 4x).
  public struct Shape: Sendable {
    public var layers: Int?, hidden: Int?, heads: Int?, intermediate: Int?
    public init(layers: Int? = nil, hidden: Int? = nil, heads: Int? = nil, intermediate: Int? = nil) {
      self.layers = layers; self.hidden = hidden; self.heads = heads; self.intermediate = intermediate
    }
  }

  /// config.json of a BERT shaped like `like`'s config (a BERT's or an MPNet's) with `shape` applied.
  public static func bertConfig(like c: [String: Any], shape: Shape, likePath: String, seed: UInt64) throws -> [String: Any] {
    func int(_ key: String) -> Int? { (c[key] as? NSNumber)?.intValue }
    let hidden = shape.hidden ?? int("hidden_size") ?? 768, heads = shape.heads ?? int("num_attention_heads") ?? 12
    let layers = shape.layers ?? int("num_hidden_layers") ?? 12
    let intermediate = shape.intermediate ?? (shape.hidden == nil ? int("intermediate_size") : nil) ?? 4 * hidden
    guard layers >= 1 else { throw RandomInitError.badShape("--layers must be at least 1, got \(layers)") }
    guard hidden >= 1, heads >= 1, hidden % heads == 0 else {
      throw RandomInitError.badShape("--hidden \(hidden) must be a positive multiple of --heads \(heads)")
    }
    guard intermediate >= 1 else { throw RandomInitError.badShape("--intermediate must be at least 1, got \(intermediate)") }
    guard let vocab = int("vocab_size"), let positions = int("max_position_embeddings") else {
      throw RandomInitError.badShape("\(likePath)/config.json: needs vocab_size and max_position_embeddings")
    }
    return ["architectures": ["BertModel"], "model_type": "bert", "vocab_size": vocab, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": intermediate, "hidden_act": "gelu",
            "hidden_dropout_prob": c["hidden_dropout_prob"] ?? 0.1, "attention_probs_dropout_prob": c["attention_probs_dropout_prob"] ?? 0.1,
            "max_position_embeddings": positions, "type_vocab_size": int("type_vocab_size") ?? 2,
            "initializer_range": c["initializer_range"] ?? 0.02, "layer_norm_eps": c["model_type"] as? String == "bert" ? c["layer_norm_eps"] ?? 1e-12 : 1e-12,
            "pad_token_id": int("pad_token_id") ?? 0, "position_embedding_type": "absolute",
            "init_metadata": ["random_init": true, "like": likePath, "seed": seed]]
  }

  /// Writes a randomly initialised BERT shaped like the model in `like` (with `shape` applied) to `output`
  /// (config.json, model.safetensors, the tokenizer files of `like`), atomically; returns its config.
  @discardableResult
  public static func makeBERT(like: URL, shape: Shape, seed: UInt64, output: URL) throws -> BertConfig {
    let configURL = like.appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: configURL.path), let likeConfig = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw CheckpointError.unreadable(path: configURL.path, reason: "cannot read config.json")
    }
    let json = try JSONSerialization.data(withJSONObject: try bertConfig(like: likeConfig, shape: shape, likePath: like.path, seed: seed),
                                          options: [.prettyPrinted, .sortedKeys])
    let config = try JSONDecoder().decode(BertConfig.self, from: json)
    let model = ParameterInit.deferred { BertModel(config: config) }
    let params = model.namedParameters()
    initialize(params, config: config, rng: RandomSource(seed: seed))
    try writeStudentFolder(config: json, tensors: params, tokenizerFrom: like, to: output)
    return config
  }

  /// transformers' `_init_weights` for BERT: weights N(0, std), biases 0, LayerNorm weights 1, the padding row 0.
  public static func initialize(_ params: [(key: String, tensor: Tensor)], config: BertConfig, rng: RandomSource) {
    ParameterInit.initialize(params, std: config.initializerRange, rng: rng)
    if let pad = config.padTokenId, let words = params.first(where: { $0.key == "embeddings.word_embeddings.weight" })?.tensor, pad < config.vocabSize {
      (words.mutableData + pad * config.hiddenSize).update(repeating: 0, count: config.hiddenSize)
    }
  }
}
