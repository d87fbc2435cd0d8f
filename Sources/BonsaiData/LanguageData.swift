// Data for causal language models: plain texts, prompt -> completion pairs, or chats (lists of messages
// with roles), from JSONL (`text`, `prompt` + `completion`, or `messages`) or CSV/TSV (named columns).
// Every example keeps its file line, so that errors and the split can name it.
import Foundation

/// One message of a chat example.
public struct Turn: Codable, Sendable, Equatable {
  public var role: String
  public var content: String
  public init(role: String, content: String) { self.role = role; self.content = content }
}

/// What a causal language model learns from one example.
public enum LanguageExample: Sendable, Equatable {
  /// Every token is a target.
  case text(String)
  /// The completion's tokens are the targets (and the prompt's too with `--train-on all`).
  case completion(prompt: String, completion: String)
  /// An optional system message, then user and assistant turns alternating, ending with the assistant's;
  /// the assistant turns are the targets.
  case chat([Turn])

  /// The text a generation metric compares against: the completion or the last assistant turn.
  public var reference: String? {
    switch self {
    case .text: return nil
    case let .completion(_, c): return c
    case let .chat(turns): return turns.last?.content
    }
  }
}

/// Which fields hold what (nil: `text`, `prompt`, `completion`, `messages`).
public struct LanguageColumns: Sendable, Equatable {
  public var text: String?, prompt: String?, completion: String?
  public init(text: String? = nil, prompt: String? = nil, completion: String? = nil) { self.text = text; self.prompt = prompt; self.completion = completion }
}

/// A causal-LM data file: its examples (one kind throughout) and the line each came from.
public struct LanguageDataset: Sendable {
  public var examples: [LanguageExample]
  public var lines: [Int]
  public let path: String
  /// "text", "completion" or "chat".
  public let format: String

  public init(examples: [LanguageExample], lines: [Int], path: String, format: String) {
    self.examples = examples; self.lines = lines; self.path = path; self.format = format
  }

  /// Reads a JSONL file (each line an object with `messages`, `prompt` + `completion`, or `text`; the first
  /// line decides which, and every line must have it) or a CSV/TSV file (a prompt and a completion column,
  /// or a text column).
  public static func load(path: String, columns: LanguageColumns = LanguageColumns()) throws -> LanguageDataset {
    let ext = (path as NSString).pathExtension.lowercased()
    let data = try ["jsonl", "ndjson", "json"].contains(ext) ? loadJSONL(path: path, columns: columns) : loadTable(path: path, columns: columns)
    guard !data.examples.isEmpty else { throw DataError.empty(path: path) }
    return data
  }

  /// The completion (or last assistant turn) of each example, for a stratified split of label-word data
  /// (nil when the examples have none or too many distinct ones to be labels).
  public var labelWords: [String]? {
    let refs = examples.compactMap(\.reference)
    let distinct = Set(refs).count
    guard refs.count == examples.count, distinct <= LanguageDataset.maxLabelWords, distinct * 10 <= refs.count else { return nil }
    return refs.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
  }
  /// At most this many distinct completions, each seen 10 times on average, make a data set of label words
  /// (stratified like classification).
  public static let maxLabelWords = 100

  static func loadTable(path: String, columns: LanguageColumns) throws -> LanguageDataset {
    let table = try readTable(path: path, header: true)
    func need(_ c: String) throws -> String {
      guard table.columns.contains(c) else { throw DataError.missingColumn(path: path, column: c, available: table.columns) }
      return c
    }
    var examples: [LanguageExample] = []
    if columns.text == nil, let p = columns.prompt ?? (table.columns.contains("prompt") ? "prompt" : nil) {
      let (pc, cc) = (try need(p), try need(columns.completion ?? "completion"))
      for (row, line) in zip(table.rows, table.lines) {
        examples.append(try completion(row[pc] ?? "", row[cc] ?? "", path: path, line: line, field: cc))
      }
      return LanguageDataset(examples: examples, lines: table.lines, path: path, format: "completion")
    }
    let tc = try need(columns.text ?? "text")
    for (row, line) in zip(table.rows, table.lines) { examples.append(try text(row[tc] ?? "", path: path, line: line, field: tc)) }
    return LanguageDataset(examples: examples, lines: table.lines, path: path, format: "text")
  }

