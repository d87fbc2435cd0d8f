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

  /// A model with the weights of `f`. With `keepingBlocks`, every matrix stored as Q8_0, Q4_0, Q4_1,
  /// F16, BF16 or F32 stays in the file's blocks (F16, BF16, F32 mapped, not copied; Q8_0, Q4_0, Q4_1 copied
  /// into tiles of 16 rows, the same bytes, when the rows come in 16s; llama's q and k rows in Hugging Face
  /// order) and is multiplied from them; other matrices and every vector are converted to fp32. `tiling: false`
  /// keeps the Q formats row after row as well (for comparisons: the same values, slower batched products).
  /// Without it, every weight is converted to fp32 (exactly gguf's dequantisation).
  public static func load(gguf f: GGUFFile, keepingBlocks: Bool = false, tiling: Bool = true) throws -> LlamaForCausalLM {
    let c = try LlamaConfig(gguf: f)
    let model = ParameterInit.placeholders { LlamaForCausalLM(config: c) }
    var used: Set<String> = ["rope_freqs.weight"]  // read into the config
    func source(_ key: String, shape: [Int]) throws -> GGUFTensor {
      guard let name = LlamaForCausalLM.ggufName(key), let t = f.tensorsByName[name] else { throw CheckpointError.missingKey(path: f.path, key: LlamaForCausalLM.ggufName(key) ?? key) }
      guard t.shape == shape else { throw CheckpointError.shapeMismatch(path: f.path, key: name, expected: shape, actual: t.shape) }
      used.insert(name)
      return t
    }
    // llama.cpp's convert_hf_to_gguf permutes llama's q and k rows: undo it (not for qwen2)
    func permutedHeads(_ key: String) -> Int? {
      guard c.modelType == "llama" else { return nil }
      return key.hasSuffix("q_proj.weight") ? c.numAttentionHeads : key.hasSuffix("k_proj.weight") ? c.numKeyValueHeads : nil
    }
    let modules = model.namedModules().filter { $0.module is Linear || $0.module is Embedding }
    let matrices = Set(modules.map { $0.key + ".weight" })
    // the vectors first: reading them pulls in pages of the file around them, released with the matrices' below
    for (key, p) in model.namedParameters() where !matrices.contains(key) {
      try f.dequantize(try source(key, shape: p.shape), into: p.mutableData)
    }
    for (key, m) in modules {
      let linear = m as? Linear, embedding = m as? Embedding
      let wkey = key + ".weight"
      let shape = linear.map { [$0.outFeatures, $0.inFeatures] } ?? [embedding!.count, embedding!.size]
      let t = try source(wkey, shape: shape)
      if keepingBlocks, let mapped = f.packed(t) {
        var packed = mapped
        if let heads = permutedHeads(wkey) {
          packed = packed.permutingRows(LlamaForCausalLM.unpermutedOrder(rows: shape[0], heads: heads))
        }
        if tiling && packed.canTile { packed = packed.tiled() }  // Q formats: tiles of 16 rows, read fastest by decoding
        if packed !== mapped { f.releasePages(of: t) }  // a copy: the file's pages are not read again
        linear?.pack(packed); embedding?.pack(packed)
      } else {
        linear?.allocateWeight(); embedding?.allocateWeight()
        let w = linear?.weight ?? embedding!.weight
        try f.dequantize(t, into: w.mutableData)
        f.releasePages(of: t)
        if let heads = permutedHeads(wkey) { LlamaForCausalLM.unpermuteRows(w, heads: heads) }
      }
    }
    if let extra = f.tensors.first(where: { !used.contains($0.name) }) {
      throw CheckpointError.unexpectedKey(path: f.path, key: extra.name)
    }
    return model
  }

  /// Row i of the Hugging Face matrix is row order[i] of llama.cpp's: within each of `heads` heads of D
  /// rows, HF row j*D/2 + i is GGUF row 2i + j.
  static func unpermutedOrder(rows: Int, heads: Int) -> [Int] {
    let d = rows / heads, half = d / 2
    var order = [Int](repeating: 0, count: rows)
    for h in 0..<heads { for j in 0..<2 { for i in 0..<half { order[h * d + j * half + i] = h * d + 2 * i + j } } }
    return order
  }

  /// Rows of `w` [rows, cols] from llama.cpp's order into Hugging Face's (`unpermutedOrder`).
  static func unpermuteRows(_ w: Tensor, heads: Int) {
    let cols = w.shape[1], src = w.detached()
    for (i, r) in unpermutedOrder(rows: w.shape[0], heads: heads).enumerated() {
      (w.mutableData + i * cols).update(from: src.data + r * cols, count: cols)
    }
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
