// Self-distillation from the previous mini-batch for causal language models (DynSDPB / DLB on token
// logits). Each target token of the repeated half learns from the distribution the model gave that same
// token one step earlier. Keeping whole rows would cost V floats a token (49,152 x 4 bytes = 192 KiB for
// SmolLM2: hundreds of MB for a half batch of long sequences), so each row is kept as
//   - its weight alpha_i and temperature T_i (the rules of SelfDistillation.swift, computed from the full
//     row when it is made: uncertainty from its entropy, discrimination from the target token),
//   - the k most likely tokens' probabilities q_j = softmax(z / T_i)_j (exact, over the full vocabulary),
//   - the rest of the distribution as one bucket r = 1 - sum_j q_j.
// The term is then the KL divergence of the coarse distributions (k tokens + one "every other token"
// bucket, where the student's bucket is its probability outside those k tokens):
//   KL_i = sum_j q_j (log q_j - log p_j) + r (log r - log p_rest),   p = softmax(z_now / T_i),
//   L = (1/n) sum_i alpha_i T_i^2 KL_i.
// With k = V it is the full KL of SelfDistillation.swift; a smaller k drops only the tail's shape.
import BonsaiCheckpoint
import BonsaiEngine
import Foundation

/// One target token's previous distribution, kept compactly.
public struct TopKRow: Equatable, Sendable {
  public var ids: [Int32]
  public var probabilities: [Float]
  public var rest: Float
  public var alpha: Float
  public var temperature: Float
}

extension TopKRow {
  /// As ranks exchange it (DataParallel.swift).
  func encode(_ w: inout ByteWriter) { w.int32s(ids); w.floats(probabilities); w.float(rest); w.float(alpha); w.float(temperature) }
  init(_ r: inout ByteReader) {
    ids = r.int32s(); probabilities = r.floats(); rest = r.float(); alpha = r.float(); temperature = r.float()
  }
}

public enum TokenSelfDistillation {
  /// The compact row of logits `z` whose target is `y`.
  public static func row(_ z: UnsafeBufferPointer<Float>, target y: Int, k: Int, config c: SelfDistillConfig) -> TopKRow {
    let V = z.count
    var m: Float = -.infinity
    for v in z { m = max(m, v) }
    var sum = 0.0, ent = 0.0
    for v in z { let e = Double(Foundation.exp(v - m)); sum += e }
    let logSum = Foundation.log(sum)
    var best = -Double.infinity
    for (j, v) in z.enumerated() {
      let lp = Double(v - m) - logSum, p = Foundation.exp(lp)
      ent -= p * lp
      if j != y { best = max(best, p) }
    }
    var alpha = c.alpha, t = c.temperature
    if c.rule == "dynamic" {
      let u = V > 1 ? ent / Foundation.log(Double(V)) : 0, d = Foundation.exp(Double(z[y] - m) - logSum) - best
      alpha = Float(Double(c.alpha) * (1 - u) * (1 + d) / 2)
      t = Float(Double(c.tMin) + Double(c.tMax - c.tMin) * (1 - u))
    }
    // top k by logit (a min-heap would do; k is small, so keep a sorted buffer)
    var top: [(Float, Int)] = []
    top.reserveCapacity(k + 1)
    for (j, v) in z.enumerated() where top.count < k || v > top[top.count - 1].0 {
      let at = top.firstIndex { $0.0 < v } ?? top.count
      top.insert((v, j), at: at)
      if top.count > k { top.removeLast() }
    }
    var sumT = 0.0
    for v in z { sumT += Double(Foundation.exp((v - m) / t)) }
    let q = top.map { Float(Double(Foundation.exp(($0.0 - m) / t)) / sumT) }
    return TopKRow(ids: top.map { Int32($0.1) }, probabilities: q, rest: max(0, 1 - q.reduce(0, +)), alpha: alpha, temperature: t)
  }

  /// (1/n) sum_i alpha_i T_i^2 KL_i for current logits [n, V] against `rows`.
  public static func loss(current: Tensor, rows: [TopKRow]) -> Tensor {
    let n = rows.count, V = current.size(-1)
    precondition(current.shape == [n, V], "tokenSelfDistillation: logits \(current.shape) for \(n) rows")
    var q = [Float](repeating: 0, count: n * V), outside = [Float](repeating: 1, count: n * V)
    var constant = 0.0
    for (i, r) in rows.enumerated() {
      for (id, p) in zip(r.ids, r.probabilities) { q[i * V + Int(id)] = p; outside[i * V + Int(id)] = 0; if p > 0 { constant += Double(r.alpha * r.temperature * r.temperature) * Double(p) * Foundation.log(Double(p)) } }
      if r.rest > 0 { constant += Double(r.alpha * r.temperature * r.temperature) * Double(r.rest) * Foundation.log(Double(r.rest)) }
    }
    let invT = Tensor(rows.map { 1 / $0.temperature }, shape: [n, 1])
    let logp = (current * invT).logSoftmax()
    let w = Tensor(rows.map { $0.alpha * $0.temperature * $0.temperature }, shape: [n])
    let cross = (Tensor(q, shape: [n, V]) * logp).sum(axis: 1)  // sum_j q_j log p_j
    let rest = ((Tensor(outside, shape: [n, V]) * logp.exp()).sum(axis: 1) + 1e-12).log() * Tensor(rows.map(\.rest), shape: [n])
    return ((cross + rest) * w).sum().scaled(by: -1 / Float(n)) + Float(constant / Double(n))
  }
}

