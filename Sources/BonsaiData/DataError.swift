import Foundation

/// A data problem, naming the file, line, column or label.
public enum DataError: LocalizedError, Equatable {
  case unreadable(path: String, reason: String)
  case malformed(path: String, line: Int, reason: String)
  case missingColumn(path: String, column: String, available: [String])
  case emptyText(path: String, line: Int)
  case empty(path: String)
  case unknownLabel(path: String, line: Int, label: String, known: [String])

  public var errorDescription: String? {
    switch self {
    case let .unreadable(path, reason): return "\(path): \(reason)"
    case let .malformed(path, line, reason): return "\(path): line \(line): \(reason)"
    case let .missingColumn(path, column, available):
      return "\(path): no column '\(column)' (columns: \(available.joined(separator: ", ")))"
    case let .emptyText(path, line): return "\(path): line \(line): empty text"
    case let .empty(path): return "\(path): no examples"
    case let .unknownLabel(path, line, label, known):
      return "\(path): line \(line): label '\(label)' was not seen in training (known: \(known.joined(separator: ", ")))"
    }
  }
}
