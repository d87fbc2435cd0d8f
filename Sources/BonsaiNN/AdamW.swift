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
    precondition(g.count == params[i].count, "AdamW.update: a gradient of \(g.count) values for \(keys[i]) of \(params[i].count)")
    update(i, values: 0..<params[i].count, gradient: g.data)
  }

  /// Updates values `values` of parameter `i` (flat indices) from their gradients, the first at `g`: each value's
  /// update reads only its own gradient and moments, so a parameter updated a block at a time ends as if whole.
  func update(_ i: Int, values: Range<Int>, gradient g: UnsafePointer<Float>) {
    let (bc1, bc2) = biasCorrections
    let lr = learningRate, b1 = beta1, b2 = beta2, e = eps
    let decay: Float = decays[i] ? 1 - lr * weightDecay : 1
    let o = values.lowerBound
    let w = params[i].mutableData + o, gp = g, mp = m[i].pointer + o, vp = v[i].pointer + o
    let stepSize = lr / bc1, rbc2 = 1 / bc2.squareRoot()
    // one rule for 16 values at a time, the last few padded with zeros: each value's result is the same
    // wherever the threads' ranges or a caller's blocks split the parameter
    parallelFor(values.count, grain: 65536) { r in
      var j = r.lowerBound
      while j + 16 <= r.upperBound {
        adamStep16(gp + j, mp + j, vp + j, w + j, b1: b1, b2: b2, decay: decay, stepSize: stepSize, rbc2: rbc2, eps: e)
        j += 16
      }
      guard j < r.upperBound else { return }
      let n = r.upperBound - j
      var pad = [Float](repeating: 0, count: 64)
      pad.withUnsafeMutableBufferPointer { t in
        let (g, m, v, x) = (t.baseAddress!, t.baseAddress! + 16, t.baseAddress! + 32, t.baseAddress! + 48)
        g.update(from: gp + j, count: n); m.update(from: mp + j, count: n); v.update(from: vp + j, count: n); x.update(from: w + j, count: n)
        adamStep16(g, m, v, x, b1: b1, b2: b2, decay: decay, stepSize: stepSize, rbc2: rbc2, eps: e)
        (mp + j).update(from: m, count: n); (vp + j).update(from: v, count: n); (w + j).update(from: x, count: n)
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

  /// The same sinks taking a block of rows (`Tensor.gradientRowSinks`): a parameter whose gradient is made a
  /// block of rows at a time (a tied LM head's and embedding's, at the end of the pass) is updated block by
  /// block, with the same arithmetic, and its whole gradient is never held.
  public func updatingRowsDuringBackward() -> [(Tensor, GradientRowSink)] {
    params.indices.filter { params[$0].shape.count > 0 && params[$0].count > 0 }.map { i in
      let rowSize = params[i].count / params[i].shape[0]
      return (params[i], { [unowned self] rows, g in self.update(i, values: rows.lowerBound * rowSize..<rows.upperBound * rowSize, gradient: g) })
    }
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

/// One AdamW update of 16 values in place (the moments m, v and the weights w from the gradients g). A range's last
/// few values go through it too, padded with zeros, so each value's result is the same wherever the threads' ranges
/// or a caller's blocks split the parameter.
@inline(__always)
func adamStep16(_ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, _ w: UnsafeMutablePointer<Float>,
                b1: Float, b2: Float, decay: Float, stepSize: Float, rbc2: Float, eps: Float) {
  let gv = load16(g, 0)
  let mv = load16(m, 0) * b1 + gv * (1 - b1)
  let vv = load16(v, 0) * b2 + gv * gv * (1 - b2)
  store16(mv, m, 0); store16(vv, v, 0)
  store16(load16(w, 0) * decay - stepSize * mv / (vsqrt(vv) * rbc2 + eps), w, 0)
}

extension Double {
  func power(_ n: Int) -> Double { var r = 1.0; for _ in 0..<n { r *= self }; return r }
}
