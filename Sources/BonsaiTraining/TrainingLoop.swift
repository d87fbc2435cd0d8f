// The training loop (docs/training.md): AdamW-style steps on a linear warm-up/decay schedule with
// gradient accumulation, and every method plugged in as components that it knows only by their
// protocols: the task, loss terms, the parameter plan, the batch sampler and observers.
import BonsaiEngine
import BonsaiModels
import Foundation

/// A run being trained: its parts, where it stands, and the loop. Components read it; only the loop
/// moves the state.
public final class TrainingRun {
  /// The resolved options (config.json).
  public let config: TrainConfig
  /// The run folder: config.json, split.json, metrics, checkpoint-last/, best/, final/.
  public let runDir: URL
  /// Where log lines and the progress bar go.
  public let progress: ProgressSink
  /// What the model learns: batches, forward, task loss, scoring, export.
  public let task: TrainingTask
  /// Added to the task loss in this order.
  public let lossTerms: [LossTerm]
  /// Weight of the task loss (distillation's alpha_ce; 1 otherwise).
  public let taskWeight: Float
  /// What trains and how: the only component that updates weights.
  public let plan: ParameterPlan
  /// Each epoch's batches.
  public let sampler: BatchSampler
  /// metrics.jsonl and learning-curve.svg (also one of the observers).
  public let metrics: MetricsLog
  /// Called after every step in this order (progress, metrics, dynamics, evaluation, ...).
  public let observers: [TrainingComponent]
  /// Where the run stands; moved by the loop only.
  public private(set) var state = TrainerState()
  /// Dropout's random streams; their counter is saved in the trainer state.
  public let rng: RandomSource
  /// Optimizer steps in the schedule: epochs x steps per epoch, or --max-steps if fewer.
  public let totalSteps: Int
  let schedule: LinearSchedule
  var components: [TrainingComponent] { [task, plan] + lossTerms + observers }
  // throughput, for progress and the summary
  public private(set) var examplesSeen = 0, tokensSeen = 0
  public private(set) var started = Date()
  public private(set) var startStep = 0
  /// When the training loop ended (seconds since `started`) and the peak RSS then.
  var trainedAt: (seconds: Double, peakRSS: Int)?
  /// The ranks training together (DataParallel.swift); one process unless launched by mpirun.
  public let communicator: Communicator
  /// Sums the plan's gradients over the ranks.
  public let gradientSync: GradientSync
  /// Whether this process writes the run folder (rank 0).
  public var isWriter: Bool { communicator.rank == 0 }
  var isParallel: Bool { communicator.size > 1 }

  init(config: TrainConfig, runDir: URL, progress: ProgressSink, task: TrainingTask, lossTerms: [LossTerm], taskWeight: Float,
       plan: ParameterPlan, sampler: BatchSampler, metrics: MetricsLog, observers: [TrainingComponent], communicator: Communicator = SingleProcess()) {
    self.communicator = communicator; gradientSync = GradientSync(communicator)
    if communicator.size > 1 { plan.gradientSync = gradientSync }
    self.config = config; self.runDir = runDir; self.progress = progress; self.task = task; self.lossTerms = lossTerms
    self.taskWeight = taskWeight; self.plan = plan; self.sampler = sampler; self.metrics = metrics; self.observers = observers
    rng = RandomSource(seed: config.seed &+ 17)
    let stepsPerEpoch = (sampler.batchesPerEpoch + config.gradientAccumulation - 1) / config.gradientAccumulation
    totalSteps = min(stepsPerEpoch * config.epochs, config.maxSteps ?? Int.max)
    schedule = LinearSchedule(peak: config.learningRate, warmup: Int((Float(totalSteps) * config.warmupRatio).rounded(.up)), total: totalSteps)
  }

