// SIFT's optimizer (Song et al. 2023, `song-wx/SIFT` sift.py; shared/METHODS.md "SIFT"): per selected
// matrix, k = min(int(rate * numel) + 1, numel) flat Int32 indices chosen as the top-k of |gradient|,
// a k-vector gradient accumulator and AdamW moments for those k components only. The dense gradient of
// a matrix is gathered into its k-vector as soon as backward produces it and then dropped (a gradient
// sink), so no dense gradient outlives its use. An update is AdamW restricted to the k components:
// decoupled weight decay and the step touch only them, the rest of the matrix stays bit-equal.
import BonsaiEngine

public final class SparseAdamW {
  public final class Entry {
    public let key: String
    public let weight: Tensor
    public let k: Int
    public fileprivate(set) var indices: [Int32] = []
    /// Every component any selection chose (with reselection, more than `indices`): what a delta must hold.
    public fileprivate(set) var touched: [Int32] = []
    fileprivate(set) var grad: [Float]
    fileprivate var m: [Float], v: [Float]
    let decays: Bool
    /// Sum over voting batches of |gradient| (only while selecting).
    fileprivate var score: [Float]?

    init(key: String, weight: Tensor, rate: Double) {
      self.key = key; self.weight = weight
      k = min(Int(rate * Double(weight.count)) + 1, weight.count)
      grad = [Float](repeating: 0, count: k); m = grad; v = grad
      decays = !(key.hasSuffix(".bias") || key.contains("LayerNorm"))
    }
  }

  public var learningRate: Float
  public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
  public private(set) var step = 0
  public let entries: [Entry]
  /// True while batches vote for the indices (no update is made from them).
  public private(set) var isSelecting = false

  public init(_ matrices: [(key: String, tensor: Tensor)], rate: Double, learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999,
              eps: Float = 1e-8, weightDecay: Float = 0) {
    entries = matrices.map { Entry(key: $0.key, weight: $0.tensor, rate: rate) }
    self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
  }

  /// Optimizer-state bytes: indices, moments and the k-vector gradient accumulators.
  public var stateBytes: Int { entries.reduce(0) { $0 + $1.k * 12 } }
  public var gradientBytes: Int { entries.reduce(0) { $0 + $1.k * 4 } }
  public var trainableCount: Int { entries.reduce(0) { $0 + $1.k } }

  /// Installs the gradient sinks: from now on each matrix's dense gradient goes into its k-vector (or, while
  /// selecting, into its |gradient| score) and is released at once.
  public func attach() {
    Tensor.gradientSinks = entries.map { e in
      (e.weight, { [unowned self] g in self.absorb(e, g) })
    }
  }

  public func detach() { Tensor.gradientSinks = [] }

  /// Starts a selection: the next backward passes vote (their |gradient| is summed per component).
  public func beginSelection() {
    isSelecting = true
    for e in entries { e.score = [Float](repeating: 0, count: e.weight.count) }
  }

  /// Ends a selection: each matrix keeps its top-k components by summed |gradient| (ties: lower index),
  /// stored sorted. Moments of indices kept from an earlier selection are carried over; new ones start at 0.
  public func endSelection() {
    isSelecting = false
    for e in entries {
      guard let score = e.score else { continue }
      let chosen = SparseAdamW.topK(score, e.k)
      var m = [Float](repeating: 0, count: e.k), v = m
      if !e.indices.isEmpty {
        var old: [Int32: Int] = [:]
        for (j, i) in e.indices.enumerated() { old[i] = j }
        for (j, i) in chosen.enumerated() { if let o = old[i] { m[j] = e.m[o]; v[j] = e.v[o] } }
      }
      e.indices = chosen; e.m = m; e.v = v
      e.touched = e.touched.isEmpty ? chosen : Array(Set(e.touched).union(chosen)).sorted()
      e.grad = [Float](repeating: 0, count: e.k)
      e.score = nil
    }
  }

