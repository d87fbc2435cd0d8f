// A BERT-family tokenizer read from a Hugging Face `tokenizer.json`: added-token splitting,
// BertNormalizer, BertPreTokenizer, WordPiece, and the template (BERT) or RoBERTa (MPNet)
// post-processor, with longest-first truncation and padding as `tokenizers` does them.
import Foundation

/// Token ids of one text or text pair, ready for a model.
public struct Encoding: Equatable, Sendable {
  public var ids: [Int]
  public var typeIds: [Int]
  public var attentionMask: [Int]
}

/// How special tokens frame one or two sequences.
public enum PostProcessor: Sendable {
  /// [CLS] A [SEP] (B [SEP]) with type ids 0 for A, 1 for B (BERT's TemplateProcessing / BertProcessing).
  case bert(cls: Int, sep: Int)
  /// <s> A </s> (</s> B </s>) with type ids all 0 (RobertaProcessing, used by MPNet).
  case roberta(cls: Int, sep: Int)

  func addedCount(pair: Bool) -> Int {
    switch self {
    case .bert: return pair ? 3 : 2
    case .roberta: return pair ? 4 : 2
    }
  }
}

/// A WordPiece tokenizer equal in output to Hugging Face `tokenizers` for BERT and MPNet.
public final class WordPieceTokenizer: @unchecked Sendable {
  public let normalizer: BertNormalizer
  public let postProcessor: PostProcessor
  public let padId: Int
  public let unkId: Int
  /// Largest sequence length the model accepts (from tokenizer_config.json's model_max_length, else 512).
  public var modelMaxLength: Int
  let vocab: [ScalarKey: Int]
  let continuing: [Unicode.Scalar]
  let maxInputChars: Int
  /// Added tokens matched on the raw text (normalized == false), longest first, and on normalized text.
  let rawAdded: [(content: [Unicode.Scalar], id: Int, lstrip: Bool, rstrip: Bool)]
  let normalizedAdded: [(content: [Unicode.Scalar], id: Int, lstrip: Bool, rstrip: Bool)]
  /// Id to token string.
  public let idToToken: [Int: String]

