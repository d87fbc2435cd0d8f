// The configuration of a LLaMA-family decoder (transformers' LlamaConfig, Qwen2Config), from a
// config.json or from GGUF metadata ({arch}.block_count, ...), and back to a config.json.
import BonsaiCheckpoint
import BonsaiEngine
import Foundation

public struct LlamaConfig: Sendable, Equatable {
  /// "llama" or "qwen2" (which adds biases to q, k and v).
  public var modelType = "llama"
  public var hiddenSize: Int
  public var intermediateSize: Int
  public var numHiddenLayers: Int
  public var numAttentionHeads: Int
  public var numKeyValueHeads: Int
  public var headDim: Int
  public var rmsNormEps: Float
  public var ropeTheta: Float = 10000
  /// Llama-3 rope scaling: (factor, low_freq_factor, high_freq_factor, original_max_position_embeddings).
  public var ropeLlama3: Llama3Scaling?
  public var vocabSize: Int
  public var maxPositionEmbeddings: Int
  public var tieWordEmbeddings: Bool
  /// Biases on q_proj, k_proj, v_proj (Qwen2; Llama's attention_bias also puts one on o_proj).
  public var qkvBias = false
  public var outputBias = false
  public var bosTokenId: Int?
  public var eosTokenIds: [Int] = []

  public struct Llama3Scaling: Sendable, Equatable {
    public var factor: Float, low: Float, high: Float, original: Int
  }

  public static let architectures = ["llama", "qwen2"]

  public init(modelType: String = "llama", hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
              numKeyValueHeads: Int, headDim: Int? = nil, rmsNormEps: Float, ropeTheta: Float = 10000, vocabSize: Int,
              maxPositionEmbeddings: Int, tieWordEmbeddings: Bool) {
    self.modelType = modelType; self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize; self.numHiddenLayers = numHiddenLayers
    self.numAttentionHeads = numAttentionHeads; self.numKeyValueHeads = numKeyValueHeads; self.headDim = headDim ?? hiddenSize / numAttentionHeads
    self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta; self.vocabSize = vocabSize; self.maxPositionEmbeddings = maxPositionEmbeddings
    self.tieWordEmbeddings = tieWordEmbeddings; qkvBias = modelType == "qwen2"
  }

  /// From a Hugging Face config.json (LlamaForCausalLM or Qwen2ForCausalLM).
  public init(json c: [String: Any], path: String) throws {
    let type = c["model_type"] as? String ?? ""
    guard LlamaConfig.architectures.contains(type) else {
      throw CheckpointError.unsupportedConfig(path: path, key: "model_type", value: "\(type) (Bonsai's decoders: \(LlamaConfig.architectures.joined(separator: ", ")))")
    }
    func int(_ k: String) throws -> Int {
      guard let v = c[k] as? Int else { throw CheckpointError.missingKey(path: path, key: k) }
      return v
    }
    let heads = try int("num_attention_heads")
    self.init(modelType: type, hiddenSize: try int("hidden_size"), intermediateSize: try int("intermediate_size"),
              numHiddenLayers: try int("num_hidden_layers"), numAttentionHeads: heads,
              numKeyValueHeads: c["num_key_value_heads"] as? Int ?? heads, headDim: c["head_dim"] as? Int,
              rmsNormEps: Float(c["rms_norm_eps"] as? Double ?? 1e-6), vocabSize: try int("vocab_size"),
              maxPositionEmbeddings: c["max_position_embeddings"] as? Int ?? 2048, tieWordEmbeddings: c["tie_word_embeddings"] as? Bool ?? false)
    if type == "llama" { qkvBias = c["attention_bias"] as? Bool ?? false; outputBias = qkvBias }
    if c["mlp_bias"] as? Bool == true { throw CheckpointError.unsupportedConfig(path: path, key: "mlp_bias", value: "true") }
    if c["use_sliding_window"] as? Bool == true { throw CheckpointError.unsupportedConfig(path: path, key: "use_sliding_window", value: "true") }
    let rope = (c["rope_parameters"] ?? c["rope_scaling"]) as? [String: Any]
    ropeTheta = Float((rope?["rope_theta"] ?? c["rope_theta"]) as? Double ?? 10000)
    switch rope?["rope_type"] as? String ?? rope?["type"] as? String ?? "default" {
    case "default": break
    case "llama3":
      ropeLlama3 = Llama3Scaling(factor: Float(rope?["factor"] as? Double ?? 8), low: Float(rope?["low_freq_factor"] as? Double ?? 1),
                                 high: Float(rope?["high_freq_factor"] as? Double ?? 4), original: rope?["original_max_position_embeddings"] as? Int ?? 8192)
    case let other: throw CheckpointError.unsupportedConfig(path: path, key: "rope_type", value: "\(other) (supported: default, llama3)")
    }
    bosTokenId = c["bos_token_id"] as? Int
    eosTokenIds = (c["eos_token_id"] as? [Int]) ?? (c["eos_token_id"] as? Int).map { [$0] } ?? []
  }

