// A decoder as a GGUF file llama.cpp and transformers load: llama/qwen2 metadata as llama.cpp's converter
// writes it, the byte-level BPE tokenizer (tokens, types, merges, special ids, chat template), matrices in
// F32, F16, Q8_0 or Q4_0 (ggml's reference quantisers; vectors stay F32), llama's q and k rows permuted
// into llama.cpp's order, and Llama-3 rope scaling as `rope_freqs.weight`.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiTokenizers
import Foundation

extension DecoderCheckpoint {
  /// The matrix formats `saveGGUF` writes, by the name `--dtype` takes.
  public static let ggufFormats: [String: PackedFormat] = ["f32": .f32, "f16": .f16, "q8_0": .q8_0, "q4_0": .q4_0]

  /// Writes `model` (with `overrides` by Hugging Face key, e.g. merged LoRA) to `path`, matrices in `dtype`.
  /// Each weight (an override, or a packed matrix's dequantised values) is made as it is written.
  public static func saveGGUF(_ model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer, to path: String, dtype: String,
                              overrides: [String: () -> Tensor] = [:], name: String = "bonsai") throws {
    guard let format = ggufFormats[dtype] else {
      throw CheckpointError.unsupportedConfig(path: path, key: "dtype", value: "\(dtype) (f32, f16, q8_0, q4_0)")
    }
    let c = model.config
    var tensors: [GGUFTensorData] = []
    for (key, shape, make) in model.namedParameterMakers() {
      guard let ggufName = LlamaForCausalLM.ggufName(key) else { throw CheckpointError.unexpectedKey(path: path, key: key) }
      let made = overrides[key] ?? make
      let permutedHeads = c.modelType != "llama" ? nil
        : key.hasSuffix("q_proj.weight") ? c.numAttentionHeads : key.hasSuffix("k_proj.weight") ? c.numKeyValueHeads : nil
      let f: PackedFormat = shape.count == 2 && shape[1] % format.blockSize == 0 ? format : .f32
      let byteCount = shape.reduce(1, *) / f.blockSize * f.blockBytes
      tensors.append(GGUFTensorData(name: ggufName, shape: shape, type: f.rawValue, byteCount: byteCount) {
        let w = made()
        return encoded(permutedHeads.map { LlamaForCausalLM.permutedRows(w, heads: $0) } ?? w, f)
      })
    }
    var meta = metadata(c, name: name, fileType: ["f32": 0, "f16": 1, "q8_0": 7, "q4_0": 2][dtype]!) + tokenizerMetadata(tokenizer)
    if let s = c.ropeLlama3 {
      let plain = RotaryFrequencies(headSize: c.headDim, theta: c.ropeTheta).inverse
      let scaled = RotaryFrequencies(headSize: c.headDim, theta: c.ropeTheta, llama3: (s.factor, s.low, s.high, s.original)).inverse
      let divisors = zip(plain, scaled).map { $0 / $1 }
      tensors.append(GGUFTensorData(name: "rope_freqs.weight", shape: [divisors.count], type: PackedFormat.f32.rawValue,
                                    byteCount: 4 * divisors.count) { divisors.withUnsafeBufferPointer { Data(buffer: $0) } })
      meta.append(("\(c.modelType).rope.scaling.original_context_length", .uint32(UInt32(s.original))))
    }
    try GGUFWriter.write(meta, tensors: tensors, to: path)
  }

  static func encoded(_ w: Tensor, _ format: PackedFormat) -> Data {
    if format == .f32 { return Data(buffer: UnsafeBufferPointer(start: w.data, count: w.count)) }
    let packed = PackedMatrix(quantizing: w, to: format)
    return Data(bytes: packed.base, count: packed.byteCount)
  }

  static func metadata(_ c: LlamaConfig, name: String, fileType: UInt32) -> [(String, GGUFMetadata)] {
    let a = c.modelType
    return [
      ("general.architecture", .string(a)), ("general.name", .string(name)), ("general.file_type", .uint32(fileType)),
      ("general.quantization_version", .uint32(2)), ("general.alignment", .uint32(UInt32(GGUFWriter.alignment))),
      ("\(a).context_length", .uint32(UInt32(c.maxPositionEmbeddings))), ("\(a).embedding_length", .uint32(UInt32(c.hiddenSize))),
      ("\(a).block_count", .uint32(UInt32(c.numHiddenLayers))), ("\(a).feed_forward_length", .uint32(UInt32(c.intermediateSize))),
      ("\(a).attention.head_count", .uint32(UInt32(c.numAttentionHeads))), ("\(a).attention.head_count_kv", .uint32(UInt32(c.numKeyValueHeads))),
      ("\(a).attention.key_length", .uint32(UInt32(c.headDim))), ("\(a).attention.value_length", .uint32(UInt32(c.headDim))),
      ("\(a).rope.dimension_count", .uint32(UInt32(c.headDim))), ("\(a).rope.freq_base", .float32(c.ropeTheta)),
      ("\(a).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)), ("\(a).vocab_size", .uint32(UInt32(c.vocabSize))),
    ]
  }

  /// tokenizer.ggml.* as llama.cpp's converter writes a byte-level BPE tokenizer (types: 1 normal,
  /// 3 control = special, 4 user-defined = added).
  static func tokenizerMetadata(_ t: ByteLevelBPETokenizer) -> [(String, GGUFMetadata)] {
    let pre: String
    switch t.preTokenizer {
    case .gpt2: pre = "gpt-2"
    case .gpt2IndividualDigits: pre = "smollm"
    case .llama3: pre = "llama-bpe"
    case .qwen2: pre = "qwen2"
    }
    var m: [(String, GGUFMetadata)] = [
      ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)), ("tokenizer.ggml.tokens", .strings(t.tokens)),
      ("tokenizer.ggml.token_type", .int32s(t.tokens.indices.map { t.specialIds.contains($0) ? 3 : t.addedIds.contains($0) ? 4 : 1 })),
      ("tokenizer.ggml.merges", .strings(t.mergeList.map { "\($0.0) \($0.1)" })),
    ]
    for (key, id) in [("bos", t.bosId), ("eos", t.eosId), ("unknown", t.unkId), ("padding", t.padId)] {
      if let id { m.append(("tokenizer.ggml.\(key)_token_id", .uint32(UInt32(id)))) }
    }
    m.append(("tokenizer.ggml.add_bos_token", .bool(t.addsBOS)))
    if let chat = t.chatTemplate { m.append(("tokenizer.chat_template", .string(chat))) }
    return m
  }
}

extension LlamaForCausalLM {
  /// Rows of `w` [rows, cols] from Hugging Face's order into llama.cpp's (the inverse of `unpermuteRows`).
  static func permutedRows(_ w: Tensor, heads: Int) -> Tensor {
    let cols = w.shape[1], out = Tensor(uninitialized: w.shape)
    for (i, r) in unpermutedOrder(rows: w.shape[0], heads: heads).enumerated() {
      (out.mutableData + r * cols).update(from: w.data + i * cols, count: cols)
    }
    return out
  }
}
