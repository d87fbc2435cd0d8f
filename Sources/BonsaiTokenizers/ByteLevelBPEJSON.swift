// A byte-level BPE tokenizer from a Hugging Face folder: tokenizer.json (model BPE with vocab and merges,
// a ByteLevel pre-tokenizer, optionally after Digits(individual_digits), added tokens) and
// tokenizer_config.json (chat template, model_max_length, bos/eos names).
import Foundation

extension ByteLevelBPETokenizer {
  public convenience init(folder: URL) throws {
    let url = folder.appendingPathComponent("tokenizer.json"), path = url.path
    guard let data = FileManager.default.contents(atPath: path), let j = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw TokenizerError.unreadable(path: path, reason: "missing or not JSON")
    }
    guard let model = j["model"] as? [String: Any], model["type"] as? String == "BPE", let vocab = model["vocab"] as? [String: Int] else {
      throw TokenizerError.unsupported(path: path, key: "model.type", value: ((j["model"] as? [String: Any])?["type"] as? String) ?? "?")
    }
    if model["byte_fallback"] as? Bool == true { throw TokenizerError.unsupported(path: path, key: "model.byte_fallback", value: "true") }
    var merges: [(String, String)] = []
    for (n, m) in (model["merges"] as? [Any] ?? []).enumerated() {
      if let s = m as? String {
        let p = s.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard p.count == 2 else { throw TokenizerError.unreadable(path: path, reason: "model.merges[\(n)] '\(s)' is not two tokens") }
        merges.append((String(p[0]), String(p[1])))
      } else if let pair = m as? [String], pair.count == 2 {
        merges.append((pair[0], pair[1]))
      } else {
        throw TokenizerError.unreadable(path: path, reason: "model.merges[\(n)] is not a merge")
      }
    }
    let pre = try ByteLevelBPETokenizer.preTokenizer(j["pre_tokenizer"], path: path)
    var tokens = [String](repeating: "", count: (vocab.values.max() ?? -1) + 1)
    for (t, id) in vocab { tokens[id] = t }
    var special: [Int] = [], added: [Int] = []
    for a in j["added_tokens"] as? [[String: Any]] ?? [] {
      guard let id = a["id"] as? Int, let content = a["content"] as? String else { continue }
      if id >= tokens.count { tokens += [String](repeating: "", count: id + 1 - tokens.count) }
      tokens[id] = content
      if a["special"] as? Bool == true { special.append(id) } else { added.append(id) }
    }
    let cfgData = FileManager.default.contents(atPath: folder.appendingPathComponent("tokenizer_config.json").path)
    let cfg = cfgData.flatMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] } ?? [:]
    func id(_ key: String) -> Int? {
      (cfg[key] as? String).flatMap { vocab[$0] ?? tokens.firstIndex(of: $0) } ?? ((cfg[key] as? [String: Any])?["content"] as? String).flatMap { tokens.firstIndex(of: $0) }
    }
    let post = j["post_processor"] as? [String: Any]
    let single = post?["single"] as? [[String: Any]] ?? []
    let addsBOS = single.first.map { $0["SpecialToken"] != nil } ?? false
    try self.init(tokens: tokens, merges: merges, special: special, added: added, preTokenizer: pre, bosId: id("bos_token"), eosId: id("eos_token"),
                  padId: id("pad_token"), unkId: id("unk_token"), addsBOS: addsBOS, chatTemplate: cfg["chat_template"] as? String,
                  modelMaxLength: min(cfg["model_max_length"] as? Int ?? 8192, 1 << 30), source: path)
  }

  /// The pre-tokenizers Bonsai runs: ByteLevel with its regex, or Digits(individual) then ByteLevel.
  static func preTokenizer(_ p: Any?, path: String) throws -> ByteLevelPreTokenizer {
    guard let p = p as? [String: Any], let type = p["type"] as? String else {
      throw TokenizerError.unsupported(path: path, key: "pre_tokenizer", value: "none")
    }
    if type == "ByteLevel", p["use_regex"] as? Bool ?? true, p["add_prefix_space"] as? Bool != true { return .gpt2 }
    if type == "Sequence", let parts = p["pretokenizers"] as? [[String: Any]], parts.count == 2,
       parts[0]["type"] as? String == "Digits", parts[0]["individual_digits"] as? Bool == true,
       parts[1]["type"] as? String == "ByteLevel", parts[1]["use_regex"] as? Bool ?? true, parts[1]["add_prefix_space"] as? Bool != true {
      return .gpt2IndividualDigits
    }
    if type == "Sequence", let parts = p["pretokenizers"] as? [[String: Any]], parts.count == 2, parts[0]["type"] as? String == "Split",
       let pattern = (parts[0]["pattern"] as? [String: Any])?["Regex"] as? String, parts[0]["behavior"] as? String == "Isolated",
       parts[1]["type"] as? String == "ByteLevel", parts[1]["use_regex"] as? Bool == false,
       let split = ByteLevelPreTokenizer.allCases.first(where: { $0.splitPattern == pattern }) {
      return split
    }
    let desc = String(decoding: (try? JSONSerialization.data(withJSONObject: p, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    throw TokenizerError.unsupported(path: path, key: "pre_tokenizer", value: String(desc.prefix(160)))
  }
}

extension ByteLevelBPETokenizer {
  /// tokenizer.json as `tokenizers` writes a byte-level BPE (what transformers' TokenizersBackend loads).
  public func tokenizerJSON() throws -> Data {
    var vocab: [String: Int] = [:]
    for (id, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
    let added = (specialIds.union(addedIds)).sorted().map { id -> [String: Any] in
      ["id": id, "content": tokens[id], "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": specialIds.contains(id)]
    }
    let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
    let pre: [String: Any]
    switch preTokenizer {
    case .gpt2: pre = byteLevel
    case .gpt2IndividualDigits: pre = ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel]]
    case .llama3, .qwen2:
      pre = ["type": "Sequence", "pretokenizers": [["type": "Split", "pattern": ["Regex": preTokenizer.splitPattern!], "behavior": "Isolated", "invert": false],
                                                   ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false]]]
    }
    var single: [[String: Any]] = [["Sequence": ["id": "A", "type_id": 0]]]
    var specials: [String: Any] = [:]
    if addsBOS, let bos = bosId {
      single.insert(["SpecialToken": ["id": tokens[bos], "type_id": 0]], at: 0)
      specials[tokens[bos]] = ["id": tokens[bos], "ids": [bos], "tokens": [tokens[bos]]]
    }
    let json: [String: Any] = [
      "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": added, "normalizer": NSNull(), "pre_tokenizer": pre,
      "post_processor": ["type": "TemplateProcessing", "single": single, "pair": single + [["Sequence": ["id": "B", "type_id": 1]]], "special_tokens": specials],
      "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
      "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(), "end_of_word_suffix": NSNull(),
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": mergeList.map { [$0.0, $0.1] }],
    ]
    return try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys, .withoutEscapingSlashes])
  }

  /// tokenizer_config.json: special token names, the chat template, the length limit.
  public func tokenizerConfigJSON() throws -> Data {
    var c: [String: Any] = ["tokenizer_class": "TokenizersBackend", "backend": "tokenizers", "model_max_length": modelMaxLength,
                            "clean_up_tokenization_spaces": false]
    for (key, id) in [("bos_token", bosId), ("eos_token", eosId), ("pad_token", padId), ("unk_token", unkId)] { if let id { c[key] = tokens[id] } }
    if let chatTemplate { c["chat_template"] = chatTemplate }
    return try JSONSerialization.data(withJSONObject: c, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
  }
}
