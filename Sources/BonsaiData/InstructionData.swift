// Named data sets for decoders, derived from the classification corpora once they are fetched (JSONL with
// prompt + completion, in the corpora's own order, so that a decoder and an encoder share a split):
// `bbc-headlines` (each BBC article's body -> its title, the first line of its file), and instruction
// versions of `polarity` and `tweets` (the text -> its label word). `chitchat` comes from its own package.
import Foundation

extension Assets {
  /// Decoder data sets and the corpus each comes from.
  static let derivedData = ["bbc-headlines": "bbc", "polarity-instruct": "polarity", "tweets-instruct": "tweets", "chitchat": "chitchat"]

  /// chitchat-dataset 0.9.0 (PyPI, MIT): 7,168 two-person conversations, each a list of turns (runs of one
  /// sender's messages, joined by newlines), as chats: the first sender is the user, the second the
  /// assistant, a trailing user turn dropped, a conversation cut before a turn without text; in the order of their ids.
  static func fetchChitchat(into dl: URL, log: (String) -> Void) throws {
    let dst = dataPath("chitchat")
    if FileManager.default.fileExists(atPath: dst.path) { return }
    log("fetching chitchat (PyPI chitchat-dataset 0.9.0)")
    let wheel = try pipDownload("chitchat-dataset==0.9.0", file: "chitchat_dataset-0.9.0-py3-none-any.whl", into: dl,
                                sha256: "7bf89f36645e2d5ec87d53370c8e851b5a688479c7beb7079cb4c87fc5acea3e")
    try unzip(wheel, into: dl.appendingPathComponent("x"))
    let src = dl.appendingPathComponent("x/chitchat_dataset/dataset.json")
    guard let all = try JSONSerialization.jsonObject(with: Data(contentsOf: src)) as? [String: Any] else {
      throw DataError.unreadable(path: src.path, reason: "not a JSON object of conversations")
    }
    var lines: [String] = []
    for id in all.keys.sorted() {
      guard let turns = (all[id] as? [String: Any])?["messages"] as? [[[String: Any]]] else { continue }
      var messages = turns.enumerated().map { i, turn in
        ["role": i % 2 == 0 ? "user" : "assistant", "content": turn.compactMap { $0["text"] as? String }.joined(separator: "\n")]
      }
      // a turn with no text ends the conversation there (the pairs before it are kept)
      if let empty = messages.firstIndex(where: { ($0["content"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).isEmpty }) {
        messages = Array(messages[..<empty])
      }
      if messages.count % 2 == 1 { messages.removeLast() }
      guard !messages.isEmpty else { continue }
      lines.append(String(decoding: try JSONSerialization.data(withJSONObject: ["messages": messages], options: [.sortedKeys]), as: UTF8.self))
    }
    try writeJSONL(lines, to: dst)
    log("wrote \(lines.count) conversations to \(dst.path)")
  }

  /// Writes the derived data set `name` from its corpus (fetched first when missing).
  static func derive(_ name: String, log: (String) -> Void) throws {
    let dst = dataPath(name)
    if FileManager.default.fileExists(atPath: dst.path) { return }
    let source = derivedData[name]!
    try fetch(source, log: log)
    var lines: [String] = []
    func add(_ prompt: String, _ completion: String) throws {
      lines.append(String(decoding: try JSONSerialization.data(withJSONObject: ["prompt": prompt, "completion": completion], options: [.sortedKeys]), as: UTF8.self))
    }
    switch name {
    case "bbc-headlines":
      for row in try readLabelFolders(path: dataPath("bbc").path).rows {
        let text = (row["text"] ?? "").replacingOccurrences(of: "\r\n", with: "\n")
        let parts = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2 else { continue }
        let title = parts[0].trimmingCharacters(in: .whitespaces)
        let body = parts[1].split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "\n")
        try add("Write a headline for this news article.\n\n\(body)\n\nHeadline:", " " + title)
      }
    case "polarity-instruct":
      for e in try Dataset.load(path: dataPath("polarity").path).examples {
        try add("Review: \(e.text)\nSentiment:", e.label == "1" ? " positive" : " negative")
      }
    default:  // tweets-instruct
      for e in try Dataset.load(path: dataPath("tweets").path, columns: ColumnSpec(label: "sentiment")).examples {
        try add("Tweet: \(e.text)\nSentiment:", " " + e.label)
      }
    }
    try writeJSONL(lines, to: dst)
    log("wrote \(lines.count) examples to \(dst.path)")
  }

  /// `lines` as a JSONL file at `dst`, written beside it and renamed into place.
  static func writeJSONL(_ lines: [String], to dst: URL) throws {
    try FileManager.default.createDirectory(at: dst.deletingLastPathComponent(), withIntermediateDirectories: true)
    let written = dst.deletingLastPathComponent().appendingPathComponent(".\(dst.lastPathComponent).part-\(getpid())")
    try Data(lines.joined(separator: "\n").utf8).write(to: written)
    try place(written, at: dst)
  }
}