/// The term: keeps the compact rows of each step's new examples for the next step (in checkpoints too).
final class TokenSelfDistillationTerm: LossTerm {
  let config: SelfDistillConfig
  /// Compact rows of the previous step's new examples, by example index, one per target token in order.
  var previous: [Int: [TopKRow]] = [:]
  var meter = SelfDistillationMeter()
  /// Largest number of rows kept at once, for the summary's memory figure.
  var peakRows = 0

  init(config: SelfDistillConfig) { self.config = config }

  /// The target tokens of the repeated examples, when the previous rows of all of them are kept.
  func lossUnits(_ output: TaskOutput) -> Int {
    let repeated = Set(output.batch.indices.prefix(output.batch.repeated))
    let now = output.rowExamples.filter { repeated.contains($0) }.count
    return repeated.reduce(0) { $0 + (previous[$1]?.count ?? 0) } == now ? now : 0
  }

  func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let nR = output.batch.repeated, repeated = Set(output.batch.indices.prefix(nR))
    var term: Tensor?
    let rowsNow = output.rowExamples.indices.filter { repeated.contains(output.rowExamples[$0]) }
    let earlier = output.batch.indices.prefix(nR).flatMap { previous[$0] ?? [] }
    if nR > 0 && !rowsNow.isEmpty && earlier.count == rowsNow.count {
      term = TokenSelfDistillation.loss(current: output.logits.gatherRows(rowsNow), rows: earlier)
      meter.add(alpha: earlier.reduce(0) { $0 + Double($1.alpha) } / Double(earlier.count),
                temperature: earlier.reduce(0) { $0 + Double($1.temperature) } / Double(earlier.count))
    }
    let z = output.logits.data, V = output.logits.size(-1), k = min(config.topK, V)
    var kept: [Int: [TopKRow]] = [:]
    for (i, e) in output.rowExamples.enumerated() where !repeated.contains(e) && !output.batch.isWeightless {
      kept[e, default: []].append(TokenSelfDistillation.row(UnsafeBufferPointer(start: z + i * V, count: V), target: output.targets[i], k: k, config: config))
    }
    previous = run.communicator.allGather(kept, encode: { rows, w in w.int(rows.count); for r in rows { r.encode(&w) } },
                                          decode: { r in (0..<r.int()).map { _ in TopKRow(&r) } })  // every rank keeps every rank's
    peakRows = max(peakRows, previous.values.reduce(0) { $0 + $1.count })
    return term
  }

  func stepMetrics() -> [String: Double] { meter.take() }
  var curves: [CurveSpec] { meter.curves(config) }

  /// Bytes a kept row takes: k ids and probabilities, the rest, alpha and T.
  var bytesPerRow: Int { 8 * config.topK + 12 }

  func summary(_ run: TrainingRun) -> [String: Any] {
    ["sd_top_k": config.topK, "sd_bytes_per_token": bytesPerRow, "sd_peak_kept_tokens": peakRows, "sd_peak_kept_bytes": peakRows * bytesPerRow]
  }

  func saveState(to checkpoint: CheckpointWriter) throws {
    let (tensors, int32s) = TopKRow.entries(previous, k: config.topK)
    try checkpoint.write("self_distill_previous", tensors: tensors, int32s: int32s)
  }

  func restoreState(from checkpoint: CheckpointReader) throws {
    previous = try TopKRow.rows(in: checkpoint.tensors("self_distill_previous"), k: config.topK)
  }
}

extension TopKRow {
  /// Rows by example as safetensors entries: probabilities [R, k] and scalars [R, 3] (rest, alpha, T), and the
  /// examples, their row counts and the token ids (k a row, -1 past a shorter row) as int32.
  static func entries(_ rows: [Int: [TopKRow]], k: Int) -> (tensors: [(key: String, tensor: Tensor)], int32s: [(key: String, values: [Int32])]) {
    let keys = rows.keys.sorted(), flat = keys.flatMap { rows[$0]! }
    func padded<T>(_ a: [T], _ fill: T) -> [T] { a + [T](repeating: fill, count: k - a.count) }
    return ([("probabilities", Tensor(flat.flatMap { padded($0.probabilities, 0) }, shape: [flat.count, k])),
             ("scalars", Tensor(flat.flatMap { [$0.rest, $0.alpha, $0.temperature] }, shape: [flat.count, 3]))],
            [("examples", keys.map { Int32($0) }), ("counts", keys.map { Int32(rows[$0]!.count) }), ("ids", flat.flatMap { padded($0.ids, -1) })])
  }

  /// The rows `entries` wrote, by example.
  static func rows(in file: SafeTensorsFile, k: Int) throws -> [Int: [TopKRow]] {
    let keys = try file.int32s("examples"), counts = try file.int32s("counts"), ids = try file.int32s("ids")
    let p = try file.tensor("probabilities").scalars, s = try file.tensor("scalars").scalars
    var out: [Int: [TopKRow]] = [:], row = 0
    for (key, count) in zip(keys, counts) {
      out[Int(key)] = (0..<Int(count)).map { _ in
        defer { row += 1 }
        let n = ids[(row * k)..<((row + 1) * k)].prefix { $0 >= 0 }.count
        return TopKRow(ids: Array(ids[(row * k)..<(row * k + n)]), probabilities: Array(p[(row * k)..<(row * k + n)]),
                       rest: s[3 * row], alpha: s[3 * row + 1], temperature: s[3 * row + 2])
      }
    }
    return out
  }
}