  static func loadJSONL(path: String, columns: LanguageColumns) throws -> LanguageDataset {
    guard let data = FileManager.default.contents(atPath: path) else { throw DataError.unreadable(path: path, reason: "file not found") }
    guard let body = String(data: data, encoding: .utf8) else { throw DataError.unreadable(path: path, reason: "not valid UTF-8") }
    var examples: [LanguageExample] = [], lines: [Int] = []
    var format: String?
    let (pf, cf, tf) = (columns.prompt ?? "prompt", columns.completion ?? "completion", columns.text ?? "text")
    for (n, raw) in body.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = n + 1
      var s = Substring(raw)
      if n == 0, s.unicodeScalars.first == "\u{FEFF}" { s = Substring(s.unicodeScalars.dropFirst()) }
      if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { continue }
      guard let obj = (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] else {
        throw DataError.malformed(path: path, line: line, reason: "not a JSON object")
      }
      if format == nil {
        format = obj["messages"] != nil && columns.text == nil && columns.prompt == nil ? "chat"
          : obj[pf] != nil && columns.text == nil ? "completion" : obj[tf] != nil ? "text" : nil
        guard format != nil else {
          throw DataError.malformed(path: path, line: line, reason: "no field '\(tf)', '\(pf)' + '\(cf)' or 'messages' (fields: \(obj.keys.sorted().joined(separator: ", ")))")
        }
      }
      func string(_ key: String) throws -> String {
        guard let v = obj[key] else { throw DataError.malformed(path: path, line: line, reason: "no field '\(key)' (the file's first example has it)") }
        guard let s = v as? String else { throw DataError.malformed(path: path, line: line, reason: "field '\(key)' is not a string") }
        return s
      }
      switch format! {
      case "chat": examples.append(try chat(obj["messages"], path: path, line: line))
      case "completion": examples.append(try completion(try string(pf), try string(cf), path: path, line: line, field: cf))
      default: examples.append(try text(try string(tf), path: path, line: line, field: tf))
      }
      lines.append(line)
    }
    return LanguageDataset(examples: examples, lines: lines, path: path, format: format ?? "text")
  }

  static func text(_ t: String, path: String, line: Int, field: String) throws -> LanguageExample {
    guard !t.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw DataError.malformed(path: path, line: line, reason: "field '\(field)' is empty") }
    return .text(t)
  }

  static func completion(_ p: String, _ c: String, path: String, line: Int, field: String) throws -> LanguageExample {
    guard !c.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
      throw DataError.malformed(path: path, line: line, reason: "field '\(field)' is empty: nothing to learn from")
    }
    return .completion(prompt: p, completion: c)
  }

  /// A `messages` list: objects with `role` (system first if at all, then user and assistant alternating,
  /// ending with assistant) and a non-empty string `content` for the assistant.
  static func chat(_ value: Any?, path: String, line: Int) throws -> LanguageExample {
    func bad(_ reason: String) -> DataError { .malformed(path: path, line: line, reason: "messages: " + reason) }
    guard let list = value as? [Any], !list.isEmpty else { throw bad("not a non-empty list") }
    var turns: [Turn] = []
    for (i, item) in list.enumerated() {
      guard let m = item as? [String: Any], let role = m["role"] as? String else { throw bad("message \(i) has no string 'role'") }
      guard let content = m["content"] as? String else { throw bad("message \(i) has no string 'content'") }
      guard ["system", "user", "assistant"].contains(role) else { throw bad("message \(i) has unknown role '\(role)' (system, user, assistant)") }
      let expected = i == 0 ? (role == "system" ? "system" : "user") : turns.last!.role == "user" ? "assistant" : "user"
      guard role == expected else { throw bad("message \(i) is '\(role)' where '\(expected)' should come (system first, then user and assistant alternating)") }
      if role == "assistant" && content.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw bad("message \(i) (assistant) is empty") }
      turns.append(Turn(role: role, content: content))
    }
    guard turns.last!.role == "assistant" else { throw bad("the last message is '\(turns.last!.role)': a chat must end with the assistant's turn") }
    return .chat(turns)
  }
}
