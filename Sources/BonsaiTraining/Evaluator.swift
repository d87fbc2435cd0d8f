// Dev evaluation with early stopping: every `evalEvery` optimizer steps (0: at the end of each epoch)
// and at the last step, the task scores the dev split; an improvement on the chosen metric exports
// best/, `patience` evaluations without one stop the run.
import Foundation

final class Evaluator: TrainingComponent {
  struct State: Codable {
    var bestMetric: Double?
    var bestStep: Int?
    var evalsWithoutImprovement = 0
    enum CodingKeys: String, CodingKey { case bestMetric = "best_metric", bestStep = "best_step", evalsWithoutImprovement = "evals_without_improvement" }
  }
  var state = State()
  /// accuracy, macro_f1 or loss (lower is better).
  let metric: String
  let evalEvery: Int, patience: Int

  public init(metric: String, evalEvery: Int, patience: Int) { self.metric = metric; self.evalEvery = evalEvery; self.patience = patience }

  public func didStep(_ report: inout StepReport, run: TrainingRun) throws {
    let evalNow = evalEvery > 0 ? report.step % evalEvery == 0 : report.endOfEpoch
    if evalNow { report.wantsCheckpoint = true }
    guard evalNow || report.isLast else { return }
    let dev = run.evaluate(run.task.devIndices)
    traceMemory("evaluated")
    let value = dev.value(metric) ?? dev.value("accuracy") ?? 0
    run.metrics.recordEvaluation(step: report.step, evaluation: try dev.jsonObject(), curveValue: Evaluator.lowerIsBetter(metric) ? 0 : value)
    run.progress.message("step \(report.step): " + dev.describe(metric: metric, value: value))
    if state.bestMetric.map({ Evaluator.lowerIsBetter(metric) ? value < $0 : value > $0 }) ?? true {
      state.bestMetric = value; state.bestStep = report.step; state.evalsWithoutImprovement = 0
      if run.isWriter { try run.task.export(to: run.runDir.appendingPathComponent("best"), plan: run.plan) }
    } else {
      state.evalsWithoutImprovement += 1
    }
    if patience > 0 && state.evalsWithoutImprovement >= patience {
      run.progress.message("early stop: no improvement in \(patience) evaluations")
      report.stop = true
    }
  }

  /// Loss and perplexity improve downwards, every other metric upwards.
  static func lowerIsBetter(_ metric: String) -> Bool { ["loss", "perplexity"].contains(metric) }

  public func saveState(to checkpoint: CheckpointWriter) throws { try checkpoint.write("early_stopping", json: state) }

  /// (Checkpoints written before the early-stopping state had its own file kept it in trainer_state.json.)
  public func restoreState(from checkpoint: CheckpointReader) throws {
    state = try checkpoint.json("early_stopping", as: State.self) ?? checkpoint.json("trainer_state", as: State.self) ?? State()
  }

  public func summary(_ run: TrainingRun) -> [String: Any] {
    ["best_step": state.bestStep as Any, "best_dev_\(metric)": state.bestMetric as Any]
  }
}
