// Where a decoder comes from: a GGUF file (weights, config and tokenizer all in it) or a Hugging Face
// folder (config.json with model_type llama or qwen2, model.safetensors, tokenizer.json).
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiTokenizers
import Foundation

public enum DecoderCheckpoint {
  /// Whether `url` holds a decoder Bonsai reads (a .gguf file, or a folder whose config.json names llama or qwen2).
  public static func isDecoder(_ url: URL) -> Bool {
    if url.pathExtension.lowercased() == "gguf" { return true }
    guard let data = FileManager.default.contents(atPath: url.appendingPathComponent("config.json").path),
          let c = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
    return LlamaConfig.architectures.contains(c["model_type"] as? String ?? "")
  }

  /// The model and its tokenizer. A GGUF's matrices stay in their blocks with `keepingBlocks`
  /// (`LlamaForCausalLM.load(gguf:keepingBlocks:tiling:)`), else every weight is fp32.
  public static func load(_ url: URL, keepingBlocks: Bool = false, tiling: Bool = true) throws -> (LlamaForCausalLM, ByteLevelBPETokenizer) {
    if url.pathExtension.lowercased() == "gguf" {
      let f = try GGUFFile(path: url.path)
      // the tokenizer first: parsing its vocabulary takes tens of MB for a moment, better before the weights are in memory
      let tokenizer = try ByteLevelBPETokenizer(gguf: f)
      return (try LlamaForCausalLM.load(gguf: f, keepingBlocks: keepingBlocks, tiling: tiling), tokenizer)
    }
    return (try LlamaForCausalLM.load(folder: url), try ByteLevelBPETokenizer(folder: url))
  }

  /// The tokenizer alone.
  public static func tokenizer(_ url: URL) throws -> ByteLevelBPETokenizer {
    url.pathExtension.lowercased() == "gguf" ? try ByteLevelBPETokenizer(gguf: GGUFFile(path: url.path)) : try ByteLevelBPETokenizer(folder: url)
  }
}

extension DecoderCheckpoint {
  /// A Hugging Face folder transformers loads: config.json, model.safetensors (F32, F16 or BF16; no
  /// lm_head.weight when tied), tokenizer.json, tokenizer_config.json (with the chat template),
  /// generation_config.json. Written beside `folder` first, then renamed into place.
  /// `overrides` make weights that replace the model's by key (merged LoRA); like the dequantised rows of
  /// packed matrices, each is made as it is written and dropped after, so no second copy of the model is
  /// ever whole. `extraFiles` writes more files or folders (by name, each given its path) into the folder
  /// before it is renamed into place; `configExtras` go into config.json (a shrunk student's init_metadata).
  public static func save(_ model: LlamaForCausalLM, tokenizer: ByteLevelBPETokenizer, to folder: URL, dtype: String = "F32",
                          overrides: [String: () -> Tensor] = [:], extraFiles: [String: (URL) throws -> Void] = [:],
                          configExtras: [String: Any] = [:]) throws {
    let fm = FileManager.default
    let tmp = folder.deletingLastPathComponent().appendingPathComponent(".\(folder.lastPathComponent).tmp-\(getpid())")
    try? fm.removeItem(at: tmp)
    try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
    var config = model.config.json()
    config["torch_dtype"] = ["F32": "float32", "F16": "float16", "BF16": "bfloat16"][dtype] ?? "float32"
    config["bos_token_id"] = tokenizer.bosId ?? model.config.bosTokenId
    if let eos = tokenizer.eosId { config["eos_token_id"] = eos }
    config.merge(configExtras) { _, new in new }
    try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: tmp.appendingPathComponent("config.json"))
    let weights = model.namedParameterMakers().map { (key: $0.key, shape: $0.shape, make: overrides[$0.key] ?? $0.make) }
    try writeSafeTensors(made: weights, to: tmp.appendingPathComponent("model.safetensors").path, dtype: dtype)
    try tokenizer.tokenizerJSON().write(to: tmp.appendingPathComponent("tokenizer.json"))
    try tokenizer.tokenizerConfigJSON().write(to: tmp.appendingPathComponent("tokenizer_config.json"))
    var generation: [String: Any] = ["do_sample": false]
    if let eos = tokenizer.eosId { generation["eos_token_id"] = eos }
    if let bos = tokenizer.bosId { generation["bos_token_id"] = bos }
    if let pad = tokenizer.padId { generation["pad_token_id"] = pad }
    try JSONSerialization.data(withJSONObject: generation, options: [.prettyPrinted, .sortedKeys]).write(to: tmp.appendingPathComponent("generation_config.json"))
    for (name, write) in extraFiles { try write(tmp.appendingPathComponent(name)) }
    if fm.fileExists(atPath: folder.path) { try fm.removeItem(at: folder) }
    try fm.moveItem(at: tmp, to: folder)
  }
}
