// Which parameters a run trains and how (shared/METHODS.md "SIFT" for the sparse plan): a plan freezes
// the rest, owns the optimizers, clips and applies the gradients, says what an exported model carries
// (merged weights, a delta, adapters) and accounts for memory. This file: the dense base, full
// fine-tuning and the head only; LoRAPlan.swift and SIFTPlan.swift add the parameter-efficient ones.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiNN
import Foundation

public enum MethodError: LocalizedError, Equatable {
  case unknownMethod(String)
  case badRate(Double)
  case noMatch(option: String, targets: [String])
  case deltaBaseMismatch(path: String, expected: String, actual: String)
  case deltaShape(path: String, key: String, reason: String)
  case notADelta(path: String)

  public var errorDescription: String? {
    switch self {
    case let .unknownMethod(m): return "--method must be full, head, sift or lora, got '\(m)'"
    case let .badRate(r): return "--sparsity must be in (0, 1], got \(r)"
    case let .noMatch(option, targets): return "\(option) \(targets.joined(separator: ",")) matches no parameter of the model"
    case let .deltaBaseMismatch(path, expected, actual):
      return "\(path): the delta was trained from a base whose model.safetensors has sha256 \(expected), this base has \(actual)"
    case let .deltaShape(path, key, reason): return "\(path): \(key): \(reason)"
    case let .notADelta(path): return "\(path): not a Bonsai delta (no __metadata__ kind sift or lora)"
    }
  }
}

/// A plan that trains `dense` with AdamW and freezes every other parameter of the model. Subclasses
/// add sparse components or adapters by overriding the hooks below.
public class ParameterPlan: TrainingComponent {
  /// full, head, lora or sift.
  public let method: String
  /// The task whose model the plan trains.
  let task: TrainingTask
  /// Densely trained parameters: the plan's, then the loss terms' (e.g. a projection).
  public let dense: [(key: String, tensor: Tensor)]
  /// AdamW over `dense`.
  public let optimizer: AdamW
  /// sha256 of the base model's weights, recorded in deltas so they are applied to the right base.
  let baseHash: String
  /// Whether each parameter is updated during the backward pass, the moment its gradient is complete:
  /// when nothing needs every gradient at once (no clipping, no accumulation) the update is bitwise the
  /// same, and the gradients of the whole model are never held together (less memory, no page faults).
  var updatesDuringBackward: Bool
  /// Sums the gradients over the ranks before they are used (nil: one process; set by the run).
  var gradientSync: GradientSync?

  /// `trained`: the model's parameters this plan updates densely; `sparse`: ones another optimizer updates;
  /// `extra`: loss terms' own parameters, trained densely too.
  init(method: String, task: TrainingTask, trained: [(key: String, tensor: Tensor)], sparse: [Tensor] = [],
       extra: [(key: String, tensor: Tensor)], config: TrainConfig, modelFolder: URL) throws {
    self.method = method; self.task = task
    dense = trained + extra
    let kept = Set((trained.map(\.tensor) + sparse).map(ObjectIdentifier.init))
    for (_, t) in task.model.namedParameters() where !kept.contains(ObjectIdentifier(t)) { t.requiringGrad(false) }
    optimizer = AdamW(dense, learningRate: config.learningRate, weightDecay: config.weightDecay)
    // a GGUF file is its own weights; a folder's are model.safetensors (or the first shard's index)
    let weights = modelFolder.pathExtension.lowercased() == "gguf" ? modelFolder
      : ["model.safetensors", "model.safetensors.index.json"].map { modelFolder.appendingPathComponent($0) }
          .first { FileManager.default.fileExists(atPath: $0.path) } ?? modelFolder.appendingPathComponent("model.safetensors")
    baseHash = method == "full" ? "" : try Assets.sha256(weights)
    updatesDuringBackward = config.maxGradNorm <= 0 && config.gradientAccumulation == 1
  }

  /// Trained scalars, and the bytes their gradients and optimizer state take (for the summary).
  public var trainableCount: Int { dense.reduce(0) { $0 + $1.tensor.count } }
  public var gradientBytes: Int { dense.reduce(0) { $0 + 4 * $1.tensor.count } }
  public var optimizerStateBytes: Int { dense.reduce(0) { $0 + 8 * $1.tensor.count } }

  // Hooks a subclass overrides (declared here so that calls through the protocol reach the override).
  public func willStart(_ run: TrainingRun, resumed: Bool) throws {
    if updatesDuringBackward {
      run.progress.message("optimizer: each tensor updated during the backward pass (no clipping, no accumulation: the same update, less memory)")
    }
  }
  public func didFinish(_ run: TrainingRun) {}

