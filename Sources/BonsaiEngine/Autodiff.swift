// Reverse-mode automatic differentiation on a dynamic tape.
//
// Each differentiable op returns a tensor whose `node` holds its inputs' nodes and a backward closure.
// A node keeps no input tensor alive by itself: a backward closure captures the input tensors whose
// values it needs and only a `GradTarget` for the others, so activations that no backward step reads
// (dropout outputs, residual sums' inputs) are freed during the forward pass.
// `backward()` orders the nodes topologically and runs them in reverse. Gradients of intermediate
// results live in their node and are released as soon as they have been passed on, together with
// the tensors the node saved, so peak memory falls during the backward pass.

/// The record of one differentiable op.
final class Node {
  var inputs: [Node]
  /// The inputs that are leaves needing a gradient (parameters): a leaf's gradient is complete once
  /// every node that lists it has run its backward step.
  var leaves: [Tensor]
  /// Receives the gradient of the op's output and accumulates (`+=`) into its inputs' gradients.
  var backward: ((Tensor) -> Void)?
  /// Gradient of the op's output, accumulated by its consumers.
  var grad: Tensor?
  let outputShape: [Int]

  init(inputs: [Node], leaves: [Tensor], outputShape: [Int], backward: @escaping (Tensor) -> Void) {
    self.inputs = inputs
    self.leaves = leaves
    self.outputShape = outputShape
    self.backward = backward
  }
}

/// Whether ops record the tape. Turn it off for inference with `withoutGrad`.
public enum GradMode {
  nonisolated(unsafe) public static var isEnabled = true
}

/// Runs `body` without recording the tape (inference: no saved activations, no nodes).
public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
  let saved = GradMode.isEnabled
  GradMode.isEnabled = false
  defer { GradMode.isEnabled = saved }
  return try body()
}

