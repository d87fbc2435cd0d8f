// Byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen2), as `tokenizers` runs it: special tokens matched whole
// in the raw text first (leftmost, longest); every other span cut into words by the pre-tokenizer,
// each word's UTF-8 bytes spelled in GPT-2's byte alphabet and merged pair by pair, lowest merge rank
// first (leftmost on ties). Decoding maps the characters back to bytes.
import Foundation

public final class ByteLevelBPETokenizer: @unchecked Sendable {
  /// Token strings by id, in the byte alphabet (special tokens as they are written).
  public let tokens: [String]
  public let preTokenizer: ByteLevelPreTokenizer
  /// Control tokens: matched whole in text before pre-tokenisation, left out by `decode(skipSpecialTokens:)`.
  public let specialIds: Set<Int>
  public let bosId: Int?, eosId: Int?, padId: Int?, unkId: Int?
  /// Whether `encode` puts bos in front (tokenizer.ggml.add_bos_token; the post-processor's template).
  public var addsBOS: Bool
  /// The model's Jinja chat template, when it has one.
  public var chatTemplate: String?
  /// The longest input the model was trained for.
  public var modelMaxLength: Int

  let vocab: [String: Int]
  /// The merges in rank order, as given (for writing tokenizer.json back).
  public let mergeList: [(String, String)]
  /// User-defined tokens matched whole but not special.
  public let addedIds: Set<Int>
  /// (left id << 32 | right id) -> (rank, merged id).
  let merges: [UInt64: (rank: Int32, id: Int32)]
  /// The token of each byte's character, -1 where the vocabulary has none.
  let byteIds: [Int32]
  let specialsByFirstScalar: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]]
  private var cache: [[UInt8]: [Int]] = [:]
  private let lock = NSLock()

  /// `merges` are pairs of token strings, highest priority first; `special` (control) and `added`
  /// (user-defined) tokens are matched whole in the text.
  public init(tokens: [String], merges: [(String, String)], special: [Int], added: [Int] = [], preTokenizer: ByteLevelPreTokenizer, bosId: Int? = nil,
              eosId: Int? = nil, padId: Int? = nil, unkId: Int? = nil, addsBOS: Bool = false, chatTemplate: String? = nil,
              modelMaxLength: Int = 8192, source: String) throws {
    self.tokens = tokens; self.preTokenizer = preTokenizer; self.bosId = bosId; self.eosId = eosId; self.padId = padId; self.unkId = unkId
    self.addsBOS = addsBOS; self.chatTemplate = chatTemplate; self.modelMaxLength = modelMaxLength
    mergeList = merges; addedIds = Set(added)
    var vocab: [String: Int] = [:]
    for (id, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = id }
    self.vocab = vocab
    // a byte the vocabulary lacks is dropped, as `tokenizers`' BPE does without an unknown token
    // (SmolLM2 has no token for 0x04, for one)
    self.byteIds = (0..<256).map { b in vocab[String(Character(byteToUnicode[b]))].map(Int32.init) ?? -1 }
    var table: [UInt64: (rank: Int32, id: Int32)] = [:]
    table.reserveCapacity(merges.count)
    for (rank, (a, b)) in merges.enumerated() {
      guard let l = vocab[a], let r = vocab[b] else { throw TokenizerError.missingToken(path: source, token: "\(a) (merge \(rank): '\(a) \(b)')") }
      guard let m = vocab[a + b] else { throw TokenizerError.missingToken(path: source, token: "\(a + b) (the result of merge \(rank))") }
      let key = UInt64(l) << 32 | UInt64(r)
      if table[key] == nil { table[key] = (Int32(rank), Int32(m)) }
    }
    self.merges = table
    specialIds = Set(special)
    var byFirst: [Unicode.Scalar: [(scalars: [Unicode.Scalar], id: Int)]] = [:]
    for id in special + added where !tokens[id].isEmpty {
      let scalars = Array(tokens[id].unicodeScalars)
      byFirst[scalars[0], default: []].append((scalars, id))
    }
    specialsByFirstScalar = byFirst.mapValues { $0.sorted { $0.scalars.count > $1.scalars.count } }
  }

  public var vocabularySize: Int { tokens.count }
  /// Whether every byte of `text` has a token, so that `decode(encode(text)) == text` (without special tokens).
  public func coversBytes(of text: String) -> Bool { text.utf8.allSatisfy { byteIds[Int($0)] >= 0 } }
  public func id(of token: String) -> Int? { vocab[token] }

  /// Token ids of `text`; with `addSpecialTokens`, bos first when the tokenizer adds it.
  public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
    let s = Array(text.unicodeScalars)
    var out: [Int] = addSpecialTokens && addsBOS ? bosId.map { [$0] } ?? [] : []
    var start = 0, i = 0
    while i < s.count {
      if let (length, id) = special(at: i, in: s) {
        if start < i { encodeSpan(s, start..<i, into: &out) }
        out.append(id); i += length; start = i
      } else {
        i += 1
      }
    }
    if start < s.count { encodeSpan(s, start..<s.count, into: &out) }
    return out
  }

  /// The longest special token starting at `i`.
  func special(at i: Int, in s: [Unicode.Scalar]) -> (Int, Int)? {
    guard let candidates = specialsByFirstScalar[s[i]] else { return nil }
    for c in candidates where i + c.scalars.count <= s.count {
      if s[i..<(i + c.scalars.count)].elementsEqual(c.scalars) { return (c.scalars.count, c.id) }
    }
    return nil
  }

  func encodeSpan(_ s: [Unicode.Scalar], _ span: Range<Int>, into out: inout [Int]) {
    let text = Array(s[span])
    for word in preTokenizer.split(text) {
      // keyed by bytes: Swift's String equality is canonical equivalence (U+2001 == U+2003)
      var bytes: [UInt8] = []
      for c in text[word] { bytes += UTF8.encode(c)! }
      lock.lock(); let hit = cache[bytes]; lock.unlock()
      if let hit { out += hit; continue }
      let ids = bpe(bytes)
      if bytes.count <= 64 { lock.lock(); cache[bytes] = ids; lock.unlock() }
      out += ids
    }
  }

  /// Merges a word's bytes: the adjacent pair of lowest rank (leftmost on ties) until none merges.
  func bpe(_ bytes: [UInt8]) -> [Int] {
    var symbols = bytes.map { byteIds[Int($0)] }.filter { $0 >= 0 }
    while symbols.count > 1 {
      var best: (rank: Int32, at: Int, id: Int32)? = nil
      for k in 0..<(symbols.count - 1) {
        if let m = merges[UInt64(symbols[k]) << 32 | UInt64(symbols[k + 1])], m.rank < (best?.rank ?? .max) { best = (m.rank, k, m.id) }
      }
      guard let best else { break }
      symbols[best.at] = best.id
      symbols.remove(at: best.at + 1)
    }
    return symbols.map(Int.init)
  }

  /// Text of `ids`: byte-level characters back to bytes, then UTF-8 (invalid sequences as U+FFFD).
  public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
    var bytes: [UInt8] = [], text = ""
    for id in ids where id >= 0 && id < tokens.count {
      if specialIds.contains(id) {
        if skipSpecialTokens { continue }
        text += String(decoding: bytes, as: UTF8.self); bytes = []
        text += tokens[id]
        continue
      }
      for c in tokens[id].unicodeScalars {
        if let b = unicodeToByte[c] { bytes.append(b) } else { bytes += Array(String(c).utf8) }
      }
    }
    return text + String(decoding: bytes, as: UTF8.self)
  }
}

let unicodeToByte: [Unicode.Scalar: UInt8] = Dictionary(uniqueKeysWithValues: byteToUnicode.enumerated().map { ($1, UInt8($0)) })