  /// Before each micro-batch's backward pass of the step that will update at `learningRate` (SIFT
  /// reselects here; a plan that updates during the backward pass hands the optimizer the gradients).
  public func willBackward(step: Int, microBatch: Int, learningRate: Float) {
    guard updatesDuringBackward else { return }
    optimizer.learningRate = learningRate
    optimizer.beginStep()
    Tensor.gradientSinks = optimizer.updatingDuringBackward()
    if let sync = gradientSync {  // every rank's backward completes the same gradients in the same order
      Tensor.gradientSinks = Tensor.gradientSinks.map { p, update in (p, { g in sync.reduce([(g.mutableData, g.count)]); update(g) }) }
    } else {  // a tied head's and embedding's gradient a block of rows at a time (each reduced whole above)
      Tensor.gradientRowSinks = optimizer.updatingRowsDuringBackward()
    }
  }

  /// One optimizer step: clip every gradient the plan holds to a global L2 norm of `maxGradNorm`
  /// (0: no clipping), update at `learningRate`, clear the gradients. Nothing is left to do when the
  /// backward pass has already updated each parameter.
  public func step(learningRate: Float, maxGradNorm: Float) {
    if updatesDuringBackward {
      Tensor.gradientSinks = []
      Tensor.gradientRowSinks = []
      Tensor.clearGrad(optimizer.parametersWithGradients)
      return
    }
    if gradientSync != nil { reduceGradients() }
    if maxGradNorm > 0 {
      let coef = maxGradNorm / (Float(gradientSquaredNorm.squareRoot()) + 1e-6)
      if coef < 1 { scaleGradients(coef) }
    }
    update(learningRate: learningRate)
    Tensor.clearGrad(optimizer.parametersWithGradients)
  }

  /// Sums every gradient the plan applies over the ranks.
  func reduceGradients() { gradientSync?.reduceGradients(of: optimizer.parametersWithGradients) }
  /// Floats a step sums over the ranks (what trains).
  var reducedFloats: Int { trainableCount }

  /// Sum of squares of every gradient the plan applies.
  var gradientSquaredNorm: Double { optimizer.gradientSquaredNorm }
  func scaleGradients(_ c: Float) { optimizer.scaleGradients(c) }
  func update(learningRate: Float) {
    optimizer.learningRate = learningRate
    optimizer.update()
  }

  /// Weights an export writes instead of the model's own (LoRA merges its adapters).
  public func mergedWeights() -> [String: Tensor] { mergedWeightMakers().mapValues { $0() } }
  /// The same, each made only when called (an export writes one at a time).
  public func mergedWeightMakers() -> [String: () -> Tensor] { [:] }

  /// Writers of the files that go beside an exported model (a sparse delta, adapters); `metadata`
  /// comes from the task (labels, training length).
  public func deltaFiles(metadata: [String: String]) throws -> [String: (URL) throws -> Void] { [:] }

  /// The metadata every delta carries.
  func deltaMetadata(_ task: [String: String]) -> [String: String] {
    task.merging(["format": "pt", "kind": method, "base_sha256": baseHash]) { _, plan in plan }
  }

  public func saveState(to checkpoint: CheckpointWriter) throws {
    try checkpoint.write("optimizer", tensors: optimizer.stateTensors(), metadata: ["format": "pt", "step": "\(optimizer.step)"])
  }

  public func restoreState(from checkpoint: CheckpointReader) throws {
    let file = try checkpoint.tensors("optimizer")
    try optimizer.restore(step: Int(file.metadata["step"] ?? "0") ?? 0) { try file.tensor($0) }
  }

  public func summary(_ run: TrainingRun) -> [String: Any] {
    ["method": method, "trainable_parameters": trainableCount, "gradient_bytes": gradientBytes, "optimizer_state_bytes": optimizerStateBytes]
  }
}

/// Full fine-tuning: every parameter.
final class FullPlan: ParameterPlan {
  init(task: TrainingTask, extra: [(key: String, tensor: Tensor)], config: TrainConfig, modelFolder: URL) throws {
    try super.init(method: "full", task: task, trained: task.model.namedParameters(), extra: extra, config: config, modelFolder: modelFolder)
  }
}

/// The task's output layer only: a classifier's head (a linear probe on frozen features), a decoder's LM head.
final class HeadPlan: ParameterPlan {
  init(task: TrainingTask, extra: [(key: String, tensor: Tensor)], config: TrainConfig, modelFolder: URL) throws {
    try super.init(method: "head", task: task, trained: task.model.namedParameters().filter { task.isOutputLayer($0.key) }, extra: extra,
                   config: config, modelFolder: modelFolder)
  }
}
