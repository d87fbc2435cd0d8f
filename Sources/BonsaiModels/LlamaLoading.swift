// Loading a decoder: from a GGUF file (config from metadata, every tensor dequantised to fp32 and put
// under its Hugging Face key; llama's q and k rows un-permuted, since llama.cpp's converter interleaves
// each head's rotary pairs) or from a Hugging Face folder (config.json, model.safetensors in F32, F16 or
// BF16). Loading is strict: a missing, unexpected or mis-shaped tensor is an error naming it.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import BonsaiTokenizers
import Foundation

extension LlamaForCausalLM {
  /// The GGUF name of a Hugging Face key (shared/DECODERS.md section 3).
  static func ggufName(_ key: String) -> String? {
    let fixed = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"]
    if let n = fixed[key] { return n }
    let parts = key.split(separator: ".").map(String.init)
    guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return nil }
    let rest = parts[3...].joined(separator: ".")
    let map = ["input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
               "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
               "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
               "self_attn.o_proj.weight": "attn_output.weight", "self_attn.o_proj.bias": "attn_output.bias",
               "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"]
    return map[rest].map { "blk.\(layer).\($0)" }
  }

  /// A model with every weight from `f` in fp32.
  public static func load(gguf f: GGUFFile) throws -> LlamaForCausalLM {
    let c = try LlamaConfig(gguf: f)
    let model = ParameterInit.deferred { LlamaForCausalLM(config: c) }
    var used: Set<String> = ["rope_freqs.weight"]  // read into the config
    for (key, p) in model.namedParameters() {
      guard let name = LlamaForCausalLM.ggufName(key), let t = f.tensorsByName[name] else { throw CheckpointError.missingKey(path: f.path, key: LlamaForCausalLM.ggufName(key) ?? key) }
      guard t.shape == p.shape else { throw CheckpointError.shapeMismatch(path: f.path, key: name, expected: p.shape, actual: t.shape) }
      try f.dequantize(t, into: p.mutableData)
      // llama.cpp's convert_hf_to_gguf permutes llama's q and k rows: undo it (not for qwen2)
      if c.modelType == "llama" && (key.hasSuffix("q_proj.weight") || key.hasSuffix("k_proj.weight")) {
        LlamaForCausalLM.unpermuteRows(p, heads: key.hasSuffix("q_proj.weight") ? c.numAttentionHeads : c.numKeyValueHeads)
      }
      used.insert(name)
    }
    if let extra = f.tensors.first(where: { !used.contains($0.name) }) {
      throw CheckpointError.unexpectedKey(path: f.path, key: extra.name)
    }
    return model
  }

  /// HF row h*D + j*D/2 + i = GGUF row h*D + 2i + j, within each of `heads` heads of D rows.
  static func unpermuteRows(_ w: Tensor, heads: Int) {
    let rows = w.shape[0], cols = w.shape[1], d = rows / heads, half = d / 2
    let src = Tensor(uninitialized: w.shape)
    src.copyValues(from: w)
    for h in 0..<heads { for j in 0..<2 { for i in 0..<half {
      (w.mutableData + (h * d + j * half + i) * cols).update(from: src.data + (h * d + 2 * i + j) * cols, count: cols)
    } } }
  }

  /// A model from a Hugging Face folder: config.json and model.safetensors (or its shards).
  public static func load(folder: URL) throws -> LlamaForCausalLM {
    let configURL = folder.appendingPathComponent("config.json")
    guard let data = FileManager.default.contents(atPath: configURL.path),
          let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw CheckpointError.unreadable(path: configURL.path, reason: "cannot read config.json")
    }
    let c = try LlamaConfig(json: json, path: configURL.path)
    let model = ParameterInit.deferred { LlamaForCausalLM(config: c) }
    let file = try SafeTensorsFile(folder: folder)
    let params = model.namedParameters()
    for (key, p) in params {
      guard file.tensors[key] != nil else { throw CheckpointError.missingKey(path: file.path, key: key) }
      try file.read(key, into: p)
    }
    let known = Set(params.map(\.key))
    if let extra = file.keys.first(where: { !known.contains($0) && !($0 == "lm_head.weight" && c.tieWordEmbeddings) }) {
      throw CheckpointError.unexpectedKey(path: file.path, key: extra)
    }
    return model
  }
}