  /// Loads `tokenizer.json` from a model folder (or the file itself).
  public convenience init(contentsOf url: URL) throws {
    var file = url
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir), isDir.boolValue {
      file = url.appendingPathComponent("tokenizer.json")
    }
    guard let data = FileManager.default.contents(atPath: file.path) else {
      throw TokenizerError.unreadable(path: file.path, reason: "file not found")
    }
    var maxLength = 512
    let cfg = file.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
    if let d = FileManager.default.contents(atPath: cfg.path),
       let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
       let m = obj["model_max_length"] as? Int, m > 0, m < 1_000_000 { maxLength = m }
    try self.init(json: data, path: file.path, modelMaxLength: maxLength)
  }

  public init(json data: Data, path: String, modelMaxLength: Int = 512) throws {
    guard let root = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw TokenizerError.unreadable(path: path, reason: "not a JSON object")
    }
    guard let model = root["model"] as? [String: Any] else { throw TokenizerError.unsupported(path: path, key: "model", value: "missing") }
    let type = model["type"] as? String ?? "?"
    guard type == "WordPiece" else { throw TokenizerError.unsupported(path: path, key: "model.type", value: type) }
    guard let v = model["vocab"] as? [String: Int] else { throw TokenizerError.unsupported(path: path, key: "model.vocab", value: "missing") }
    var vocab: [ScalarKey: Int] = [:]
    var inverse: [Int: String] = [:]
    for (tok, id) in v { vocab[ScalarKey(Array(tok.unicodeScalars))] = id; inverse[id] = tok }
    continuing = Array(((model["continuing_subword_prefix"] as? String) ?? "##").unicodeScalars)
    maxInputChars = model["max_input_chars_per_word"] as? Int ?? 100
    let unk = model["unk_token"] as? String ?? "[UNK]"
    guard let unkId = vocab[ScalarKey(Array(unk.unicodeScalars))] else { throw TokenizerError.missingToken(path: path, token: unk) }
    self.unkId = unkId

    if let n = root["normalizer"] as? [String: Any] {
      let t = n["type"] as? String ?? "?"
      guard t == "BertNormalizer" else { throw TokenizerError.unsupported(path: path, key: "normalizer.type", value: t) }
      normalizer = BertNormalizer(cleanText: n["clean_text"] as? Bool ?? true, handleChineseChars: n["handle_chinese_chars"] as? Bool ?? true,
                                  stripAccents: n["strip_accents"] as? Bool, lowercase: n["lowercase"] as? Bool ?? true)
    } else {
      normalizer = BertNormalizer(cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)
    }
    if let p = root["pre_tokenizer"] as? [String: Any] {
      let t = p["type"] as? String ?? "?"
      guard t == "BertPreTokenizer" else { throw TokenizerError.unsupported(path: path, key: "pre_tokenizer.type", value: t) }
    }
    var added: [(Int, String, Bool, Bool, Bool)] = []
    for a in root["added_tokens"] as? [[String: Any]] ?? [] {
      guard let id = a["id"] as? Int, let content = a["content"] as? String else { continue }
      added.append((id, content, a["normalized"] as? Bool ?? false, a["lstrip"] as? Bool ?? false, a["rstrip"] as? Bool ?? false))
      inverse[id] = content
    }
    idToToken = inverse
    func tokenId(_ s: String) throws -> Int {
      if let a = added.first(where: { $0.1 == s }) { return a.0 }
      if let id = vocab[ScalarKey(Array(s.unicodeScalars))] { return id }
      throw TokenizerError.missingToken(path: path, token: s)
    }
    let pp = root["post_processor"] as? [String: Any]
    switch pp?["type"] as? String {
    case "TemplateProcessing":
      let specials = pp?["special_tokens"] as? [String: Any] ?? [:]
      func special(_ name: String) throws -> Int {
        if let s = specials[name] as? [String: Any], let ids = s["ids"] as? [Int], let id = ids.first { return id }
        return try tokenId(name)
      }
      postProcessor = .bert(cls: try special("[CLS]"), sep: try special("[SEP]"))
    case "BertProcessing":
      let sep = pp?["sep"] as? [Any], cls = pp?["cls"] as? [Any]
      postProcessor = .bert(cls: cls?.last as? Int ?? 101, sep: sep?.last as? Int ?? 102)
    case "RobertaProcessing":
      let sep = pp?["sep"] as? [Any], cls = pp?["cls"] as? [Any]
      postProcessor = .roberta(cls: cls?.last as? Int ?? 0, sep: sep?.last as? Int ?? 2)
    case let other:
      throw TokenizerError.unsupported(path: path, key: "post_processor.type", value: other ?? "none")
    }
    if let pad = root["padding"] as? [String: Any], let id = pad["pad_id"] as? Int { padId = id }
    else { padId = (try? tokenId("[PAD]")) ?? (try? tokenId("<pad>")) ?? 0 }
    let sorted = added.sorted { $0.1.unicodeScalars.count > $1.1.unicodeScalars.count }
    rawAdded = sorted.filter { !$0.2 }.map { (Array($0.1.unicodeScalars), $0.0, $0.3, $0.4) }
    normalizedAdded = sorted.filter { $0.2 }.map { (Array($0.1.unicodeScalars), $0.0, $0.3, $0.4) }
    self.vocab = vocab
    self.modelMaxLength = modelMaxLength
  }

  /// Number of ids (largest id + 1).
  public var vocabularySize: Int { (idToToken.keys.max() ?? -1) + 1 }

  /// Ids of one text without special tokens.
  public func tokenize(_ text: String) -> [Int] {
    var ids: [Int] = []
    for (piece, special) in split(Array(text.unicodeScalars), on: rawAdded) {
      if let special { ids.append(special); continue }
      for (p2, s2) in split(normalizer.normalize(piece), on: normalizedAdded) {
        if let s2 { ids.append(s2); continue }
        for word in bertPreTokenize(p2) { wordPiece(word, into: &ids) }
      }
    }
    return ids
  }

  /// Encodes a text or a pair with special tokens, truncated (longest first) to `maxLength`.
  public func encode(_ text: String, pair: String? = nil, maxLength: Int? = nil) -> Encoding {
    var a = tokenize(text)
    var b = pair.map(tokenize)
    let limit = maxLength ?? modelMaxLength
    let budget = max(0, limit - postProcessor.addedCount(pair: b != nil))
    if var bb = b {
      if a.count + bb.count > budget {
        var n1 = a.count, n2 = bb.count
        let swap = n1 > n2
        if swap { swap2(&n1, &n2) }
        n2 = n1 > budget ? n1 : max(n1, budget - n1)
        if n1 + n2 > budget { n1 = budget / 2; n2 = n1 + budget % 2 }
        if swap { swap2(&n1, &n2) }
        a = Array(a.prefix(n1)); bb = Array(bb.prefix(n2))
      }
      b = bb
    } else if a.count > budget {
      a = Array(a.prefix(budget))
    }
    var ids: [Int], types: [Int]
    switch postProcessor {
    case let .bert(cls, sep):
      ids = [cls] + a + [sep]; types = [Int](repeating: 0, count: ids.count)
      if let b { ids += b + [sep]; types += [Int](repeating: 1, count: b.count + 1) }
    case let .roberta(cls, sep):
      ids = [cls] + a + [sep]
      if let b { ids += [sep] + b + [sep] }
      types = [Int](repeating: 0, count: ids.count)
    }
    return Encoding(ids: ids, typeIds: types, attentionMask: [Int](repeating: 1, count: ids.count))
  }

  /// Pads encodings on the right to the longest (or to `length`), with mask 0 on padding.
  public func pad(_ encodings: [Encoding], to length: Int? = nil) -> [Encoding] {
    let target = length ?? encodings.map(\.ids.count).max() ?? 0
    return encodings.map { e in
      let n = max(0, target - e.ids.count)
      return Encoding(ids: e.ids + [Int](repeating: padId, count: n), typeIds: e.typeIds + [Int](repeating: 0, count: n),
                      attentionMask: e.attentionMask + [Int](repeating: 0, count: n))
    }
  }

  // MARK: internals

  private func wordPiece(_ word: [Unicode.Scalar], into ids: inout [Int]) {
    if word.count > maxInputChars { ids.append(unkId); return }
    var pieces: [Int] = []
    var start = 0
    while start < word.count {
      var end = word.count
      var found: Int? = nil
      while start < end {
        let sub = start > 0 ? continuing + word[start..<end] : Array(word[start..<end])
        if let id = vocab[ScalarKey(sub)] { found = id; break }
        end -= 1
      }
      guard let id = found else { ids.append(unkId); return }
      pieces.append(id)
      start = end
    }
    ids.append(contentsOf: pieces)
  }

  /// Splits `s` around occurrences of added tokens (leftmost, longest first); lstrip/rstrip eat spaces.
  private func split(_ s: [Unicode.Scalar], on tokens: [(content: [Unicode.Scalar], id: Int, lstrip: Bool, rstrip: Bool)]) -> [([Unicode.Scalar], Int?)] {
    if tokens.isEmpty || s.isEmpty { return [(s, nil)] }
    var out: [([Unicode.Scalar], Int?)] = []
    var pending: [Unicode.Scalar] = []
    var i = 0
    outer: while i < s.count {
      for t in tokens where !t.content.isEmpty && i + t.content.count <= s.count && s[i] == t.content[0] {
        if Array(s[i..<(i + t.content.count)]) == t.content {
          if t.lstrip { while let last = pending.last, isBertWhitespace(last) { pending.removeLast() } }
          if !pending.isEmpty { out.append((pending, nil)); pending = [] }
          out.append(([], t.id))
          i += t.content.count
          if t.rstrip { while i < s.count, isBertWhitespace(s[i]) { i += 1 } }
          continue outer
        }
      }
      pending.append(s[i])
      i += 1
    }
    if !pending.isEmpty { out.append((pending, nil)) }
    return out
  }
}

@inline(__always) func swap2(_ a: inout Int, _ b: inout Int) { let t = a; a = b; b = t }

/// Vocabulary key compared by code points, not by canonical equivalence as `String` would.
struct ScalarKey: Hashable {
  let values: [UInt32]
  init(_ s: [Unicode.Scalar]) { values = s.map(\.value) }
  init<S: Sequence>(_ s: S) where S.Element == Unicode.Scalar { values = s.map(\.value) }
}
