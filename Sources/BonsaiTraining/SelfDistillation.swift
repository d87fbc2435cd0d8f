// Self-distillation from the previous mini-batch: DLB (Shen et al. 2022) and DynSDPB (Fu et al. 2024;
// shared/METHODS.md "DynSDPB"). Batches repeat half of the previous step's examples; for that half R,
//   L = CE(all) + (1/|R|) sum_{i in R} alpha_i T_i^2 KL(softmax(z_prev_i / T_i) || softmax(z_i / T_i)),
// with z_prev the logits the model produced for example i one step earlier (kept, detached, not
// recomputed). Static (DLB): alpha_i = alpha, T_i = T. Dynamic (Bonsai's rule, since the paper's exact
// formulas are not public): from the previous prediction p = softmax(z_prev),
//   u_i = H(p) / log C                      uncertainty in [0, 1]
//   d_i = p[y] - max_{c != y} p[c]          discrimination in [-1, 1]
//   alpha_i = alpha (1 - u_i)(1 + d_i) / 2   (confident, right predictions teach most)
//   T_i = T_min + (T_max - T_min)(1 - u_i)   (confident predictions are softened more)
import BonsaiEngine
import Foundation

/// Self-distillation options, saved in config.json.
public struct SelfDistillConfig: Codable, Sendable, Equatable {
  /// "dynamic" (DynSDPB) or "static" (DLB).
  public var rule = "dynamic"
  public var alpha: Float = 1
  /// Static rule's temperature.
  public var temperature: Float = 3
  public var tMin: Float = 1
  public var tMax: Float = 4
  /// Causal LMs: tokens of each previous distribution kept (the rest as one bucket; TokenSelfDistillation.swift).
  public var topK = 32
  public init() {}
  enum CodingKeys: String, CodingKey { case rule, alpha, temperature, tMin = "t_min", tMax = "t_max", topK = "top_k" }

  public init(from decoder: Decoder) throws {  // top_k came later: older run folders still resume
    let c = try decoder.container(keyedBy: CodingKeys.self)
    rule = try c.decode(String.self, forKey: .rule); alpha = try c.decode(Float.self, forKey: .alpha)
    temperature = try c.decode(Float.self, forKey: .temperature); tMin = try c.decode(Float.self, forKey: .tMin)
    tMax = try c.decode(Float.self, forKey: .tMax); topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? 32
  }
}

public enum SelfDistillation {
  /// Per-example weight and temperature from the previous logits (rows of `previous`, C classes each).
  public static func weights(previous: [[Float]], labels: [Int], config c: SelfDistillConfig) -> (alpha: [Float], temperature: [Float]) {
    guard c.rule == "dynamic" else {
      return ([Float](repeating: c.alpha, count: previous.count), [Float](repeating: c.temperature, count: previous.count))
    }
    var alphas: [Float] = [], temps: [Float] = []
    for (row, y) in zip(previous, labels) {
      let m = Double(row.max()!)
      let e = row.map { exp(Double($0) - m) }
      let z = e.reduce(0, +)
      let p = e.map { $0 / z }
      let h = -p.reduce(0.0) { $0 + ($1 > 0 ? $1 * log($1) : 0) }
      let u = row.count > 1 ? h / log(Double(row.count)) : 0
      let other = p.enumerated().filter { $0.offset != y }.map(\.element).max() ?? 0
      let d = p[y] - other
      alphas.append(Float(Double(c.alpha) * (1 - u) * (1 + d) / 2))
      temps.append(Float(Double(c.tMin) + Double(c.tMax - c.tMin) * (1 - u)))
    }
    return (alphas, temps)
  }

  /// (1/n) sum_i alpha_i T_i^2 KL(softmax(previous_i / T_i) || softmax(current_i / T_i)) for current [n, C].
  public static func loss(current: Tensor, previous: [[Float]], alpha: [Float], temperature: [Float]) -> Tensor {
    let n = previous.count, c = current.size(-1)
    precondition(current.shape == [n, c], "selfDistillation: logits \(current.shape) for \(n) previous rows")
    var q = [Float](repeating: 0, count: n * c), logq = q
    for i in 0..<n {
      let t = Double(temperature[i])
      let m = Double(previous[i].max()!) / t
      let e = previous[i].map { exp(Double($0) / t - m) }
      let z = e.reduce(0, +)
      for j in 0..<c { q[i * c + j] = Float(e[j] / z); logq[i * c + j] = Float(Double(previous[i][j]) / t - m - log(z)) }
    }
    let invT = Tensor(temperature.map { 1 / $0 }, shape: [n, 1])
    let target = Tensor(q, shape: [n, c]), logTarget = Tensor(logq, shape: [n, c])
    let logp = (current * invT).logSoftmax()
    let kl = (target * (logTarget - logp)).sum(axis: 1)  // [n]
    let w = Tensor(zip(alpha, temperature).map { $0 * $1 * $1 }, shape: [n])
    return (kl * w).sum().scaled(by: 1 / Float(n))
  }
}

