// Activation checkpointing: a block (a decoder layer) runs without the tape in the forward pass and again,
// with it, when the backward pass reaches it. Two policies:
// - `.input` keeps only the block's input: the least memory, a forward pass of the block more.
// - `.products` also keeps the outputs of its matrix products (linear layers, dense or packed; not those
//   with an inner size of 64 or less, such as a LoRA adapter's second product, cheaper to redo than to hold)
//   and replays them in the recomputation, so only the cheap ops run twice (norms, rotary positions,
//   attention, SwiGLU, residual sums): most of the memory saved for a few percent of time (the
//   "selective recomputation" of Korthikanti et al. 2022, with PyTorch's policy of saving matmul outputs).
//   A product whose values no backward step reads (`Tensor.unreadByBackward`: a layer's last projection,
//   which only the residual sum reads) is not kept at all.

/// A checkpointed block's record of its products: filled in the forward pass, read back in order when
/// the block is recomputed.
final class KeptProducts {
  /// Each product's output, or only its shape when no backward step reads its values.
  var outputs: [Kept] = []
  var replayed = 0
  var isReplaying = false
  /// Set by `Tensor.unreadByBackward` for the product it makes.
  var nextIsUnread = false

  enum Kept {
    case values(Tensor)
    case unread(shape: [Int])
  }

  /// The block being run, when it keeps its products.
  nonisolated(unsafe) static var current: KeptProducts?

  /// Inner sizes up to which a product is recomputed rather than kept: its cost per output value is its inner
  /// size, so a low-rank adapter's second product (rank 16) costs less to redo than to hold.
  static let cheapInner = 64

  /// A product's output: computed (and kept, inside a block that keeps them), or the kept one on replay;
  /// `inner` is the product's inner size (products of at most `cheapInner` are always computed).
  static func product(inner: Int, _ compute: () -> Tensor) -> Tensor {
    guard let kept = current, inner > cheapInner else { return compute() }
    let unread = kept.nextIsUnread
    kept.nextIsUnread = false
    if kept.isReplaying {
      precondition(kept.replayed < kept.outputs.count, "checkpointed: the recomputation made more products than the forward pass")
      defer { kept.replayed += 1 }
      switch kept.outputs[kept.replayed] {
      case let .values(t): return t
      case let .unread(shape): return Tensor(zeros: shape)  // a stand-in: nothing reads it
      }
    }
    let out = compute()
    kept.outputs.append(unread ? .unread(shape: out.shape) : .values(out))
    return out
  }

  /// `body` with `kept` as the current record (nil: products computed as usual).
  static func running<R>(_ kept: KeptProducts?, _ body: () -> R) -> R {
    let saved = current
    current = kept
    defer { current = saved }
    return body()
  }
}

/// What a checkpointed block keeps through the forward pass.
public enum CheckpointPolicy: String, Sendable, Codable, CaseIterable {
  /// Only the input: the whole block is recomputed.
  case input
  /// The outputs of its matrix products: only the cheap ops between them are recomputed.
  case products
}

extension Tensor {
  /// `body()`, one matrix product whose output's values no backward step reads (it feeds only sums, as a
  /// residual block's last product does): a checkpointed block that keeps its products keeps only this
  /// one's shape, and its recomputation gets zeros in its place (so the recomputed block's output is not
  /// its real one, which the backward pass never reads either). Elsewhere, simply `body()`.
  public static func unreadByBackward(_ body: () -> Tensor) -> Tensor {
    guard let kept = KeptProducts.current else { return body() }
    kept.nextIsUnread = true
    defer { kept.nextIsUnread = false }
    return body()
  }

  /// `body(x)` without keeping its intermediate values (activation checkpointing): it runs without the
  /// tape, and again with it when the backward pass reaches it, from `x`'s values, which are kept (and,
  /// with `keeping: .products`, the outputs of its matrix products, replayed rather than recomputed).
  /// `parameters` are the leaves `body` reads that may need gradients; `body` must be deterministic
  /// (no dropout) and make its products in the same order each time, so the gradients equal those of
  /// `body(x)` on the tape, bit for bit.
  public static func checkpointed(_ x: Tensor, parameters: [Tensor], keeping policy: CheckpointPolicy = .input,
                                  _ body: @escaping (Tensor) -> Tensor) -> Tensor {
    let trained = parameters.filter(\.requiresGrad)
    guard GradMode.isEnabled, x.requiresGrad || !trained.isEmpty else { return body(x) }
    let kept = policy == .products ? KeptProducts() : nil
    let out = KeptProducts.running(kept) { withoutGrad { body(x) } }
    return record(out, inputs: [x] + trained) { g in
      let input = Tensor(shape: x.shape, storage: x.storage)  // a leaf over x's values
      input.requiresGrad = x.requiresGrad
      kept?.isReplaying = true
      let recomputed = KeptProducts.running(kept) { body(input) }
      if let kept {
        precondition(kept.replayed == kept.outputs.count, "checkpointed: the recomputation made fewer products than the forward pass")
        kept.outputs = []  // the recomputed tape holds what its backward steps need
      }
      // the outer pass hands complete gradients to the sinks: it sees every use of a parameter, this one only its own
      let sinks = (Tensor.gradientSinks, Tensor.gradientRowSinks)
      (Tensor.gradientSinks, Tensor.gradientRowSinks) = ([], [])
      recomputed.backward(seed: g)
      (Tensor.gradientSinks, Tensor.gradientRowSinks) = sinks
      if let gx = input.grad { x.gradTarget.accumulate(gx) }
    }
  }
}