extension Tensor {
  /// Attaches a backward closure to `output` when any input needs a gradient and the tape is on.
  /// The closure gets the output's gradient and must accumulate into `gradient(of:)` of inputs.
  @discardableResult
  public static func record(_ output: Tensor, inputs: [Tensor], backward: @escaping (Tensor) -> Void) -> Tensor {
    guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return output }
    output.requiresGrad = true
    output.node = Node(inputs: inputs.compactMap(\.node), leaves: inputs.filter { $0.requiresGrad && $0.node == nil },
                       outputShape: output.shape, backward: backward)
    return output
  }

  /// The gradient buffer an op's backward accumulates into for this input (zero-initialised on first use),
  /// or nil when the input needs no gradient.
  public func gradientBuffer() -> Tensor? { gradTarget.buffer() }

  /// Where this tensor's gradient goes, without keeping its values alive.
  public var gradTarget: GradTarget {
    guard requiresGrad else { return GradTarget(node: nil, leaf: nil) }
    return node != nil ? GradTarget(node: node, leaf: nil) : GradTarget(node: nil, leaf: self)
  }

  /// Back-propagates from this tensor. A scalar gets gradient 1 unless `seed` is given.
  public func backward(seed: Tensor? = nil) {
    guard let root = node else { return }
    precondition(seed != nil || count == 1, "backward: a non-scalar result of shape \(shape) needs a seed gradient")
    // Topological order of the nodes reachable from the root (iterative DFS).
    var order: [Node] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(Node, Bool)] = [(root, false)]
    while let (n, expanded) = stack.popLast() {
      if expanded { order.append(n); continue }
      if !visited.insert(ObjectIdentifier(n)).inserted { continue }
      stack.append((n, true))
      for child in n.inputs where !visited.contains(ObjectIdentifier(child)) { stack.append((child, false)) }
    }
    root.grad = seed ?? Tensor(repeating: 1, shape: shape)
    // a sink's leaf is handed over after the last node that accumulates into it
    let sinks = Dictionary(Tensor.gradientSinks.map { (ObjectIdentifier($0.0), $0) }) { first, _ in first }
    let rowSinks = Dictionary(Tensor.gradientRowSinks.map { (ObjectIdentifier($0.0), $0.1) }) { first, _ in first }
    var pending: [ObjectIdentifier: Int] = [:]
    if !sinks.isEmpty {
      for n in order { for leaf in n.leaves where sinks[ObjectIdentifier(leaf)] != nil { pending[ObjectIdentifier(leaf), default: 0] += 1 } }
    }
    // late contributions registered during this pass (`GradTarget.accumulateLate`); an outer pass's wait for it
    let outerLate = Tensor.lateContributions
    Tensor.lateContributions = []
    Tensor.backwardDepth += 1
    defer { Tensor.lateContributions = outerLate; Tensor.backwardDepth -= 1 }
    for n in order.reversed() {
      if let g = n.grad, let step = n.backward { step(g) }
      if !pending.isEmpty {
        for leaf in n.leaves {
          let id = ObjectIdentifier(leaf)
          guard let left = pending[id] else { continue }
          if left > 1 { pending[id] = left - 1; continue }
          pending[id] = nil
          if let rowSink = rowSinks[id], Tensor.handLateContributionsByRows(to: leaf, rowSink) { continue }
          Tensor.runLateContributions(to: id)
          if let g = leaf.grad, let (_, sink) = sinks[id] {
            sink(g)
            leaf.grad = nil
          }
        }
      }
      n.grad = nil
      n.backward = nil
      n.inputs = []
      n.leaves = []
    }
    Tensor.runLateContributions(to: nil)
    node = nil
  }

  /// Runs (and forgets) the late contributions to one leaf's gradient, or to every leaf (nil).
  static func runLateContributions(to leaf: ObjectIdentifier?) {
    guard !lateContributions.isEmpty else { return }
    let due = lateContributions.filter { leaf == nil || $0.leaf == leaf }
    lateContributions.removeAll { leaf == nil || $0.leaf == leaf }
    for c in due { c.run() }
  }

  /// Hands `leaf`'s gradient to `sink` a block of rows at a time, made by its late contributions block by
  /// block, when they are all it has and each can make any rows on its own; then the whole gradient never
  /// exists. False (nothing done) otherwise.
  static func handLateContributionsByRows(to leaf: Tensor, _ sink: GradientRowSink) -> Bool {
    let id = ObjectIdentifier(leaf)
    guard leaf.grad == nil, leaf.shape.count > 0, leaf.count > 0 else { return false }
    let due = lateContributions.filter { $0.leaf == id }.compactMap(\.rows)
    guard !due.isEmpty, due.count == lateContributions.filter({ $0.leaf == id }).count else { return false }
    lateContributions.removeAll { $0.leaf == id }
    let rows = leaf.shape[0], rowSize = leaf.count / rows
    let blockRows = Swift.max(1, Swift.min(rows, lateRowBlockFloats / rowSize))
    let block = Storage(count: blockRows * rowSize, zeroed: false)
    for r0 in stride(from: 0, to: rows, by: blockRows) {
      let range = r0..<Swift.min(rows, r0 + blockRows)
      for (k, contribute) in due.enumerated() { contribute(range, block.pointer, k == 0) }
      sink(range, block.pointer)
    }
    return true
  }

  /// Values in a block of rows handed to a row sink (8 MiB).
  nonisolated(unsafe) public static var lateRowBlockFloats = 1 << 21

  /// Contributions to leaves' gradients that wait until every other one is in (see `GradTarget.accumulateLate`);
  /// `rows`, when a contribution can make any block of the leaf's rows on its own.
  nonisolated(unsafe) static var lateContributions: [(leaf: ObjectIdentifier, run: () -> Void, rows: RowContribution?)] = []
  /// How many backward passes are running (a checkpointed block's runs inside its outer pass).
  nonisolated(unsafe) static var backwardDepth = 0
  static var isInBackwardPass: Bool { backwardDepth > 0 }
}

extension Tensor {
  /// Leaves whose gradient is handed to a closure the moment it is complete (after the last backward
  /// step that accumulates into it), then dropped: SIFT gathers a sparse gradient this way and never
  /// keeps the dense one, and an optimizer can update each parameter during the backward pass.
  nonisolated(unsafe) public static var gradientSinks: [(Tensor, (Tensor) -> Void)] = []
  /// Leaves whose sink (in `gradientSinks`) can also take the gradient a block of rows at a time: a leaf whose
  /// gradient is made only by late contributions that make any rows (`GradTarget.accumulateLate(byRows:)`,
  /// such as a tied LM head's and its embedding's) is handed to it in blocks, and its whole gradient is never
  /// held. Only for sinks that treat each value on its own (an elementwise optimizer step).
  nonisolated(unsafe) public static var gradientRowSinks: [(Tensor, GradientRowSink)] = []
}

/// Takes rows `rows` of a leaf's gradient, the first of them at the pointer.
public typealias GradientRowSink = (_ rows: Range<Int>, _ gradient: UnsafePointer<Float>) -> Void
/// Writes (`overwrite`) or adds a contribution to rows `rows` of a gradient, the first of them at `into`.
public typealias RowContribution = (_ rows: Range<Int>, _ into: UnsafeMutablePointer<Float>, _ overwrite: Bool) -> Void

/// The gradient slot of an op input: its node's gradient, or a leaf's `grad`. Holding it keeps the
/// node (and so the gradient routing) alive, but not the input's values.
public struct GradTarget {
  let node: Node?
  let leaf: Tensor?

