// Reading labelled text: CSV and TSV (RFC 4180 quoting, fields with newlines, UTF-8 BOM), JSONL, and a
// folder with one sub-folder per label (BBC News). Every row keeps the file line it starts on, so errors
// can name it.
import Foundation

/// Rows of named string fields, each with the line it starts on.
public struct Table: Sendable {
  public var columns: [String]
  public var rows: [[String: String]]
  public var lines: [Int]
  public let path: String
}

/// Splits delimited text into records; quoted fields may hold delimiters, quotes ("") and newlines.
public func parseDelimited(_ text: String, delimiter: Unicode.Scalar, path: String) throws -> [(line: Int, fields: [String])] {
  var s = Array(text.unicodeScalars)
  if s.first == "\u{FEFF}" { s.removeFirst() }
  var records: [(Int, [String])] = []
  var row: [String] = [], field = String.UnicodeScalarView(), quoted = false, wasQuoted = false
  var line = 1, rowLine = 1, i = 0
  func endField() { row.append(String(field)); field = .init(); wasQuoted = false }
  while i < s.count {
    let c = s[i]
    if quoted {
      if c == "\"" {
        if i + 1 < s.count && s[i + 1] == "\"" { field.append("\""); i += 1 } else { quoted = false }
      } else {
        if c == "\n" { line += 1 }
        field.append(c)
      }
    } else if c == "\"" && field.isEmpty && !wasQuoted {
      quoted = true; wasQuoted = true
    } else if c == delimiter {
      endField()
    } else if c == "\n" || c == "\r" {
      if c == "\r" && i + 1 < s.count && s[i + 1] == "\n" { i += 1 }
      endField()
      if !(row.count == 1 && row[0].isEmpty) { records.append((rowLine, row)) }
      row = []
      line += 1
      rowLine = line
    } else {
      field.append(c)
    }
    i += 1
  }
  if quoted { throw DataError.malformed(path: path, line: rowLine, reason: "a quoted field is never closed") }
  if !field.isEmpty || !row.isEmpty { endField(); records.append((rowLine, row)) }
  return records
}

/// Reads a CSV/TSV (by extension; `header` says whether the first row names the columns) or JSONL file.
public func readTable(path: String, header: Bool? = nil) throws -> Table {
  guard let data = FileManager.default.contents(atPath: path) else {
    throw DataError.unreadable(path: path, reason: FileManager.default.fileExists(atPath: path) ? "cannot read the file" : "file not found")
  }
  guard let text = String(data: data, encoding: .utf8) else {
    // find the first bad line for the message
    var line = 1
    for chunk in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      if String(data: Data(chunk), encoding: .utf8) == nil { break }
      line += 1
    }
    throw DataError.malformed(path: path, line: line, reason: "not valid UTF-8")
  }
  let ext = (path as NSString).pathExtension.lowercased()
  if ext == "jsonl" || ext == "ndjson" || ext == "json" { return try readJSONL(text, path: path) }
  let records = try parseDelimited(text, delimiter: ext == "tsv" ? "\t" : ",", path: path)
  guard let first = records.first else { throw DataError.empty(path: path) }
  let hasHeader = header ?? looksLikeHeader(first.fields)
  let columns = hasHeader ? first.fields : (0..<first.fields.count).map { "\($0)" }
  var rows: [[String: String]] = [], lines: [Int] = []
  for (line, fields) in records.dropFirst(hasHeader ? 1 : 0) {
    guard fields.count == columns.count else {
      throw DataError.malformed(path: path, line: line, reason: "\(fields.count) fields, the header has \(columns.count)")
    }
    rows.append(Dictionary(zip(columns, fields), uniquingKeysWith: { a, _ in a }))
    lines.append(line)
  }
  if rows.isEmpty { throw DataError.empty(path: path) }
  return Table(columns: columns, rows: rows, lines: lines, path: path)
}

/// A first row is a header when none of its fields is a number and none is long prose.
func looksLikeHeader(_ fields: [String]) -> Bool {
  fields.allSatisfy { f in Double(f) == nil && f.count <= 40 && !f.contains(" ") && !f.isEmpty }
}

func readJSONL(_ text: String, path: String) throws -> Table {
  var rows: [[String: String]] = [], lines: [Int] = []
  var columns: [String] = []
  for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
    var lineText = Substring(raw)
    if n == 0, lineText.unicodeScalars.first == "\u{FEFF}" { lineText = Substring(lineText.unicodeScalars.dropFirst()) }
    if lineText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { continue }
    guard let obj = (try? JSONSerialization.jsonObject(with: Data(lineText.utf8))) as? [String: Any] else {
      throw DataError.malformed(path: path, line: n + 1, reason: "not a JSON object")
    }
    var row: [String: String] = [:]
    for (k, v) in obj {
      switch v {
      case let s as String: row[k] = s
      case let x as NSNumber:
        // Foundation bridges JSON true/false to NSNumber too; its type code tells them apart
        let isBool = String(cString: x.objCType) == "c" && (x.intValue == 0 || x.intValue == 1) && type(of: v) != Int.self
        row[k] = isBool ? (x.boolValue ? "true" : "false") : x.stringValue
      case is NSNull: continue
      default: throw DataError.malformed(path: path, line: n + 1, reason: "field '\(k)' is not a string or number")
      }
      if !columns.contains(k) { columns.append(k) }
    }
    rows.append(row)
    lines.append(n + 1)
  }
  if rows.isEmpty { throw DataError.empty(path: path) }
  return Table(columns: columns, rows: rows, lines: lines, path: path)
}

/// A folder with one sub-folder per label, one text file per example (BBC News layout). An example's "line" (its id in
/// selections, data maps and `--train-subset`) is its 1-based position: label folders, then files, in sorted order.
public func readLabelFolders(path: String) throws -> Table {
  let fm = FileManager.default
  guard let labels = try? fm.contentsOfDirectory(atPath: path) else { throw DataError.unreadable(path: path, reason: "folder not found") }
  var rows: [[String: String]] = [], lines: [Int] = []
  for label in labels.sorted() where !label.hasPrefix(".") {
    let dir = (path as NSString).appendingPathComponent(label)
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { continue }
    for file in (try fm.contentsOfDirectory(atPath: dir)).sorted() where !file.hasPrefix(".") {
      let f = (dir as NSString).appendingPathComponent(file)
      guard let data = fm.contents(atPath: f) else { throw DataError.unreadable(path: f, reason: "cannot read the file") }
      // one BBC article is not valid UTF-8: decode with replacement (the tokenizer drops U+FFFD, as HF does)
      rows.append(["text": String(decoding: data, as: UTF8.self), "label": label, "file": label + "/" + file])
      lines.append(rows.count)
    }
  }
  if rows.isEmpty { throw DataError.empty(path: path) }
  return Table(columns: ["text", "label", "file"], rows: rows, lines: lines, path: path)
}
