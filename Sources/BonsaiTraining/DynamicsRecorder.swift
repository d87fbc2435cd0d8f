// Training dynamics for data maps (Dynamics.swift): per training example and epoch, the probability of
// the gold label and whether the argmax was right, from the training forward pass ("train", as FTFT)
// or from an extra eval-mode pass over the training split at the end of each epoch ("eval"). Texts the
// teacher labelled (distill --unlabeled) are not in the data file, so they get no records.
import BonsaiEngine
import Foundation

final class DynamicsRecorder: TrainingComponent {
  let task: ClassificationTask
  /// "train" or "eval".
  let pass: String
  let url: URL
  var log: DynamicsLog?

  public init(task: ClassificationTask, pass: String, url: URL) { self.task = task; self.pass = pass; self.url = url }

  /// Rank 0 alone writes dynamics.jsonl.
  public func willStart(_ run: TrainingRun, resumed: Bool) throws {
    if run.isWriter { log = try DynamicsLog(url: url, truncateAfter: run.state.globalStep) }
  }

  /// Under data parallelism every rank's records are gathered to rank 0, in the global batch's row order.
  public func didForward(_ output: TaskOutput, run: TrainingRun) throws {
    guard pass == "train" else { return }
    let mine = output.batch.isWeightless ? [] : records(output, step: run.state.globalStep + 1, epoch: run.state.epoch)
    guard run.communicator.size > 1 else { log?.append(mine); return }
    let gathered = run.communicator.allGather(Array(try JSONEncoder().encode(mine)))
    log?.append(try gathered.flatMap { try JSONDecoder().decode([DynamicsRecord].self, from: Data($0)) })
  }

  public func didStep(_ report: inout StepReport, run: TrainingRun) throws {
    guard pass == "eval" && report.endOfEpoch else { return }
    let train = task.trainIndices
    for start in stride(from: 0, to: train.count, by: 64) {
      let output = withoutGrad { task.forward(SampledBatch(indices: Array(train[start..<min(start + 64, train.count)])), rng: nil) }
      log?.append(records(output, step: report.step, epoch: report.epoch))
    }
  }

  public func didFinish(_ run: TrainingRun) { log = nil }

  /// One record per row whose example has a line in the data file.
  func records(_ output: TaskOutput, step: Int, epoch: Int) -> [DynamicsRecord] {
    dynamicsRecords(logits: output.logitValues, classes: output.logits.size(-1), gold: output.targets,
                    ids: output.rowExamples.map { task.exampleID($0) ?? -1 }, step: step, epoch: epoch).filter { $0.id >= 0 }
  }
}
