// The seams of a training run (docs/training.md has the picture). A run is a task, loss terms, a
// parameter plan, a batch sampler and observers; every one of them is a `TrainingComponent`, which the
// loop calls at fixed points without knowing what it is, and which keeps its own state in checkpoints.
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import Foundation

/// Something that takes part in a run. Every hook has a default that does nothing.
public protocol TrainingComponent: AnyObject {
  /// Called once before the first step, after a resume has restored every component's state.
  func willStart(_ run: TrainingRun, resumed: Bool) throws
  /// After each forward pass (and its loss terms), before backward.
  func didForward(_ output: TaskOutput, run: TrainingRun) throws
  /// Values this component adds to the step's line in metrics.jsonl (read once per optimizer step).
  func stepMetrics() -> [String: Double]
  /// After each optimizer step, in the order the components were given; may ask for a checkpoint or a stop.
  func didStep(_ report: inout StepReport, run: TrainingRun) throws
  /// After a checkpoint has been written.
  func didSaveCheckpoint(_ run: TrainingRun) throws
  /// When the loop ends, normally or by an error.
  func didFinish(_ run: TrainingRun)
  /// Writes this component's state into the checkpoint being assembled (named tensors and/or JSON).
  func saveState(to checkpoint: CheckpointWriter) throws
  /// Reads back what `saveState` wrote.
  func restoreState(from checkpoint: CheckpointReader) throws
  /// Entries this component adds to summary.json.
  func summary(_ run: TrainingRun) -> [String: Any]
  /// Step metrics drawn on learning-curve.svg, beside the loss and the dev metric.
  var curves: [CurveSpec] { get }
}

extension TrainingComponent {
  public func willStart(_ run: TrainingRun, resumed: Bool) throws {}
  public func didForward(_ output: TaskOutput, run: TrainingRun) throws {}
  public func stepMetrics() -> [String: Double] { [:] }
  public func didStep(_ report: inout StepReport, run: TrainingRun) throws {}
  public func didSaveCheckpoint(_ run: TrainingRun) throws {}
  public func didFinish(_ run: TrainingRun) {}
  public func saveState(to checkpoint: CheckpointWriter) throws {}
  public func restoreState(from checkpoint: CheckpointReader) throws {}
  public func summary(_ run: TrainingRun) -> [String: Any] { [:] }
  public var curves: [CurveSpec] { [] }
}

/// One mini-batch as the sampler drew it: example indices, the first `repeated` of which repeat the
/// previous step's examples (the repeat-half sampler; 0 otherwise). Under data parallelism, one rank's
/// share of a global batch (`shard`).
public struct SampledBatch: Equatable, Sendable {
  public var indices: [Int]
  public var repeated: Int
  /// Which rows of the global batch these are (nil: the whole batch, one process).
  public var shard: BatchShard?
  public init(indices: [Int], repeated: Int = 0) { self.indices = indices; self.repeated = repeated }
}

/// Draws each epoch's batches, reproducibly from (seed, epoch), so that the trainer state need only
/// hold the epoch and the position in it.
public protocol BatchSampler {
  /// Batches in every epoch (the schedule's length follows from it).
  var batchesPerEpoch: Int { get }
  func batches(epoch: Int) -> [SampledBatch]
}

/// What a task's forward pass produced for one batch.
public final class TaskOutput {
  public let batch: SampledBatch
  public let inputs: TokenBatch
  /// The embedding output and every layer's output, each [B*T, C].
  public let hiddenStates: [Tensor]
  /// What the head reads, one row per scored position, when the task can make the logits on demand.
  public let headInput: Tensor?
  /// The target class of each row (-100: not scored).
  public let targets: [Int]
  /// The example index of each row.
  public let rowExamples: [Int]
  private var madeLogits: Tensor?
  private let makeLogits: (() -> Tensor)?

  /// Logits [R, K], one row per scored position: per example for classification, per target token for a
  /// causal LM (made on first use when the task gave a way to make them: a loss that needs none skips them).
  public var logits: Tensor {
    if let madeLogits { return madeLogits }
    let l = makeLogits!()
    precondition(l.size(0) == targets.count, "TaskOutput: logits \(l.shape) for \(targets.count) targets")
    madeLogits = l
    return l
  }
  /// Whether the logits exist yet.
  public var hasLogits: Bool { madeLogits != nil }
  /// The logits as floats, read from the tensor once for whoever needs them.
  public private(set) lazy var logitValues: [Float] = logits.scalars

  public init(batch: SampledBatch, inputs: TokenBatch, hiddenStates: [Tensor], logits: Tensor, targets: [Int], rowExamples: [Int]) {
    precondition(logits.size(0) == targets.count && targets.count == rowExamples.count,
                 "TaskOutput: logits \(logits.shape), \(targets.count) targets, \(rowExamples.count) row examples")
    self.batch = batch; self.inputs = inputs; self.hiddenStates = hiddenStates; madeLogits = logits; makeLogits = nil; headInput = nil
    self.targets = targets; self.rowExamples = rowExamples
  }

