// Distillation instead of pre-training (Farhat & Chen 2024; shared/METHODS.md section 5; sfarhat/dapt
// kd_losses/align_uniform.py, models/projector.py): student and teacher features, each through its own
// trainable projector (Linear -> ReLU -> Linear to 128 -> L2-normalise, the 'mocov2' projector), are
// pulled together pairwise (alignment) and spread over the sphere (uniformity):
//   L_align = mean_i ||s_i - t_i||^2
//   L_unif  = ( log mean_{i<j} exp(-2 ||s_i - s_j||^2) + log mean_{i<j} exp(-2 ||t_i - t_j||^2) ) / 2
import BonsaiEngine
import BonsaiNN

/// A projector of features to the unit sphere: Linear(d, d) -> ReLU -> Linear(d, out) -> L2-normalise.
public final class AlignUniformProjector: Module {
  // keys as nn.Sequential's: projector.0 and projector.2
  public let first: Linear, second: Linear

  public init(width: Int, out: Int = 128, rng: RandomSource) {
    first = Linear(width, width, rng: rng); second = Linear(width, out, rng: rng)
  }

  public func callAsFunction(_ x: Tensor) -> Tensor {
    second(first(x).relu()).l2Normalized()
  }

  /// Parameters under the official code's keys (`projector.0.weight`, `projector.2.bias`, ...).
  public func projectorParameters(prefix: String) -> [(key: String, tensor: Tensor)] {
    [(prefix + "0.weight", first.weight), (prefix + "0.bias", first.bias!), (prefix + "2.weight", second.weight), (prefix + "2.bias", second.bias!)]
  }
}

extension Tensor {
  /// Each row divided by its L2 norm (torch.nn.functional.normalize, eps 1e-12).
  public func l2Normalized() -> Tensor {
    self / ((self * self).sum(axis: 1, keepDims: true) + 1e-24).sqrt()
  }
}

extension DistillationLoss {
  /// mean_i ||s_i - t_i||^2 for rows of equal width.
  public static func alignment(_ s: Tensor, _ t: Tensor) -> Tensor {
    let d = s - t
    return (d * d).sum(axis: 1).mean()
  }

  /// log mean_{i<j} exp(-t ||x_i - x_j||^2) over the rows of x [B, D] (B >= 2), with the squared distances
  /// from the Gram matrix: |x_i|^2 + |x_j|^2 - 2 x_i.x_j.
  public static func uniformity(_ x: Tensor, t: Float = 2) -> Tensor {
    let b = x.size(0)
    precondition(b >= 2, "uniformity: needs at least 2 rows, got \(b)")
    let sq = (x * x).sum(axis: 1, keepDims: true)  // [B, 1]
    let distances = sq + sq.reshaped(to: [1, b]) - x.linear(weight: x, bias: nil).scaled(by: 2)
    var upper = [Float](repeating: 0, count: b * b)
    for i in 0..<b { for j in (i + 1)..<b { upper[i * b + j] = 1 } }
    let pairs = Float(b * (b - 1) / 2)
    return ((distances.scaled(by: -t).exp() * Tensor(upper, shape: [b, b])).sum().scaled(by: 1 / pairs)).log()
  }

  /// align_w * alignment + unif_w * (uniformity(s) + uniformity(t)) / 2 of projected features.
  public static func alignUniform(student s: Tensor, teacher t: Tensor, alignWeight: Float = 1, uniformWeight: Float = 1) -> Tensor {
    alignment(s, t).scaled(by: alignWeight) + (uniformity(s) + uniformity(t)).scaled(by: uniformWeight / 2)
  }
}

/// Alignment/uniformity options, saved in config.json (`distill --loss align-uniform`).
public struct AlignUniformConfig: Codable, Sendable, Equatable {
  public var alignWeight: Float = 1
  public var uniformWeight: Float = 1
  /// Width of the projected features.
  public var dim = 128
  public init() {}
  enum CodingKeys: String, CodingKey { case alignWeight = "align_weight", uniformWeight = "uniform_weight", dim }
}

/// The loss term: the student's sentence vector (the first token's final hidden state, which both classification
/// heads read) and the teacher's (cached: its backbone is frozen) through their own projectors, which train with
/// the student and are checkpointed but not exported. Works across tokenizers: each model reads its own tokens.
/// Under data parallelism the uniformity is taken within each rank's share of the batch.
final class AlignUniformDistillation: LossTerm {
  let teacher: Teacher
  let config: AlignUniformConfig
  let student: AlignUniformProjector, teacherProjector: AlignUniformProjector
  static let prefix = "align_uniform"
  var meter: (align: [Double], uniform: [Double]) = ([], [])

  init(teacher: Teacher, studentWidth: Int, config: AlignUniformConfig, rng: RandomSource) {
    self.teacher = teacher; self.config = config
    student = AlignUniformProjector(width: studentWidth, out: config.dim, rng: rng)
    teacherProjector = AlignUniformProjector(width: teacher.model.encoderModel.hiddenSize, out: config.dim, rng: rng)
  }

  var parameters: [(key: String, tensor: Tensor)] {
    student.projectorParameters(prefix: Self.prefix + ".student.projector.") + teacherProjector.projectorParameters(prefix: Self.prefix + ".teacher.projector.")
  }

  func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let rows = output.batch.indices, T = output.inputs.tokens
    let s = student(output.hiddenStates.last!.gatherRows((0..<rows.count).map { $0 * T }))
    let t = teacherProjector(Tensor(rows.flatMap { teacher.features[$0] }, shape: [rows.count, teacher.model.encoderModel.hiddenSize]))
    let align = DistillationLoss.alignment(s, t)
    guard rows.count >= 2 else { return align.scaled(by: config.alignWeight) }  // no pairs to spread
    let uniform = (DistillationLoss.uniformity(s) + DistillationLoss.uniformity(t)).scaled(by: 0.5)
    meter.align.append(Double(align.item)); meter.uniform.append(Double(uniform.item))
    return align.scaled(by: config.alignWeight) + uniform.scaled(by: config.uniformWeight)
  }

  /// One row per example: the sentence vectors.
  func lossUnits(_ output: TaskOutput) -> Int { output.batch.indices.count }

  func stepMetrics() -> [String: Double] {
    defer { meter = ([], []) }
    guard !meter.align.isEmpty else { return [:] }
    return ["align_loss": meter.align.reduce(0, +) / Double(meter.align.count), "uniform_loss": meter.uniform.reduce(0, +) / Double(meter.uniform.count)]
  }

  func saveState(to checkpoint: CheckpointWriter) throws { try checkpoint.write(Self.prefix, tensors: parameters, metadata: ["format": "pt"]) }

  func restoreState(from checkpoint: CheckpointReader) throws {
    let file = try checkpoint.tensors(Self.prefix)
    for (key, t) in parameters { try file.read(key, into: t) }
  }
}
