// AdamW as PyTorch's `torch.optim.AdamW` computes it (decoupled weight decay, bias correction).
import BonsaiEngine

/// AdamW with per-parameter state; parameters listed in `noDecay` get no weight decay
/// (transformers excludes biases and LayerNorm weights).
public final class AdamW {
  public var learningRate: Float
  public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
  public private(set) var step = 0
  let params: [Tensor]
  let keys: [String]
  let decays: [Bool]
  var m: [Storage], v: [Storage]

  public init(_ parameters: [(key: String, tensor: Tensor)], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
              eps: Float = 1e-8, weightDecay: Float = 0.0) {
    params = parameters.map(\.tensor)
    keys = parameters.map(\.key)
    decays = parameters.map { !($0.key.hasSuffix(".bias") || $0.key.contains("LayerNorm") || $0.key.contains("layer_norm") || $0.key.hasSuffix("norm.weight")) }
    m = params.map { Storage(count: $0.count) }
    v = params.map { Storage(count: $0.count) }
    self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
  }

  /// The parameters this optimizer updates.
  public var parametersWithGradients: [Tensor] { params }

  /// Moment estimates as named tensors (`exp_avg.KEY`, `exp_avg_sq.KEY`), for checkpoints. The tensors are views
  /// of the optimizer's own buffers, not copies (a copy would add the moments' size, 1 GiB for SmolLM2, to peak RSS
  /// at every checkpoint): write them before the next step changes them.
  public func stateTensors() -> [(key: String, tensor: Tensor)] {
    var out: [(String, Tensor)] = []
    for (i, key) in keys.enumerated() {
      out.append(("exp_avg." + key, Tensor(shape: params[i].shape, storage: m[i])))
      out.append(("exp_avg_sq." + key, Tensor(shape: params[i].shape, storage: v[i])))
    }
    return out
  }

  /// Drops the moments once training is over, so that their memory serves what comes next (a run's test
  /// evaluation loads the selected model) instead of adding to it. The optimizer cannot step or save after this.
  public func releaseState() { m = []; v = [] }

  /// Restores moments saved by `stateTensors` and the step count.
  public func restore(step: Int, state: (String) throws -> Tensor) rethrows {
    for (i, key) in keys.enumerated() {
      let mt = try state("exp_avg." + key), vt = try state("exp_avg_sq." + key)
      precondition(mt.count == m[i].count && vt.count == v[i].count, "AdamW.restore: state of \(key) has the wrong size")
      m[i].pointer.update(from: mt.data, count: mt.count)
      v[i].pointer.update(from: vt.data, count: vt.count)
    }
    self.step = step
  }

  /// Scales all gradients so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_);
  /// returns the norm before clipping.
  @discardableResult
  public func clipGradientNorm(_ maxNorm: Float) -> Float {
    let norm = Float(gradientSquaredNorm.squareRoot())
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 { scaleGradients(coef) }
    return norm
  }

  /// Sum of squares of all gradients (Float64 accumulation).
  public var gradientSquaredNorm: Double {
    params.reduce(0.0) { $0 + ($1.grad?.squaredSum ?? 0) }
  }

  /// Multiplies every gradient by `c`.
  public func scaleGradients(_ c: Float) {
    for p in params { if let g = p.grad { let d = g.mutableData; for j in 0..<g.count { d[j] *= c } } }
  }

  /// One update from the parameters' gradients (a parameter without gradient is skipped).
  public func update() {
    beginStep()
    for (i, p) in params.enumerated() { if let g = p.grad { update(i, gradient: g) } }
  }

  /// Starts a step whose parameters are then updated one at a time by `update(_:gradient:)`.
  public func beginStep() {
    step += 1
    biasCorrections = (1 - Float(Double(beta1).power(step)), 1 - Float(Double(beta2).power(step)))
  }
  /// 1 - beta1^step and 1 - beta2^step of the step under way.
  var biasCorrections: (Float, Float) = (1, 1)

  /// Updates parameter `i` from `gradient`, as `update()` does for each parameter.
  public func update(_ i: Int, gradient g: Tensor) {
    let p = params[i]
    let (bc1, bc2) = biasCorrections
    let lr = learningRate, b1 = beta1, b2 = beta2, e = eps
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

  /// Gradient sinks (`Tensor.gradientSinks`) that update each parameter the moment its gradient is
  /// complete during the backward pass, so that only the gradients still being accumulated are held
  /// (PyTorch's optimizer-in-backward): the same arithmetic as `update()` after the pass, exactly, when
  /// nothing needs every gradient at once (no clipping, no accumulation). Call `beginStep()` first.
  public func updatingDuringBackward() -> [(Tensor, (Tensor) -> Void)] {
    params.indices.map { i in (params[i], { [unowned self] g in self.update(i, gradient: g) }) }
  }
}

extension Tensor {
  /// Sum of squares of the elements (Float64 accumulation).
  var squaredSum: Double {
    let d = data
    var total = 0.0
    for j in 0..<count { total += Double(d[j]) * Double(d[j]) }
    return total
  }
}

extension Double {
  func power(_ n: Int) -> Double { var r = 1.0; for _ in 0..<n { r *= self }; return r }
}
