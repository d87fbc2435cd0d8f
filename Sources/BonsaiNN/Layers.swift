// Layers in PyTorch's parameter layout, so their keys and shapes equal the checkpoint's.
import BonsaiEngine

/// Random initialisation can be deferred while a model is built only to be overwritten by a checkpoint:
/// drawing 110M normal values for MPNet costs seconds and a transient copy of the weights.
public enum ParameterInit {
  nonisolated(unsafe) public private(set) static var isDeferred = false
  /// True while building modules whose Linear and Embedding weights will be packed (or allocated) by the loader.
  nonisolated(unsafe) public private(set) static var weightsArePlaceholders = false

  /// Builds modules inside `body` with zero weights; call `initialize` on the keys left fresh afterwards.
  public static func deferred<R>(_ body: () throws -> R) rethrows -> R {
    isDeferred = true
    defer { isDeferred = false }
    return try body()
  }

  /// Builds modules inside `body` with empty Linear and Embedding weights, for a loader that packs them
  /// (`pack`) or allocates them (`allocateWeight`); other parameters are zeros, as in `deferred`.
  public static func placeholders<R>(_ body: () throws -> R) rethrows -> R {
    isDeferred = true; weightsArePlaceholders = true
    defer { isDeferred = false; weightsArePlaceholders = false }
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
public final class Linear: Module, PackedWeightHolder {
  public var weight: Tensor
  public var bias: Tensor?
  public let inFeatures: Int, outFeatures: Int
  /// The frozen weight in a GGUF block format, multiplied where it lies; `weight` is then an empty placeholder.
  public private(set) var _packed: PackedMatrix?

  /// Initialised as transformers' BERT does: weights N(0, std), bias zero.
  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, std: Float = 0.02, rng: RandomSource) {
    self.inFeatures = inFeatures; self.outFeatures = outFeatures
    weight = ParameterInit.weightsArePlaceholders ? Tensor(zeros: [0])
      : ParameterInit.isDeferred ? Tensor(zeros: [outFeatures, inFeatures], requiresGrad: true)
      : rng.normalTensor([outFeatures, inFeatures], std: std).requiringGrad()
    self.bias = bias ? Tensor(zeros: [outFeatures], requiresGrad: true) : nil
  }

  /// A low-rank adapter added to the output (LoRA), when set.
  public var adapter = AdapterSlot()

  public var packedWeight: PackedMatrix? { _packed }

  /// Keeps the weight as `matrix` [out, in] (frozen), dropping any fp32 copy.
  public func pack(_ matrix: PackedMatrix) {
    precondition(matrix.rows == outFeatures && matrix.columns == inFeatures,
                 "Linear.pack: [\(matrix.rows), \(matrix.columns)] for a layer [\(outFeatures), \(inFeatures)]")
    _packed = matrix
    weight = Tensor(zeros: [0])
  }

  /// An fp32 weight [out, in] for a layer built with placeholder weights and not packed.
  public func allocateWeight() { weight = Tensor(zeros: [outFeatures, inFeatures], requiresGrad: true) }

  /// x [..., in] -> [..., out]
  public func callAsFunction(_ x: Tensor) -> Tensor { withAdapter(product(x), input: x) }

  /// x [..., in] -> [..., out] when no backward step reads the output's values (it only goes into sums, as
  /// a residual block's last projection does): a checkpointed block keeping its products does not keep
  /// this one (`Tensor.unreadByBackward`).
  public func callAsFunction(_ x: Tensor, outputOnlySummed: Bool) -> Tensor {
    outputOnlySummed ? withAdapter(Tensor.unreadByBackward { product(x) }, input: x) : self(x)
  }

  func product(_ x: Tensor) -> Tensor {
    if let p = _packed { return x.linear(packed: p, bias: bias) }
    return x.linear(weight: weight, bias: bias)
  }

  /// x through several layers that share it as input (q, k, v; gate, up): one parallel region when
  /// decoding a few rows without gradient (`Tensor.linearProducts`), else one product each.
  public static func outputs(_ x: Tensor, _ layers: [Linear]) -> [Tensor] {
    let packed = layers.compactMap(\._packed)
    let ys: [Tensor]
    if packed.isEmpty { ys = Tensor.linearProducts(x, layers.map { ($0.weight, $0.bias) }) }
    else if packed.count == layers.count { ys = Tensor.linearProducts(x, packed: zip(packed, layers).map { ($0, $1.bias) }) }
    else { ys = layers.map { $0.product(x) } }
    return zip(layers, ys).map { $0.withAdapter($1, input: x) }
  }

  func withAdapter(_ y: Tensor, input x: Tensor) -> Tensor {
    if let lora = adapter.lora { return y + lora(x) }
    return y
  }

  /// gelu(x) W^T + b, fused when there is no adapter and the weight is fp32.
  public func geluThen(_ x: Tensor) -> Tensor {
    adapter.lora == nil && _packed == nil ? x.geluLinear(weight: weight, bias: bias) : self(x.gelu())
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
public final class Embedding: Module, PackedWeightHolder {
  public var weight: Tensor
  public let count: Int, size: Int
  /// The frozen table in a GGUF block format, read where it lies; `weight` is then an empty placeholder.
  public private(set) var _packed: PackedMatrix?

  public init(_ count: Int, _ size: Int, std: Float = 0.02, rng: RandomSource) {
    self.count = count; self.size = size
    weight = ParameterInit.weightsArePlaceholders ? Tensor(zeros: [0])
      : ParameterInit.isDeferred ? Tensor(zeros: [count, size], requiresGrad: true)
      : rng.normalTensor([count, size], std: std).requiringGrad()
  }

  public var packedWeight: PackedMatrix? { _packed }

  /// Keeps the table as `matrix` [count, size] (frozen), dropping any fp32 copy.
  public func pack(_ matrix: PackedMatrix) {
    precondition(matrix.rows == count && matrix.columns == size, "Embedding.pack: [\(matrix.rows), \(matrix.columns)] for a table [\(count), \(size)]")
    _packed = matrix
    weight = Tensor(zeros: [0])
  }

  /// An fp32 table for an embedding built with a placeholder and not packed.
  public func allocateWeight() { weight = Tensor(zeros: [count, size], requiresGrad: true) }

  /// ids (N) -> [N, size]
  public func callAsFunction(_ ids: [Int]) -> Tensor {
    _packed.map { Tensor.embedding($0, ids: ids) } ?? Tensor.embedding(weight, ids: ids)
  }

  /// h [N, size] -> h W^T [N, count]: the table as a tied output layer.
  public func logits(_ h: Tensor) -> Tensor {
    _packed.map { h.linear(packed: $0, bias: nil) } ?? h.linear(weight: weight, bias: nil)
  }
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
