// Low-rank adapters (Hu et al. 2021; PEFT's `LoraLayer`): y = x W^T + b + (alpha / r) * (x A^T) B^T with
// A [r, in] ~ kaiming-uniform(a = sqrt 5) = U(-1/sqrt(in), 1/sqrt(in)) and B [out, r] = 0, so training
// starts from the base model. The base weight is frozen; merging adds (alpha / r) * B A into it.
import BonsaiEngine

public final class LoRA {
  public let A: Tensor
  public let B: Tensor
  public let rank: Int
  public let alpha: Float
  public var scale: Float { alpha / Float(rank) }

  public init(inFeatures: Int, outFeatures: Int, rank: Int, alpha: Float, rng: RandomSource) {
    self.rank = rank; self.alpha = alpha
    let bound = 1 / Float(inFeatures).squareRoot()
    let key = rng.nextStream()
    A = Tensor((0..<(rank * inFeatures)).map { (RandomSource.uniform(key, $0) * 2 - 1) * bound }, shape: [rank, inFeatures]).requiringGrad()
    B = Tensor(zeros: [outFeatures, rank], requiresGrad: true)
  }

  /// The adapter's contribution for x [..., in].
  public func callAsFunction(_ x: Tensor) -> Tensor {
    x.linear(weight: A, bias: nil).linear(weight: B, bias: nil).scaled(by: scale)
  }

  /// W + scale * B A, a new tensor (the base weight is left as it is).
  public func merged(into weight: Tensor) -> Tensor {
    withoutGrad {
      let delta = B.matmul(A)
      let out = Tensor(uninitialized: weight.shape)
      let w = weight.data, d = delta.data, o = out.mutableData, s = scale
      for i in 0..<weight.count { o[i] = w[i] + s * d[i] }
      return out
    }
  }
}

/// Where a Linear keeps an adapter; not a Tensor or Module, so the parameter tree (checkpoint keys) ignores it.
public struct AdapterSlot {
  public var lora: LoRA?
  public init() {}
}

extension Module {
  /// Every Linear in the tree with its dotted key (the prefix of its `weight`).
  public func namedLinears(prefix: String = "") -> [(key: String, linear: Linear)] {
    var out: [(String, Linear)] = []
    walkModules(prefix: prefix) { key, m in if let l = m as? Linear { out.append((key, l)) } }
    return out
  }
}
