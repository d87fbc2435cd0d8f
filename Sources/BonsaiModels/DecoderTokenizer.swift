// A decoder's tokenizer from GGUF metadata (tokenizer.ggml.*), built as transformers builds it from the
// same file (integrations/gguf/gguf_tokenizer_mapping.py): byte-level BPE over tokenizer.ggml.tokens
// and .merges, control tokens (type 3) special, user-defined ones (type 4) added, the split of
// tokenizer.ggml.pre where transformers has one, else GPT-2's regex.
import BonsaiCheckpoint
import BonsaiTokenizers
import Foundation

extension ByteLevelBPETokenizer {
  public convenience init(gguf f: GGUFFile) throws {
    let model = try f.value("tokenizer.ggml.model").string ?? ""
    guard model == "gpt2" else {
      throw TokenizerError.unsupported(path: f.path, key: "tokenizer.ggml.model", value: model)
    }
    guard let tokens = try f.value("tokenizer.ggml.tokens").array?.compactMap(\.string), !tokens.isEmpty else {
      throw TokenizerError.unreadable(path: f.path, reason: "tokenizer.ggml.tokens is not an array of strings")
    }
    guard let mergeList = try f.value("tokenizer.ggml.merges").array?.compactMap(\.string) else {
      throw TokenizerError.unreadable(path: f.path, reason: "tokenizer.ggml.merges is not an array of strings")
    }
    var merges: [(String, String)] = []
    merges.reserveCapacity(mergeList.count)
    for (n, m) in mergeList.enumerated() {
      let parts = m.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
      guard parts.count == 2 else { throw TokenizerError.unreadable(path: f.path, reason: "tokenizer.ggml.merges[\(n)] '\(m)' is not two tokens") }
      merges.append((String(parts[0]), String(parts[1])))
    }
    let types = f.metadata["tokenizer.ggml.token_type"]?.array?.compactMap(\.int) ?? []
    let pre = f.metadata["tokenizer.ggml.pre"]?.string ?? "default"
    guard let split = ByteLevelPreTokenizer.forGGUF(pre) else {
      throw TokenizerError.unsupported(path: f.path, key: "tokenizer.ggml.pre", value: pre + " (supported: gpt2, smollm, default, llama-bpe, llama3, qwen2)")
    }
    func id(_ key: String) -> Int? { f.metadata[key]?.int.flatMap { $0 >= 0 && $0 < tokens.count ? $0 : nil } }
    try self.init(tokens: tokens, merges: merges, special: types.indices.filter { types[$0] == 3 }, added: types.indices.filter { types[$0] == 4 },
                  preTokenizer: split, bosId: id("tokenizer.ggml.bos_token_id"), eosId: id("tokenizer.ggml.eos_token_id"),
                  padId: id("tokenizer.ggml.padding_token_id"), unkId: id("tokenizer.ggml.unknown_token_id"),
                  addsBOS: f.metadata["tokenizer.ggml.add_bos_token"]?.bool ?? false, chatTemplate: f.metadata["tokenizer.chat_template"]?.string,
                  modelMaxLength: f.metadata["\(f.metadata["general.architecture"]?.string ?? "llama").context_length"]?.int ?? 8192, source: f.path)
  }
}

extension ByteLevelPreTokenizer {
  /// The split transformers installs for a GGUF's tokenizer.ggml.pre (GPT-2's regex where it has none of its own).
  static func forGGUF(_ pre: String) -> ByteLevelPreTokenizer? {
    if ["default", "gpt2", "gpt-2", "smollm"].contains(pre) { return .gpt2 }
    if ["llama3", "llama-v3", "llama-bpe", "falcon3", "smaug-bpe", "dbrx"].contains(pre) { return .llama3 }
    if ["qwen2", "deepseek-r1-qwen"].contains(pre) { return .qwen2 }
    return nil
  }
}
