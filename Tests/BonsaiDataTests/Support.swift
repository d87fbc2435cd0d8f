// Shared test fixtures: a fresh temporary folder and a tiny, trivially separable data set.
import Foundation

/// A new empty folder under the temporary directory.
func makeTemporaryFolder(_ name: String) throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}

/// `count` labelled texts, pos/neg alternating, written to folder/tiny.csv; returns its path.
func writeTinyCSV(in folder: URL, count: Int = 40) throws -> String {
  var csv = "label,text\n"
  for i in 0..<count { csv += i % 2 == 0 ? "pos,\"a wonderful, delightful film \(i)\"\n" : "neg,\"a dull and boring mess \(i)\"\n" }
  let url = folder.appendingPathComponent("tiny.csv")
  try csv.write(to: url, atomically: true, encoding: .utf8)
  return url.path
}

/// A run's metrics.jsonl without its wall-clock figures (`step_seconds`, and `*_ms` under data parallelism),
/// which are all a resumed run may change: one sorted-key JSON line per record.
func metricsWithoutTimes(_ run: URL) throws -> [String] {
  try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
    var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
    for key in o.keys where key.hasSuffix("_seconds") || key.hasSuffix("_ms") { o[key] = nil }
    return String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
  }
}
