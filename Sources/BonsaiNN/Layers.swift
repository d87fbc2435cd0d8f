// Layers in PyTorch's parameter layout, so their keys and shapes equal the checkpoint's.
import BonsaiEngine

/// Random initialisation can be deferred while a model is built only to be overwritten by a checkpoint:
/// drawing 110M normal values for MPNet costs seconds and a transient copy of the weights.
public enum ParameterInit {
  nonisolated(unsafe) public private(set) static var isDeferred = false

  /// Builds modules inside `body` with zero weights; call `initialize` on the keys left fresh afterwards.
  public static func deferred<R>(_ body: () throws -> R) rethrows -> R {
    isDeferred = true
    defer { isDeferred = false }
    return try body()
  }

  /// Initialises parameters as transformers' `_init_weights` does: 2-D weights N(0, std), biases 0,
  /// LayerNorm weights 1.
  public static func initialize(_ params: [(key: String, tensor: Tensor)], std: Float, rng: RandomSource) {
    for (key, t) in params {
      if key.hasSuffix(".bias") { t.mutableData.update(repeating: 0, count: t.count) }
      else if key.contains("LayerNorm") { t.mutableData.update(repeating: 1, count: t.count) }
      else { rng.fillNormal(t.mutableData, count: t.count, std: std) }
    }
  }
}

/// y = x W^T + b with W [out, in] (`nn.Linear`).
public final class Linear: Module {
  public var weight: Tensor
  public var bias: Tensor?

  /// Initialised as transformers' BERT does: weights N(0, std), bias zero.
  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, std: Float = 0.02, rng: RandomSource) {
    weight = ParameterInit.isDeferred ? Tensor(zeros: [outFeatures, inFeatures], requiresGrad: true)
      : rng.normalTensor([outFeatures, inFeatures], std: std).requiringGrad()
    self.bias = bias ? Tensor(zeros: [outFeatures], requiresGrad: true) : nil
  }

  /// A low-rank adapter added to the output (LoRA), when set.
  public var adapter = AdapterSlot()

  /// x [..., in] -> [..., out]
  public func callAsFunction(_ x: Tensor) -> Tensor { withAdapter(x.linear(weight: weight, bias: bias), input: x) }

  /// x through several layers that share it as input (q, k, v; gate, up): one parallel region when
  /// decoding a few rows without gradient (`Tensor.linearProducts`), else one product each.
  public static func outputs(_ x: Tensor, _ layers: [Linear]) -> [Tensor] {
    zip(layers, Tensor.linearProducts(x, layers.map { ($0.weight, $0.bias) })).map { $0.withAdapter($1, input: x) }
  }

  func withAdapter(_ y: Tensor, input x: Tensor) -> Tensor {
    if let lora = adapter.lora { return y + lora(x) }
    return y
  }

  /// gelu(x) W^T + b, fused when there is no adapter.
  public func geluThen(_ x: Tensor) -> Tensor {
    adapter.lora == nil ? x.geluLinear(weight: weight, bias: bias) : self(x.gelu())
  }
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
    weight = ParameterInit.isDeferred ? Tensor(zeros: [count, size], requiresGrad: true)
      : rng.normalTensor([count, size], std: std).requiringGrad()
  }

  /// ids (N) -> [N, size]
  public func callAsFunction(_ ids: [Int]) -> Tensor { Tensor.embedding(weight, ids: ids) }
}

/// Root-mean-square normalisation over the last axis (LLaMA's `LlamaRMSNorm`; key `weight`).
public final class RMSNorm: Module {
  public var weight: Tensor
  public let eps: Float

  public init(_ size: Int, eps: Float) {
    weight = Tensor(repeating: 1, shape: [size]).requiringGrad()
    self.eps = eps
  }

  public func callAsFunction(_ x: Tensor) -> Tensor { x.rmsNorm(weight: weight, eps: eps) }
}
