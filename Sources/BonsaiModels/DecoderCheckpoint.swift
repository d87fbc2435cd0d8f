// Where a decoder comes from: a GGUF file (weights, config and tokenizer all in it) or a Hugging Face
// folder (config.json with model_type llama or qwen2, model.safetensors, tokenizer.json).
import BonsaiCheckpoint
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

  /// The model (fp32) and its tokenizer.
  public static func load(_ url: URL) throws -> (LlamaForCausalLM, ByteLevelBPETokenizer) {
    if url.pathExtension.lowercased() == "gguf" {
      let f = try GGUFFile(path: url.path)
      return (try LlamaForCausalLM.load(gguf: f), try ByteLevelBPETokenizer(gguf: f))
    }
    return (try LlamaForCausalLM.load(folder: url), try ByteLevelBPETokenizer(folder: url))
  }

  /// The tokenizer alone.
  public static func tokenizer(_ url: URL) throws -> ByteLevelBPETokenizer {
    url.pathExtension.lowercased() == "gguf" ? try ByteLevelBPETokenizer(gguf: GGUFFile(path: url.path)) : try ByteLevelBPETokenizer(folder: url)
  }
}
