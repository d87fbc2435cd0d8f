// Layers in PyTorch's parameter layout, so their keys and shapes equal the checkpoint's.
import BonsaiEngine

/// y = x W^T + b with W [out, in] (`nn.Linear`).
public final class Linear: Module {
  public var weight: Tensor
  public var bias: Tensor?

  /// Initialised as transformers' BERT does: weights N(0, std), bias zero.
  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, std: Float = 0.02, rng: RandomSource) {
    weight = Tensor(rng.normal(count: inFeatures * outFeatures, std: std), shape: [outFeatures, inFeatures], requiresGrad: true)
    self.bias = bias ? Tensor(zeros: [outFeatures], requiresGrad: true) : nil
  }

  /// x [..., in] -> [..., out]
  public func callAsFunction(_ x: Tensor) -> Tensor { x.linear(weight: weight, bias: bias) }
}

/// Layer normalisation over the last axis (`nn.LayerNorm`; keys `weight`, `bias`).
public final class LayerNorm: Module {
  public var weight: Tensor
  public var bias: Tensor
  public let eps: Float

  public init(_ size: Int, eps: Float) {
    weight = Tensor(repeating: 1, shape: [size]).requiringGrad()
    bias = Tensor(zeros: [size], requiresGrad: true)
    self.eps = eps
  }

  public func callAsFunction(_ x: Tensor) -> Tensor { x.layerNorm(weight: weight, bias: bias, eps: eps) }
}

/// A lookup table (`nn.Embedding`; key `weight`, shape [count, size]).
public final class Embedding: Module {
  public var weight: Tensor

  public init(_ count: Int, _ size: Int, std: Float = 0.02, rng: RandomSource) {
    weight = Tensor(rng.normal(count: count * size, std: std), shape: [count, size], requiresGrad: true)
  }

  /// ids (N) -> [N, size]
  public func callAsFunction(_ ids: [Int]) -> Tensor { Tensor.embedding(weight, ids: ids) }
}
