// Reverse-mode automatic differentiation on a dynamic tape.
//
// Each differentiable op returns a tensor whose `node` holds its inputs and a backward closure.
// `backward()` orders the nodes topologically and runs them in reverse. Gradients of intermediate
// results live in their node and are released as soon as they have been passed on, together with
// the tensors the node saved, so peak memory falls during the backward pass.

/// The record of one differentiable op.
final class Node {
  var inputs: [Tensor]
  /// Receives the gradient of the op's output and accumulates (`+=`) into its inputs' gradients.
  var backward: ((Tensor) -> Void)?
  /// Gradient of the op's output, accumulated by its consumers.
  var grad: Tensor?
  let outputShape: [Int]

  init(inputs: [Tensor], outputShape: [Int], backward: @escaping (Tensor) -> Void) {
    self.inputs = inputs
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
    output.node = Node(inputs: inputs, outputShape: output.shape, backward: backward)
    return output
  }

  /// The gradient buffer an op's backward accumulates into for this input (zero-initialised on first use),
  /// or nil when the input needs no gradient.
  public func gradientBuffer() -> Tensor? {
    guard requiresGrad else { return nil }
    if let node {
      if node.grad == nil { node.grad = Tensor(zeros: shape) }
      return node.grad
    }
    if grad == nil { grad = Tensor(zeros: shape) }
    return grad
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
      for input in n.inputs { if let child = input.node, !visited.contains(ObjectIdentifier(child)) { stack.append((child, false)) } }
    }
    root.grad = seed ?? Tensor(repeating: 1, shape: shape)
    for n in order.reversed() {
      if let g = n.grad, let step = n.backward { step(g) }
      n.grad = nil
      n.backward = nil
      n.inputs = []
    }
    node = nil
  }
}

extension Tensor {
  /// Zeroes every parameter's gradient in place (keeping the buffers avoids page faults each step).
  public static func zeroGrad(_ parameters: [Tensor]) {
    for p in parameters { if let g = p.grad { g.mutableData.update(repeating: 0, count: g.count) } }
  }
}