  /// Trains to the end of the schedule (or an early stop) from wherever the state stands; returns the summary.
  public func train(resumed: Bool) throws -> [String: Any] {
    defer { for c in components { c.didFinish(self) } }
    progress.message("\(task.splitDescription); \(totalSteps) optimizer steps")
    if isParallel {
      progress.message(String(format: "data parallel: %d ranks, each computes its share of every batch of %d; a step sums %.1f MB of gradients over them (%d MiB buckets)",
                              communicator.size, config.batchSize, Double(4 * plan.reducedFloats) / 1e6, 4 * DataParallel.bucketFloats >> 20))
    }
    started = Date(); startStep = state.globalStep
    for c in components { try c.willStart(self, resumed: resumed) }
    var stop = state.finished || state.globalStep >= totalSteps
    epochs: while state.epoch < config.epochs && !stop {
      let batches = sampler.batches(epoch: state.epoch)
      while state.batchInEpoch < batches.count {
        let learningRate = schedule(state.globalStep), stepStarted = Date()
        let loss = try accumulateGradients(batches, learningRate: learningRate)
        plan.step(learningRate: learningRate, maxGradNorm: config.maxGradNorm)
        state.globalStep += 1
        traceMemory("step \(state.globalStep)")
        var report = makeReport(loss: loss, learningRate: learningRate, batchesInEpoch: batches.count)
        report.metrics["step_seconds"] = Date().timeIntervalSince(stepStarted)
        for c in components { try c.didStep(&report, run: self) }
        if report.endOfEpoch { state.epoch += 1; state.batchInEpoch = 0 }
        stop = report.stop || report.isLast
        if stop { state.finished = true }
        let checkpoint = report.wantsCheckpoint || report.endOfEpoch || stop
        if checkpoint { try saveCheckpoint() }
        if stop { break epochs }
        if checkpoint { try interruptIfAsked() }
        if report.endOfEpoch { continue epochs }
      }
    }
    traceMemory("trained")
    trainedAt = (Date().timeIntervalSince(started), peakRSSBytes())
    return try finish()
  }

  /// Forward and backward over one optimizer step's micro-batches; returns their mean loss (over every rank).
  func accumulateGradients(_ batches: [SampledBatch], learningRate: Float) throws -> Float {
    let micro = config.gradientAccumulation
    var total: Float = 0, done = 0
    repeat {
      let global = batches[state.batchInEpoch]
      let output = forward(global)
      let shares = lossShares(output)
      var loss = task.loss(output)
      if taskWeight * shares[0] != 1 { loss = loss.scaled(by: taskWeight * shares[0]) }
      for (term, share) in zip(lossTerms, shares.dropFirst()) {
        if let t = try term.loss(output, run: self) { loss = loss + (share == 1 ? t : t.scaled(by: share)) }
      }
      for c in components { try c.didForward(output, run: self) }
      guard loss.item.isFinite else { throw TrainingError.nonFiniteLoss(step: state.globalStep + 1, value: loss.item) }
      plan.willBackward(step: state.globalStep, microBatch: done, learningRate: learningRate)
      (micro > 1 ? loss.scaled(by: 1 / Float(micro)) : loss).backward()
      total += loss.item / Float(micro)
      examplesSeen += global.indices.count
      tokensSeen += global.indices.count * output.inputs.tokens
      done += 1
      state.batchInEpoch += 1
    } while done < micro && state.batchInEpoch < batches.count
    if isParallel { var t = [Double(total)]; communicator.allReduceSum(&t); total = Float(t[0]) }
    return total
  }

  /// The forward pass of this rank's share of `global` (all of it in one process), with dropout masks drawn
  /// as the single process draws them for those rows.
  public func forward(_ global: SampledBatch, rng: RandomSource? = nil) -> TaskOutput {
    let rng = rng ?? self.rng
    guard isParallel else { return task.forward(global, rng: rng) }
    let batch = global.sharded(rank: communicator.rank, of: communicator.size, tokens: global.indices.map { task.lengths[$0] }.max() ?? 0)
    rng.rows = (batch.shard!.first, batch.indices.count)
    defer { rng.rows = nil }
    return task.forward(batch, rng: rng)
  }

  /// The task's evaluation of `indices` with the model being trained: under data parallelism each rank scores
  /// every N-th example (longest first, so that the shares take about the same time) and the parts are gathered.
  public func evaluate(_ indices: [Int]) -> Evaluation {
    guard isParallel, let sharded = task as? ShardedEvaluation else { return task.evaluate(indices) }
    let ordered = indices.sorted { (task.lengths[$0], $1) > (task.lengths[$1], $0) }
    let mine = stride(from: communicator.rank, to: ordered.count, by: communicator.size).map { ordered[$0] }
    return sharded.evaluation(of: indices, parts: communicator.allGather(sharded.evaluationPart(mine)))
  }

  /// Each loss's weight on this rank (the task's, then each term's): its share of the rows the loss
  /// averages over in the global batch, so that the ranks' gradients sum to the single process's. All 1
  /// in one process.
  public func lossShares(_ output: TaskOutput) -> [Float] {
    guard isParallel else { return [Float](repeating: 1, count: 1 + lossTerms.count) }
    var units = output.batch.isWeightless ? [Double](repeating: 0, count: 1 + lossTerms.count)
      : [Double(task.lossUnits(output))] + lossTerms.map { Double($0.lossUnits(output)) }
    let local = units
    communicator.allReduceSum(&units)
    return zip(local, units).map { $1 > 0 ? Float($0 / $1) : 0 }
  }