  /// From GGUF metadata.
  public init(gguf f: GGUFFile) throws {
    let arch = f.metadata["general.architecture"]?.string ?? ""
    guard LlamaConfig.architectures.contains(arch) else {
      throw CheckpointError.unsupportedConfig(path: f.path, key: "general.architecture", value: "\(arch) (Bonsai's decoders: \(LlamaConfig.architectures.joined(separator: ", ")))")
    }
    func int(_ k: String) throws -> Int {
      guard let v = try f.value("\(arch).\(k)").int else { throw CheckpointError.unsupportedConfig(path: f.path, key: "\(arch).\(k)", value: "not an integer") }
      return v
    }
    let heads = try int("attention.head_count"), hidden = try int("embedding_length")
    let vocab = f.metadata["\(arch).vocab_size"]?.int ?? f.metadata["tokenizer.ggml.tokens"]?.array?.count ?? 0
    self.init(modelType: arch, hiddenSize: hidden, intermediateSize: try int("feed_forward_length"), numHiddenLayers: try int("block_count"),
              numAttentionHeads: heads, numKeyValueHeads: f.metadata["\(arch).attention.head_count_kv"]?.int ?? heads,
              headDim: f.metadata["\(arch).attention.key_length"]?.int ?? f.metadata["\(arch).rope.dimension_count"]?.int,
              rmsNormEps: Float(f.metadata["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5),
              ropeTheta: Float(f.metadata["\(arch).rope.freq_base"]?.double ?? 10000), vocabSize: vocab,
              maxPositionEmbeddings: f.metadata["\(arch).context_length"]?.int ?? 2048, tieWordEmbeddings: f.tensorsByName["output.weight"] == nil)
    if f.tensorsByName["rope_freqs.weight"] != nil {
      let divisors = try f.dequantize("rope_freqs.weight").scalars
      ropeLlama3 = try LlamaConfig.llama3Scaling(divisors: divisors, headDim: headDim, theta: ropeTheta,
                                                 original: f.metadata["\(arch).rope.scaling.original_context_length"]?.int ?? 8192, path: f.path)
    }
    bosTokenId = f.metadata["tokenizer.ggml.bos_token_id"]?.int
    eosTokenIds = f.metadata["tokenizer.ggml.eos_token_id"]?.int.map { [$0] } ?? []
  }

  /// A config.json transformers reads (LlamaForCausalLM / Qwen2ForCausalLM).
  public func json() -> [String: Any] {
    var rope: [String: Any] = ["rope_theta": Double(ropeTheta), "rope_type": ropeLlama3 == nil ? "default" : "llama3"]
    if let s = ropeLlama3 {
      rope["factor"] = Double(s.factor); rope["low_freq_factor"] = Double(s.low); rope["high_freq_factor"] = Double(s.high)
      rope["original_max_position_embeddings"] = s.original
    }
    var c: [String: Any] = [
      "architectures": [modelType == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"], "model_type": modelType,
      "hidden_size": hiddenSize, "intermediate_size": intermediateSize, "num_hidden_layers": numHiddenLayers,
      "num_attention_heads": numAttentionHeads, "num_key_value_heads": numKeyValueHeads, "head_dim": headDim,
      "rms_norm_eps": Double(rmsNormEps), "rope_parameters": rope, "vocab_size": vocabSize, "max_position_embeddings": maxPositionEmbeddings,
      "tie_word_embeddings": tieWordEmbeddings, "hidden_act": "silu", "torch_dtype": "float32",
    ]
    if modelType == "llama" { c["attention_bias"] = qkvBias; c["mlp_bias"] = false }
    if let bosTokenId { c["bos_token_id"] = bosTokenId }
    if !eosTokenIds.isEmpty { c["eos_token_id"] = eosTokenIds.count == 1 ? eosTokenIds[0] as Any : eosTokenIds as Any }
    return c
  }
}

extension LlamaConfig {
  /// llama.cpp's converter stores Llama-3 rope scaling as per-frequency divisors (`rope_freqs.weight`: angle =
  /// position * theta^(-2i/D) / divisor[i]) without its parameters. They are recovered here: low 1 and high 4
  /// (every Llama 3.x), the original context from metadata or 8192, the factor solved from the first divisor
  /// that is not 1; then every divisor must match, else the file is refused. Divisors all 1: no scaling.
  public static func llama3Scaling(divisors: [Float], headDim d: Int, theta: Float, original: Int, path: String) throws -> Llama3Scaling? {
    func refuse(_ why: String) -> Error {
      CheckpointError.unsupportedConfig(path: path, key: "rope_freqs.weight", value: why)
    }
    guard divisors.count == d / 2 else { throw refuse("\(divisors.count) values for a head size of \(d) (want \(d / 2))") }
    let plain = RotaryFrequencies(headSize: d, theta: theta).inverse
    let (low, high, context) = (Float(1), Float(4), Float(original))
    var factor: Float?
    for (f, divisor) in zip(plain, divisors) where abs(divisor - 1) > 1e-6 {
      let wavelen = 2 * Float.pi / f
      if wavelen > context / low { factor = divisor } else {
        let smooth = (context / wavelen - low) / (high - low)
        factor = (1 - smooth) / (1 / divisor - smooth)
      }
      break
    }
    guard var factor else { return nil }
    if abs(factor - factor.rounded()) < 1e-3 { factor = factor.rounded() }
    let s = Llama3Scaling(factor: factor, low: low, high: high, original: original)
    let scaled = RotaryFrequencies(headSize: d, theta: theta, llama3: (s.factor, s.low, s.high, s.original)).inverse
    for i in 0..<divisors.count where abs(plain[i] / scaled[i] - divisors[i]) > 1e-4 * divisors[i] {
      throw refuse("divisor \(i) is \(divisors[i]), Llama-3 scaling (factor \(factor), low 1, high 4, original \(original)) gives \(plain[i] / scaled[i]): another scaling Bonsai cannot read")
    }
    return s
  }
}
