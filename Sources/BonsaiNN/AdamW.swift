// AdamW as PyTorch's `torch.optim.AdamW` computes it (decoupled weight decay, bias correction).
import BonsaiEngine

/// AdamW with per-parameter state; parameters listed in `noDecay` get no weight decay
/// (transformers excludes biases and LayerNorm weights).
public final class AdamW {
  public var learningRate: Float
  public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
  public private(set) var step = 0
  let params: [Tensor]
  let decays: [Bool]
  var m: [Storage], v: [Storage]

  public init(_ parameters: [(key: String, tensor: Tensor)], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
              eps: Float = 1e-8, weightDecay: Float = 0.0) {
    params = parameters.map(\.tensor)
    decays = parameters.map { !($0.key.hasSuffix(".bias") || $0.key.contains("LayerNorm") || $0.key.contains("layer_norm")) }
    m = params.map { Storage(count: $0.count) }
    v = params.map { Storage(count: $0.count) }
    self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
  }

  /// The parameters this optimizer updates.
  public var parametersWithGradients: [Tensor] { params }

  /// One update from the parameters' gradients (a parameter without gradient is skipped).
  public func update() {
    step += 1
    let bc1 = 1 - Float(Double(beta1).power(step)), bc2 = 1 - Float(Double(beta2).power(step))
    let lr = learningRate, b1 = beta1, b2 = beta2, e = eps
    for (i, p) in params.enumerated() {
      guard let g = p.grad else { continue }
      let decay: Float = decays[i] ? 1 - lr * weightDecay : 1
      let w = p.mutableData, gp = g.data, mp = m[i].pointer, vp = v[i].pointer
      let stepSize = lr / bc1, rbc2 = 1 / bc2.squareRoot()
      parallelFor(p.count, grain: 65536) { r in
        var j = r.lowerBound
        while j + 16 <= r.upperBound {
          let gv = load16(gp, j)
          let mv = load16(mp, j) * b1 + gv * (1 - b1)
          let vv = load16(vp, j) * b2 + gv * gv * (1 - b2)
          store16(mv, mp, j); store16(vv, vp, j)
          let denom = vsqrt(vv)
          store16(load16(w, j) * decay - stepSize * mv / (denom * rbc2 + e), w, j)
          j += 16
        }
        while j < r.upperBound {
          let gv = gp[j]
          mp[j] = mp[j] * b1 + gv * (1 - b1)
          vp[j] = vp[j] * b2 + gv * gv * (1 - b2)
          w[j] = w[j] * decay - stepSize * mp[j] / (vp[j].squareRoot() * rbc2 + e)
          j += 1
        }
      }
    }
  }
}

extension Double {
  func power(_ n: Int) -> Double { var r = 1.0; for _ in 0..<n { r *= self }; return r }
}