  /// True when the input needs a gradient.
  public var isNeeded: Bool { node != nil || leaf != nil }

  /// The zero-initialised buffer to accumulate into, or nil when no gradient is needed.
  public func buffer() -> Tensor? { gradient(makingNew: { Tensor(zeros: $0) })?.tensor }

  /// The buffer for a product that writes the whole gradient at once, with the `beta` it must use: 1
  /// (accumulate) into an existing gradient, 0 into a new, uninitialised one (no zero-filling pass first).
  /// Nil when no gradient is needed.
  public func productBuffer() -> (tensor: Tensor, beta: Float)? {
    gradient(makingNew: { Tensor(uninitialized: $0) }).map { ($0.tensor, $0.isNew ? 0 : 1) }
  }

  /// The gradient slot's tensor, made by `make(shape)` when there is none yet; nil when none is needed.
  private func gradient(makingNew make: ([Int]) -> Tensor) -> (tensor: Tensor, isNew: Bool)? {
    if let node {
      if let g = node.grad { return (g, false) }
      let g = make(node.outputShape)
      node.grad = g
      return (g, true)
    }
    if let leaf {
      if let g = leaf.grad { return (g, false) }
      let g = make(leaf.shape)
      leaf.grad = g
      return (g, true)
    }
    return nil
  }

  /// Adds `t` to the gradient; a new gradient is a copy of `t` (no zero-filling pass first).
  public func accumulate(copyOf t: Tensor) {
    guard isNeeded else { return }
    if let (g, beta) = productBuffer(), beta == 0 {
      precondition(g.count == t.count, "accumulate: gradient of \(t.count) values into \(g.count)")
      let d = g.mutableData, s = t.data
      parallelFor(g.count, grain: 1 << 16) { r in (d + r.lowerBound).update(from: s + r.lowerBound, count: r.count) }
      return
    }
    accumulate(t)
  }

  /// Runs `contribute` (which accumulates into this gradient) only once every other contribution to this
  /// leaf's gradient in the current backward pass is in: just before its sink takes it, or at the end of
  /// the pass. A contribution that would otherwise make a large leaf's gradient early, such as a tied LM
  /// head's (whose other use, the embedding lookup, is the last step of the pass), then never holds it while
  /// the activations do. Outside a backward pass, and for a non-leaf, `contribute` runs at once.
  public func accumulateLate(_ contribute: @escaping () -> Void) {
    guard let leaf, node == nil, Tensor.isInBackwardPass else { contribute(); return }
    Tensor.lateContributions.append((ObjectIdentifier(leaf), contribute, nil))
  }

  /// `accumulateLate` for a contribution that can make any block of rows (the first dimension) on its own:
  /// a leaf with a row sink (`Tensor.gradientRowSinks`) whose late contributions all can is then handed its
  /// gradient a block at a time; otherwise `contribute` makes every row into the gradient.
  public func accumulateLate(byRows contribute: @escaping RowContribution) {
    let whole = {
      guard let (g, beta) = self.productBuffer() else { return }
      contribute(0..<(g.shape.first ?? 1), g.mutableData, beta == 0)
    }
    guard let leaf, node == nil, Tensor.isInBackwardPass else { whole(); return }
    Tensor.lateContributions.append((ObjectIdentifier(leaf), whole, contribute))
  }

  /// Adds `scale * t` to the gradient. When there is none yet and `scale` is 1, `t` itself becomes the
  /// gradient (no copy): the caller must not write to it afterwards.
  public func accumulate(_ t: Tensor, scale: Float = 1) {
    if scale == 1 {
      if let node, node.grad == nil, node.outputShape == t.shape { node.grad = t; return }
      if let leaf, leaf.grad == nil, leaf.shape == t.shape { leaf.grad = t; return }
    }
    guard let g = buffer() else { return }
    precondition(g.count == t.count, "accumulate: gradient of \(t.count) values into \(g.count)")
    let d = g.mutableData, s = t.data
    parallelFor(g.count, grain: 65536) { r in for j in r { d[j] += scale * s[j] } }
  }
}

extension Tensor {
  /// Drops every parameter's gradient (PyTorch's `zero_grad(set_to_none=True)`): the buffers are not
  /// held through the next forward pass, when activations peak, and come back from the block cache.
  public static func clearGrad(_ parameters: [Tensor]) {
    BlockCache.bypassing { for p in parameters { p.grad = nil } }
  }

  /// Zeroes every parameter's gradient in place (keeping the buffers avoids page faults each step).
  public static func zeroGrad(_ parameters: [Tensor]) {
    for p in parameters { if let g = p.grad { g.mutableData.update(repeating: 0, count: g.count) } }
  }
}
