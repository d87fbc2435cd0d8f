// A loss term written outside the library (docs/training.md's example) plugs into the Trainer, logs
// its step metric, keeps its state in checkpoints and resumes exactly; the loop never learns its name.
import BonsaiData
import BonsaiEngine
import BonsaiTraining
import Foundation
import XCTest

/// Confidence penalty (Pereyra et al. 2017): beta * mean_i sum_c p_ic log p_ic, i.e. minus beta times
/// the entropy of the predictions. Keeps a running mean of the entropy, in checkpoints too.
final class ConfidencePenalty: LossTerm {
  struct State: Codable { var batches = 0; var meanEntropy = 0.0 }
  let beta: Float
  var state = State()
  init(beta: Float) { self.beta = beta }

  func loss(_ output: TaskOutput, run: TrainingRun) throws -> Tensor? {
    let z = output.logits
    let negativeEntropy = (z.softmax() * z.logSoftmax()).sum(axis: 1).sum().scaled(by: 1 / Float(z.size(0)))
    state.batches += 1
    state.meanEntropy += (Double(-negativeEntropy.item) - state.meanEntropy) / Double(state.batches)
    return negativeEntropy.scaled(by: beta)
  }

  func stepMetrics() -> [String: Double] { ["mean_entropy": state.meanEntropy] }
  func saveState(to checkpoint: CheckpointWriter) throws { try checkpoint.write("confidence_penalty", json: state) }
  func restoreState(from checkpoint: CheckpointReader) throws {
    state = try checkpoint.json("confidence_penalty", as: State.self) ?? State()
  }
}

final class LossTermTests: XCTestCase {
  func testALossTermOfYourOwnPlugsInAndResumesExactly() throws {
    let tmp = try makeTemporaryFolder("term")
    defer { try? FileManager.default.removeItem(at: tmp) }
    let minilm = Assets.home.appendingPathComponent("models/minilm")
    var c = TrainConfig(model: minilm.path, data: try writeTinyCSV(in: tmp))
    c.epochs = 2; c.batchSize = 8; c.maxLength = 16; c.threads = 2; c.evalEvery = 2
    func penalised(_ name: String) -> Trainer {
      let trainer = Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent(name))
      trainer.extraLossTerms.append { _ in ConfidencePenalty(beta: 0.5) }
      return trainer
    }
    try Trainer(config: c, modelFolder: minilm, runDir: tmp.appendingPathComponent("plain")).run(resume: false)
    try penalised("whole").run(resume: false)
    setenv("BONSAI_TEST_STOP_AFTER_STEP", "3", 1)
    XCTAssertThrowsError(try penalised("cut").run(resume: false))
    unsetenv("BONSAI_TEST_STOP_AFTER_STEP")
    XCTAssertNotNil(try JSONSerialization.jsonObject(with: Data(contentsOf: tmp.appendingPathComponent("cut/checkpoint-last/confidence_penalty.json"))),
                    "the term's state is in the checkpoint")
    try penalised("cut").run(resume: true)

    func file(_ path: String) throws -> Data { try Data(contentsOf: tmp.appendingPathComponent(path)) }
    XCTAssertEqual(try file("cut/final/model.safetensors"), try file("whole/final/model.safetensors"), "resumed = uninterrupted, bit for bit")
    XCTAssertEqual(try metricsWithoutTimes(tmp.appendingPathComponent("cut")), try metricsWithoutTimes(tmp.appendingPathComponent("whole")),
                   "the same metrics, the term's running mean included")
    XCTAssertNotEqual(try file("whole/final/model.safetensors"), try file("plain/final/model.safetensors"), "the term changed training")
    let steps = try String(contentsOf: tmp.appendingPathComponent("whole/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
      .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }.filter { $0["loss"] != nil }
    XCTAssertGreaterThan(steps.count, 5)
    for line in steps {
      let entropy = try XCTUnwrap(line["mean_entropy"] as? Double, "every step line carries the term's metric")
      XCTAssertTrue(entropy > 0 && entropy <= log(2.0) + 1e-9, "an entropy of two classes, got \(entropy)")
    }
  }
}