  func makeReport(loss: Float, learningRate: Float, batchesInEpoch: Int) -> StepReport {
    let elapsed = Date().timeIntervalSince(started), done = state.globalStep - startStep
    var metrics: [String: Double] = [:]
    for c in components { metrics.merge(c.stepMetrics()) { a, _ in a } }
    if isParallel {
      let (bytes, seconds, wait) = gradientSync.take()
      metrics["allreduce_mb"] = Double(bytes) / 1e6; metrics["allreduce_ms"] = 1000 * seconds; metrics["rank_wait_ms"] = 1000 * wait
    }
    return StepReport(step: state.globalStep, epoch: state.epoch,
                      epochProgress: Double(state.epoch) + Double(state.batchInEpoch) / Double(batchesInEpoch),
                      loss: loss, learningRate: learningRate, metrics: metrics,
                      examplesPerSecond: Double(examplesSeen) / max(elapsed, 1e-9),
                      eta: elapsed / Double(max(done, 1)) * Double(totalSteps - state.globalStep),
                      endOfEpoch: state.batchInEpoch == batchesInEpoch, isLast: state.globalStep >= totalSteps)
  }

  /// Every component's state and the trainer state, swapped in atomically as checkpoint-last/.
  /// Under data parallelism rank 0 writes it and the others wait for it.
  func saveCheckpoint() throws {
    state.dropoutCounter = rng.counter
    if isWriter {
      try CheckpointFolder.save(in: runDir) { writer in
        for c in components { try c.saveState(to: writer) }
        try writer.write("trainer_state", json: state)
      }
      for c in components { try c.didSaveCheckpoint(self) }
    }
    communicator.barrier()
  }

  /// Reads every component's state and the trainer state back from checkpoint-last/, once `validate`
  /// (called when a checkpoint has been found) has accepted the run.
  func restore(validate: () throws -> Void) throws {
    let (reader, saved) = try CheckpointFolder.open(in: runDir)
    try validate()
    for c in components { try c.restoreState(from: reader) }
    state = saved
    rng.counter = saved.dropoutCounter
  }

  /// For resume tests: end the process right after a checkpoint, as a kill would, or stop with an error.
  func interruptIfAsked() throws {
    let env = ProcessInfo.processInfo.environment
    if let crash = env["BONSAI_TEST_CRASH_AFTER_STEP"].flatMap(Int.init), state.globalStep >= crash { exit(75) }
    if let kill = env["BONSAI_TEST_KILL_RANK_AFTER_STEP"]?.split(separator: ":").compactMap({ Int($0) }), kill.count == 2,
       communicator.rank == kill[0], state.globalStep >= kill[1] {  // a rank that dies (SIGKILL) mid-run
      Foundation.kill(getpid(), SIGKILL)
    }
    if let stopAt = env["BONSAI_TEST_STOP_AFTER_STEP"].flatMap(Int.init), state.globalStep >= stopAt {
      throw TrainingError.interrupted(step: state.globalStep)
    }
  }

  /// The final model, the test split scored with the selected one (best/, else final/), summary.json;
  /// rank 0's work alone under data parallelism (the others return an empty summary).
  func finish() throws -> [String: Any] {
    guard isWriter else { return [:] }
    try task.export(to: runDir.appendingPathComponent("final"), plan: plan)
    plan.optimizer.releaseState()  // training is over: the test evaluation's model takes the moments' memory
    var test: Evaluation?
    if !task.testIndices.isEmpty {  // --test-fraction 0: no test metrics at all, rather than zeros on zero examples
      test = try task.evaluate(folder: Trainer.selectedModel(in: runDir), indices: task.testIndices)
      traceMemory("tested")
    }
    var summary: [String: Any] = ["steps": state.globalStep, "train_seconds": Date().timeIntervalSince(started),
                                  "peak_rss_bytes": peakRSSBytes(), "train_examples_processed": examplesSeen,
                                  "train_tokens_processed": tokensSeen]
    if let trainedAt {  // the training loop alone (evaluations during it included), before the export and test
      summary["training_loop_seconds"] = trainedAt.seconds; summary["training_loop_peak_rss_bytes"] = trainedAt.peakRSS
    }
    for c in components { summary.merge(c.summary(self)) { a, _ in a } }
    if let test { summary["test"] = try test.jsonObject() }
    try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]).write(to: runDir.appendingPathComponent("summary.json"))
    if let test { metrics.append(["step": state.globalStep, "test": try test.jsonObject()]) }
    return summary
  }
}

/// transformers' get_linear_schedule_with_warmup: linear warm-up to `peak`, then linear decay to 0;
/// `step` counts completed optimizer steps.
struct LinearSchedule {
  let peak: Float, warmup: Int, total: Int
  func callAsFunction(_ step: Int) -> Float {
    if step < warmup { return peak * Float(step) / Float(max(1, warmup)) }
    return peak * max(0, Float(total - step) / Float(max(1, total - warmup)))
  }
}