  /// Indices of the k largest values (ties broken by the lower index), in increasing order.
  public static func topK(_ values: [Float], _ k: Int) -> [Int32] {
    let order = values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }
    return order.prefix(k).map { Int32($0) }.sorted()
  }

  /// Under data parallelism: sums a dense gradient over the ranks before a selection scores it.
  public var reduceDense: ((Tensor) -> Void)?

  /// Sums the k-vector gradients over the ranks with `reduce` (one flat buffer).
  public func reduceGradients(_ reduce: (UnsafeMutablePointer<Float>, Int) -> Void) {
    var flat = entries.flatMap(\.grad)
    flat.withUnsafeMutableBufferPointer { f in
      reduce(f.baseAddress!, f.count)
      var at = 0
      for e in entries {  // back into each accumulator in place (no new arrays every step)
        e.grad.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: f.baseAddress! + at, count: e.k) }
        at += e.k
      }
    }
  }

  func absorb(_ e: Entry, _ g: Tensor) {
    if e.score != nil { reduceDense?(g) }
    let gp = g.data
    if e.score != nil {
      e.score!.withUnsafeMutableBufferPointer { s in for i in 0..<g.count { s[i] += abs(gp[i]) } }
      // a reselection batch also updates, at the indices it chooses: keep its gradient for the gather
      // (the sink owns `g` once backward hands it over: keep it rather than copy it)
      if let pending = pendingDense[e.key] { let pd = pending.mutableData; for i in 0..<g.count { pd[i] += gp[i] } }
      else if reselecting { pendingDense[e.key] = g }
      return
    }
    e.grad.withUnsafeMutableBufferPointer { acc in
      e.indices.withUnsafeBufferPointer { idx in for j in 0..<e.k { acc[j] += gp[Int(idx[j])] } }
    }
  }

  /// Dense gradients kept only during a reselection step (the "top of the current batch" variant).
  var pendingDense: [String: Tensor] = [:]
  var reselecting = false

  /// Starts a step that reselects from its own gradient and then updates with it.
  public func beginReselection() { beginSelection(); reselecting = true }

  /// Ends it: new indices, then the step's gradient gathered at them.
  public func endReselection() {
    endSelection()
    reselecting = false
    for e in entries {
      guard let g = pendingDense.removeValue(forKey: e.key) else { continue }
      let gp = g.data
      for j in 0..<e.k { e.grad[j] = gp[Int(e.indices[j])] }
    }
  }

  /// Sum of squares of the k-vector gradients (for global-norm clipping with the dense parameters).
  public var gradientSquaredNorm: Double {
    entries.reduce(0.0) { acc, e in acc + e.grad.reduce(0.0) { $0 + Double($1) * Double($1) } }
  }

  public func scaleGradients(_ c: Float) { for e in entries { for j in 0..<e.k { e.grad[j] *= c } } }

  /// One AdamW step on the k components of every matrix (PyTorch's formula), then the accumulators are zeroed.
  public func update() {
    step += 1
    let bc1 = 1 - Float(Double(beta1).power(step)), bc2 = 1 - Float(Double(beta2).power(step))
    let lr = learningRate, stepSize = lr / bc1, rbc2 = 1 / bc2.squareRoot()
    for e in entries {
      let decay: Float = e.decays ? 1 - lr * weightDecay : 1
      let w = e.weight.mutableData
      for j in 0..<e.k {
        let i = Int(e.indices[j]), g = e.grad[j]
        e.m[j] = e.m[j] * beta1 + g * (1 - beta1)
        e.v[j] = e.v[j] * beta2 + g * g * (1 - beta2)
        w[i] = w[i] * decay - stepSize * e.m[j] / (e.v[j].squareRoot() * rbc2 + eps)
        e.grad[j] = 0
      }
    }
  }

  /// State for checkpoints: indices (Int32) and moments per matrix.
  public func stateTensors() -> (floats: [(key: String, tensor: Tensor)], ints: [(key: String, values: [Int32])]) {
    var f: [(String, Tensor)] = [], i: [(String, [Int32])] = []
    for e in entries {
      f.append(("exp_avg." + e.key, Tensor(e.m, shape: [e.k])))
      f.append(("exp_avg_sq." + e.key, Tensor(e.v, shape: [e.k])))
      i.append(("indices." + e.key, e.indices))
      i.append(("touched." + e.key, e.touched))
    }
    return (f, i)
  }

  public func restore(step: Int, floats: (String) throws -> Tensor, ints: (String) throws -> [Int32]) throws {
    for e in entries {
      let idx = try ints("indices." + e.key)
      precondition(idx.count == e.k, "SparseAdamW.restore: \(e.key) has \(idx.count) indices, expected \(e.k)")
      e.indices = idx
      e.touched = try ints("touched." + e.key)
      e.m = try floats("exp_avg." + e.key).scalars
      e.v = try floats("exp_avg_sq." + e.key).scalars
      e.grad = [Float](repeating: 0, count: e.k)
    }
    self.step = step
  }
}
