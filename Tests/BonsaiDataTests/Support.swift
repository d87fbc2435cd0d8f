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