  /// Logits made from `headInput` by `logits` when first asked for.
  public init(batch: SampledBatch, inputs: TokenBatch, hiddenStates: [Tensor], headInput: Tensor, logits: @escaping (Tensor) -> Tensor,
              targets: [Int], rowExamples: [Int]) {
    precondition(headInput.size(0) == targets.count && targets.count == rowExamples.count,
                 "TaskOutput: head input \(headInput.shape), \(targets.count) targets, \(rowExamples.count) row examples")
    self.batch = batch; self.inputs = inputs; self.hiddenStates = hiddenStates; self.headInput = headInput
    makeLogits = { logits(headInput) }
    self.targets = targets; self.rowExamples = rowExamples
  }
}

/// The scores of one split, as a task reports them.
public protocol Evaluation {
  /// The named metric (accuracy, macro_f1, loss, ...), nil when the task has none of that name.
  func value(_ metric: String) -> Double?
  /// As written to metrics.jsonl and summary.json.
  func jsonObject() throws -> Any
  /// One line for the log, led by `metric`.
  func describe(metric: String, value: Double) -> String
}

/// What a model learns to do: how examples become batches, how the model is called, the task's own
/// loss, how dev and test are scored and how the trained model is exported.
public protocol TrainingTask: TrainingComponent {
  /// Indices of the training examples, and every example's length in tokens (for samplers).
  var trainIndices: [Int] { get }
  var lengths: [Int] { get }
  var devIndices: [Int] { get }
  var testIndices: [Int] { get }
  /// The model being trained: its parameter tree is what plans choose from.
  var model: Module { get }
  /// Parameters every plan trains densely (a new head), by checkpoint key.
  func isHead(_ key: String) -> Bool
  /// Parameters `--method head` trains, by checkpoint key (default: the new head).
  func isOutputLayer(_ key: String) -> Bool
  /// Forward pass with dropout from `rng` (nil: eval mode).
  func forward(_ batch: SampledBatch, rng: RandomSource?) -> TaskOutput
  /// The task's own loss, a mean over the scored rows, before any loss term.
  func loss(_ output: TaskOutput) -> Tensor
  /// Rows the task loss averages over (under data parallelism each rank weights its loss by its share).
  func lossUnits(_ output: TaskOutput) -> Int
  /// Scores the model being trained on `indices` (eval mode).
  func evaluate(_ indices: [Int]) -> Evaluation
  /// Scores the exported model in `folder` on `indices`.
  func evaluate(folder: URL, indices: [Int]) throws -> Evaluation
  /// Writes the trained model (with whatever the plan adds: merged weights, a delta, adapters) to `folder`.
  func export(to folder: URL, plan: ParameterPlan) throws
  /// One line naming the splits, for the log.
  var splitDescription: String { get }
}

/// A task whose evaluation ranks share (data parallelism): each scores a part of the examples, and every
/// rank makes the whole evaluation from all the parts, so that early stopping decides the same everywhere.
public protocol ShardedEvaluation: TrainingTask {
  /// The per-example results of scoring `indices` with the model being trained (eval mode), as bytes.
  func evaluationPart(_ indices: [Int]) -> [UInt8]
  /// The evaluation of `indices` from the parts of every rank (which together score each index once).
  func evaluation(of indices: [Int], parts: [[UInt8]]) -> Evaluation
}

/// A term added to the task loss. It owns its state (teacher, projection, previous logits) and may
/// bring parameters of its own, which the plan then trains densely.
public protocol LossTerm: TrainingComponent {
  /// The weighted term for this batch, or nil when it has nothing to add.
  func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor?
  /// Trainable tensors the term owns (e.g. a projection), by checkpoint key.
  var parameters: [(key: String, tensor: Tensor)] { get }
  /// Rows the term averages over in this batch, known before `loss` (under data parallelism each rank
  /// weights the term by its share of them); default: every scored row.
  func lossUnits(_ output: TaskOutput) -> Int
}

extension LossTerm {
  public var parameters: [(key: String, tensor: Tensor)] { [] }
  public func lossUnits(_ output: TaskOutput) -> Int { output.targets.count }
}

extension TrainingTask {
  public func lossUnits(_ output: TaskOutput) -> Int { output.targets.count }
  public func isOutputLayer(_ key: String) -> Bool { isHead(key) }
}

/// A step metric drawn on the learning curve: `key` in metrics.jsonl, its legend, and the factor that
/// brings it into [0, 1] on the right axis.
public struct CurveSpec: Sendable {
  public var key: String
  public var name: String
  public var scale: Double
  public init(key: String, name: String, scale: Double) { self.key = key; self.name = name; self.scale = scale }
}

/// One optimizer step as observers see it; an observer may set `wantsCheckpoint` or `stop`.
public struct StepReport {
  /// Optimizer steps done, this one included.
  public var step: Int
  /// The epoch the step belongs to (0-based) and how far through the run it is, in epochs.
  public var epoch: Int
  public var epochProgress: Double
  /// Mean loss over the step's micro-batches.
  public var loss: Float
  public var learningRate: Float
  /// Step metrics of the components (`stepMetrics`).
  public var metrics: [String: Double]
  public var examplesPerSecond: Double
  /// Seconds left at the pace so far.
  public var eta: Double
  public var endOfEpoch: Bool
  /// The schedule's last step.
  public var isLast: Bool
  /// Set by an observer that evaluated: checkpoint now.
  public var wantsCheckpoint = false
  /// Set by an observer to end training after this step (early stopping).
  public var stop = false
}