/// Self-distillation as a loss term: the repeated half of each batch (the repeat-half sampler's first
/// `repeated` rows) learns from the logits it got one step earlier. It keeps the logits of each step's
/// new examples for the next step, in checkpoints too. One logits row per example (classification).
final class SelfDistillationTerm: LossTerm {
  let config: SelfDistillConfig
  /// Logits of the previous step's new examples, by example index.
  var previous: [Int: [Float]] = [:]
  var meter = SelfDistillationMeter()

  public init(config: SelfDistillConfig) { self.config = config }

  /// The repeated rows, when the previous logits of all of them are kept (else the term adds nothing).
  public func lossUnits(_ output: TaskOutput) -> Int {
    let repeated = output.batch.indices.prefix(output.batch.repeated)
    return repeated.allSatisfy { previous[$0] != nil } ? repeated.count : 0
  }

  public func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let idx = output.batch.indices, nR = output.batch.repeated, k = output.logits.size(-1)
    precondition(output.rowExamples == idx, "SelfDistillationTerm: needs one logits row per example")
    var term: Tensor?
    let earlier = idx.prefix(nR).compactMap { previous[$0] }
    if nR > 0 && earlier.count == nR {
      let (alpha, temperature) = SelfDistillation.weights(previous: earlier, labels: Array(output.targets.prefix(nR)), config: config)
      term = SelfDistillation.loss(current: output.logits.gatherRows(Array(0..<nR)), previous: earlier, alpha: alpha, temperature: temperature)
      meter.add(alpha: Double(alpha.reduce(0, +)) / Double(nR), temperature: Double(temperature.reduce(0, +)) / Double(nR))
    }
    let z = output.logitValues
    let kept = output.batch.isWeightless ? [:] : Dictionary(uniqueKeysWithValues: (nR..<idx.count).map { (idx[$0], Array(z[($0 * k)..<(($0 + 1) * k)])) })
    previous = run.communicator.allGather(kept, encode: { $1.floats($0) }, decode: { $0.floats() })  // every rank keeps every rank's
    return term
  }

  public func stepMetrics() -> [String: Double] { meter.take() }
  public var curves: [CurveSpec] { meter.curves(config) }

  public func saveState(to checkpoint: CheckpointWriter) throws {
    let ids = previous.keys.sorted(), k = previous.first?.value.count ?? 0
    try checkpoint.write("self_distill_previous", tensors: [("logits", Tensor(ids.flatMap { previous[$0]! }, shape: [ids.count, k]))],
                         int32s: [("ids", ids.map { Int32($0) })])
  }

  public func restoreState(from checkpoint: CheckpointReader) throws {
    let file = try checkpoint.tensors("self_distill_previous")
    let ids = try file.int32s("ids"), z = try file.tensor("logits").scalars
    let k = ids.isEmpty ? 0 : z.count / ids.count
    previous = Dictionary(uniqueKeysWithValues: ids.enumerated().map { (Int($1), Array(z[($0 * k)..<(($0 + 1) * k)])) })
  }
}

/// The step metrics of both self-distillation terms: the mean alpha and temperature of each micro-batch of the
/// current optimizer step, reported as the step's means (absent on a step whose batches repeated nothing).
struct SelfDistillationMeter {
  var alpha: [Double] = [], temperature: [Double] = []

  mutating func add(alpha a: Double, temperature t: Double) { alpha.append(a); temperature.append(t) }

  mutating func take() -> [String: Double] {
    defer { alpha = []; temperature = [] }
    guard !alpha.isEmpty else { return [:] }
    return ["sd_alpha": alpha.reduce(0, +) / Double(alpha.count), "sd_temperature": temperature.reduce(0, +) / Double(temperature.count)]
  }

  func curves(_ c: SelfDistillConfig) -> [CurveSpec] {
    [CurveSpec(key: "sd_alpha", name: "mean alpha", scale: 1),
     CurveSpec(key: "sd_temperature", name: "mean T / \(Int(c.tMax))", scale: 1 / Double(max(c.tMax, c.temperature)))]
  }
}
