// metrics.jsonl and learning-curve.svg: one line per optimizer step (loss, learning rate and the
// components' step metrics), one per dev evaluation and one for the test split; the curve is redrawn
// at every checkpoint. On resume, lines past the checkpoint's step are dropped.
import Foundation

public final class MetricsLog: TrainingComponent {
  public let url: URL
  /// The dev metric named on the curve.
  let metricName: String
  var loss: [(Int, Double)] = [], metric: [(Int, Double)] = []
  /// Points of the components' curves (`TrainingComponent.curves`), by key.
  var extra: [String: [(Int, Double)]] = [:]
  var specs: [CurveSpec] = []

  init(url: URL, metricName: String) { self.url = url; self.metricName = metricName }

  /// Whether this process writes (rank 0 under data parallelism).
  var writes = true

  public func willStart(_ run: TrainingRun, resumed: Bool) throws {
    specs = run.components.flatMap(\.curves)
    writes = run.isWriter
    guard writes else { return }
    if !resumed { try? FileManager.default.removeItem(at: url) }
    var kept: [String] = []
    if let text = try? String(contentsOf: url, encoding: .utf8) {
      for line in text.split(separator: "\n") {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], let s = obj["step"] as? Int,
              s <= run.state.globalStep, obj["test"] == nil else { continue }
        kept.append(String(line))
        if let l = obj["loss"] as? Double { loss.append((s, l)) }
        if let e = obj["eval"] as? [String: Any] { metric.append((s, metricName == "loss" ? 0 : e[metricName] as? Double ?? 0)) }
        for spec in specs { if let v = obj[spec.key] as? Double { extra[spec.key, default: []].append((s, v)) } }
      }
    }
    try (kept.map { $0 + "\n" }.joined()).write(to: url, atomically: true, encoding: .utf8)
  }

  public func didStep(_ report: inout StepReport, run: TrainingRun) throws {
    var line: [String: Any] = ["step": report.step, "epoch": report.epochProgress, "loss": Double(report.loss),
                               "learning_rate": Double(report.learningRate)]
    for (key, value) in report.metrics { line[key] = value }
    append(line)
    loss.append((report.step, Double(report.loss)))
    for spec in specs { if let v = report.metrics[spec.key] { extra[spec.key, default: []].append((report.step, v)) } }
  }

  /// A dev evaluation's line; `curveValue` is drawn on the curve's right axis.
  public func recordEvaluation(step: Int, evaluation: Any, curveValue: Double) {
    append(["step": step, "eval": evaluation])
    metric.append((step, curveValue))
  }

  public func didSaveCheckpoint(_ run: TrainingRun) throws {
    let curves = specs.compactMap { spec in extra[spec.key].map { (name: spec.name, points: $0, scale: spec.scale) } }
    try learningCurveSVG(loss: loss, metric: metric, metricName: metricName, extra: curves)
      .write(to: run.runDir.appendingPathComponent("learning-curve.svg"), atomically: true, encoding: .utf8)
  }

  /// Appends one JSON object as a line (keys sorted).
  public func append(_ obj: [String: Any]) {
    guard writes, let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), let h = FileHandle(forWritingAtPath: url.path) else { return }
    h.seekToEndOfFile()
    h.write(data + Data("\n".utf8))
    try? h.close()
  }
}

func jsonObject<T: Encodable>(_ value: T) throws -> Any {
  try JSONSerialization.jsonObject(with: JSONEncoder().encode(value))
}

extension JSONEncoder {
  static var pretty: JSONEncoder { let e = JSONEncoder(); e.outputFormatting = [.prettyPrinted, .sortedKeys]; return e }
}
