import Foundation

/// A checkpoint or config problem, naming the file and the key.
public enum CheckpointError: LocalizedError, Equatable {
  case unreadable(path: String, reason: String)
  case corrupt(path: String, reason: String)
  case badTensor(path: String, key: String, reason: String)
  case missingKey(path: String, key: String)
  case unexpectedKey(path: String, key: String)
  case shapeMismatch(path: String, key: String, expected: [Int], actual: [Int])
  case unsupportedConfig(path: String, key: String, value: String)
  case corruptGGUF(path: String, reason: String)

  public var errorDescription: String? {
    switch self {
    case let .unreadable(path, reason): return "\(path): \(reason)"
    case let .corrupt(path, reason): return "\(path): corrupt safetensors file: \(reason)"
    case let .badTensor(path, key, reason): return "\(path): tensor '\(key)': \(reason)"
    case let .missingKey(path, key): return "\(path): missing key '\(key)'"
    case let .unexpectedKey(path, key): return "\(path): unexpected key '\(key)'"
    case let .shapeMismatch(path, key, e, a): return "\(path): key '\(key)' has shape \(a), expected \(e)"
    case let .unsupportedConfig(path, key, value): return "\(path): unsupported \(key) '\(value)'"
    case let .corruptGGUF(path, reason): return "\(path): not a valid GGUF file: \(reason)"
    }
  }
}
