// What the tools and training code need from any architecture.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

/// A transformer encoder producing hidden states [B, T, C].
public protocol Encoder: Module {
  var hiddenSize: Int { get }
  var maxTokens: Int { get }
  var layerCount: Int { get }
  /// The embedding output and every layer's output, each [B*T, C] (transformers' `hidden_states`).
  func hiddenStates(_ x: TokenBatch, rng: RandomSource?) -> [Tensor]
}

extension Encoder {
  /// Last hidden states [B, T, C].
  public func callAsFunction(_ x: TokenBatch, rng: RandomSource? = nil) -> Tensor {
    hiddenStates(x, rng: rng).last!.reshaped(to: [x.batch, x.tokens, hiddenSize])
  }
}

/// An encoder with a classification head producing logits [B, K].
public protocol SequenceClassifier: Module {
  var numLabels: Int { get }
  var encoderModel: Encoder { get }
  /// Logits [B, K] from the last hidden states [B, T, C].
  func head(_ lastHidden: Tensor, batch: TokenBatch, rng: RandomSource?) -> Tensor
  func load(from file: SafeTensorsFile) throws -> LoadReport
}

extension SequenceClassifier {
  /// Logits [B, K].
  public func callAsFunction(_ x: TokenBatch, rng: RandomSource? = nil) -> Tensor {
    head(encoderModel(x, rng: rng), batch: x, rng: rng)
  }
}

/// Mean of hidden states [B, T, C] over non-padding tokens (sentence-transformers' mean pooling) -> [B, C].
public func meanPool(_ h: Tensor, mask: [Int], batch: Int, tokens: Int) -> Tensor {
  let c = h.size(-1)
  var weights = [Float](repeating: 0, count: batch * tokens)
  for b in 0..<batch {
    let n = max(1, (0..<tokens).reduce(0) { $0 + mask[b * tokens + $1] })
    for t in 0..<tokens where mask[b * tokens + t] != 0 { weights[b * tokens + t] = 1 / Float(n) }
  }
  let w = Tensor(weights, shape: [batch, 1, tokens])
  return w.matmul(h).reshaped(to: [batch, c])
}

/// Divides each row [B, C] by its L2 norm (sentence-transformers' Normalize; eps 1e-12 as F.normalize).
public func l2Normalized(_ x: Tensor) -> Tensor {
  let norm = (x * x).sum(axis: -1, keepDims: true).unary({ Swift.max($0.squareRoot(), 1e-12) }, { x, y in y > 1e-12 ? 0.5 / y : 0 })
  return x / norm
}
