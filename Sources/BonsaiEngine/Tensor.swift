// Tensors: fp32, contiguous, row-major, owning a 64-byte-aligned buffer.
// Shape vocabulary used across kernels: B batch, T tokens, C channels, H heads, D head size,
// V vocabulary, N rows (B*T), K classes.

import Synchronization

/// Bytes held by live tensor storages (for memory reports and leak checks).
public let liveStorageBytes = Atomic<Int>(0)
/// The most bytes ever held by live tensor storages at once.
public let peakStorageBytes = Atomic<Int>(0)

/// A 64-byte-aligned block of floats. Kernels take its pointer once, outside their loops.
public final class Storage: @unchecked Sendable {
  public let pointer: UnsafeMutablePointer<Float>
  public let count: Int

  /// Allocates `count` floats, zeroed when `zeroed` is true.
  public init(count: Int, zeroed: Bool = true) {
    self.count = count
    pointer = BlockCache.shared.allocate(bytes: max(count, 1) * 4).bindMemory(to: Float.self, capacity: max(count, 1))
    if zeroed {  // large blocks over the threads: a new block's page faults are cleared in parallel too
      let p = pointer
      parallelFor(count, grain: 1 << 17) { r in (p + r.lowerBound).initialize(repeating: 0, count: r.count) }
    }
    let now = liveStorageBytes.add(count * 4, ordering: .relaxed).newValue
    _ = peakStorageBytes.max(now, ordering: .relaxed)
  }

  deinit {
    liveStorageBytes.subtract(count * 4, ordering: .relaxed)
    BlockCache.shared.free(UnsafeMutableRawPointer(pointer), bytes: max(count, 1) * 4)
  }
}

/// An fp32 tensor that may take part in reverse-mode differentiation.
///
/// Parameters are leaves with `requiresGrad`; their gradient accumulates in `grad`. Results of
/// differentiable ops carry a `node` that knows how to send their gradient to their inputs.
public final class Tensor: @unchecked Sendable {
  /// Dimensions, outermost first.
  public let shape: [Int]
  /// The buffer; reshaped tensors share it.
  public let storage: Storage
  /// True for parameters (leaves) whose gradient is wanted, and for results that depend on them.
  public internal(set) var requiresGrad: Bool
  /// Accumulated gradient of a leaf, same shape; nil until a backward pass reaches it.
  public var grad: Tensor?
  /// The op that produced this tensor, for the backward pass; nil for leaves and constants.
  var node: Node?

  /// A zero tensor of the given shape.
  public init(zeros shape: [Int], requiresGrad: Bool = false) {
    self.shape = shape
    storage = Storage(count: shape.reduce(1, *))
    self.requiresGrad = requiresGrad
  }

  /// An uninitialised tensor, for kernels that write every element.
  public init(uninitialized shape: [Int]) {
    self.shape = shape
    storage = Storage(count: shape.reduce(1, *), zeroed: false)
    requiresGrad = false
  }

  /// A tensor holding `values` (row-major) with the given shape.
  public convenience init(_ values: [Float], shape: [Int], requiresGrad: Bool = false) {
    precondition(values.count == shape.reduce(1, *), "Tensor: \(values.count) values for shape \(shape)")
    self.init(uninitialized: shape)
    values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: values.count) }
    self.requiresGrad = requiresGrad
  }

  /// A tensor filled with one value.
  public convenience init(repeating value: Float, shape: [Int]) {
    self.init(uninitialized: shape)
    storage.pointer.initialize(repeating: value, count: count)
  }

  /// A tensor over an existing buffer, without copying it (reshapes, and views of buffers other code owns,
  /// e.g. optimizer moments handed to a checkpoint writer).
  public init(shape: [Int], storage: Storage) {
    precondition(shape.reduce(1, *) == storage.count, "Tensor: shape \(shape) does not fit \(storage.count) floats")
    self.shape = shape
    self.storage = storage
    requiresGrad = false
  }

  /// Number of elements.
  @inlinable public var count: Int { storage.count }
  /// Number of dimensions.
  @inlinable public var rank: Int { shape.count }
  /// Pointer to the first element (read-only use).
  @inlinable public var data: UnsafePointer<Float> { UnsafePointer(storage.pointer) }
  /// Pointer to the first element (mutable; only kernels that own the tensor write through it).
  @inlinable public var mutableData: UnsafeMutablePointer<Float> { storage.pointer }

  /// The values, row-major.
  public var scalars: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

  /// The single value of a one-element tensor.
  public var item: Float {
    precondition(count == 1, "item: tensor has shape \(shape)")
    return data[0]
  }

  /// Marks this leaf as a parameter whose gradient is wanted.
  @discardableResult
  public func requiringGrad(_ flag: Bool = true) -> Tensor {
    requiresGrad = flag
    return self
  }

  /// A leaf copy that shares nothing with the graph.
  public func detached() -> Tensor {
    let t = Tensor(uninitialized: shape)
    t.mutableData.update(from: data, count: count)
    return t
  }

  /// Copies `other`'s values into this tensor (same element count).
  public func copyValues(from other: Tensor) {
    precondition(other.count == count, "copyValues: \(other.shape) into \(shape)")
    mutableData.update(from: other.data, count: count)
  }

  /// Size of dimension `axis` (negative counts from the end).
  public func size(_ axis: Int) -> Int { shape[axis < 0 ? rank + axis : axis] }
}

extension Tensor: CustomStringConvertible {
  public var description: String {
    let shown = scalars.prefix(8).map { String(format: "%.5g", Double($0)) }.joined(separator: ", ")
    return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
  }
}

import Foundation
