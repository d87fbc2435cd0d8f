// A padded batch of token ids, the input of every encoder.
import BonsaiTokenizers

/// B sequences of T tokens (right-padded), flattened row-major.
public struct TokenBatch: Sendable {
  public let batch: Int
  public let tokens: Int
  /// [B*T] token ids
  public let ids: [Int]
  /// [B*T] segment ids (0 for single texts)
  public let typeIds: [Int]
  /// [B*T] 1 for real tokens, 0 for padding
  public let attentionMask: [Int]

  public init(batch: Int, tokens: Int, ids: [Int], typeIds: [Int]? = nil, attentionMask: [Int]? = nil) {
    precondition(ids.count == batch * tokens, "TokenBatch: \(ids.count) ids for \(batch) x \(tokens)")
    self.batch = batch; self.tokens = tokens; self.ids = ids
    self.typeIds = typeIds ?? [Int](repeating: 0, count: ids.count)
    self.attentionMask = attentionMask ?? [Int](repeating: 1, count: ids.count)
  }

  /// Pads `encodings` to the longest (or to `length`) and stacks them.
  public init(_ encodings: [Encoding], tokenizer: WordPieceTokenizer, length: Int? = nil) {
    let padded = tokenizer.pad(encodings, to: length)
    self.init(batch: padded.count, tokens: padded.first?.ids.count ?? 0, ids: padded.flatMap(\.ids),
              typeIds: padded.flatMap(\.typeIds), attentionMask: padded.flatMap(\.attentionMask))
  }

  /// Additive key mask for attention: 0 for tokens, the most negative float for padding (as transformers).
  public var additiveMask: [Float] { attentionMask.map { $0 == 0 ? -Float.greatestFiniteMagnitude : 0 } }
}
