// Named data sets for decoders, derived from the classification corpora once they are fetched (JSONL with
// prompt + completion, in the corpora's own order, so that a decoder and an encoder share a split):
// `bbc-headlines` (each BBC article's body -> its title, the first line of its file), and instruction
// versions of `polarity` and `tweets` (the text -> its label word).
import Foundation

extension Assets {
  /// Decoder data sets and the corpus each comes from.
  static let derivedData = ["bbc-headlines": "bbc", "polarity-instruct": "polarity", "tweets-instruct": "tweets"]

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
    let tmp = dst.deletingLastPathComponent().appendingPathComponent(".\(name).tmp-\(getpid())")
    try Data(lines.joined(separator: "\n").utf8).write(to: tmp)
    try place(tmp, at: dst)
    log("wrote \(lines.count) examples to \(dst.path)")
  }
}
