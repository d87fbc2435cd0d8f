import Foundation

/// A tokenizer file that cannot be used, named with its path and the offending key.
public enum TokenizerError: LocalizedError, Equatable {
  case unreadable(path: String, reason: String)
  case unsupported(path: String, key: String, value: String)
  case missingToken(path: String, token: String)

  public var errorDescription: String? {
    switch self {
    case let .unreadable(path, reason): return "\(path): cannot read tokenizer: \(reason)"
    case let .unsupported(path, key, value): return "\(path): unsupported \(key) '\(value)' (Bonsai supports WordPiece tokenizers as BERT and MPNet use, and GPT-2-style byte-level BPE)"
    case let .missingToken(path, token): return "\(path): token '\(token)' is not in the vocabulary"
    }
  }
}
