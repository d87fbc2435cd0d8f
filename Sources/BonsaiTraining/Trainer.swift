// Fine-tuning a sequence classifier: length-grouped batches, AdamW with warm-up and linear decay,
// gradient clipping and accumulation, periodic evaluation with early stopping, best/last checkpoints
// written atomically, and exact resume (weights, optimizer moments, schedule, dropout RNG, data order).
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import BonsaiTokenizers
import Foundation

/// A training failure the user can act on.
public enum TrainingError: LocalizedError {
  case nonFiniteLoss(step: Int, value: Float)
  case runExists(path: String)
  case badResume(path: String, reason: String)
  case interrupted(step: Int)

  public var errorDescription: String? {
    switch self {
    case let .nonFiniteLoss(step, value):
      return "the loss became \(value) at step \(step); the last checkpoint is kept: lower --learning-rate or set --max-grad-norm, then --resume"
    case let .runExists(path): return "\(path) already holds a run: pass --overwrite to replace it or --resume to continue it"
    case let .badResume(path, reason): return "\(path): cannot resume: \(reason)"
    case let .interrupted(step): return "stopped after step \(step) (BONSAI_TEST_STOP_AFTER_STEP); continue with --resume"
    }
  }
}

/// Where progress goes: a one-line bar on a terminal, plain log lines otherwise.
public protocol ProgressSink: AnyObject {
  func step(epoch: Int, step: Int, total: Int, loss: Float, learningRate: Float, examplesPerSecond: Double, eta: Double)
  func message(_ text: String)
}

public final class StderrProgress: ProgressSink {
  let tty = isatty(2) != 0
  var lastLog = 0
  public init() {}
  public func step(epoch: Int, step: Int, total: Int, loss: Float, learningRate: Float, examplesPerSecond: Double, eta: Double) {
    if tty {
      let width = 30, done = total > 0 ? width * step / total : 0
      let bar = String(repeating: "#", count: done) + String(repeating: ".", count: width - done)
      write(String(format: "\repoch %d [%@] %d/%d loss %.4f lr %.2e %.1f ex/s ETA %@   ", epoch, bar, step, total, loss, learningRate,
                   examplesPerSecond, formatDuration(eta)))
    } else if step - lastLog >= 10 || step == total {
      lastLog = step
      write(String(format: "epoch %d step %d/%d loss %.4f lr %.2e %.1f ex/s ETA %@\n", epoch, step, total, loss, learningRate,
                   examplesPerSecond, formatDuration(eta)))
    }
  }
  public func message(_ text: String) { write((tty ? "\r\u{1B}[K" : "") + text + "\n") }
  func write(_ s: String) { FileHandle.standardError.write(s.data(using: .utf8)!) }
}

func formatDuration(_ s: Double) -> String {
  guard s.isFinite else { return "?" }
  let t = Int(s.rounded())
  return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

/// With BONSAI_TRACE_MEMORY set: peak and current RSS, live tensor bytes and cached blocks, to stderr.
func traceMemory(_ tag: String) {
  guard ProcessInfo.processInfo.environment["BONSAI_TRACE_MEMORY"] != nil else { return }
  let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  let rss = status.split(separator: "\n").filter { $0.hasPrefix("VmHWM") || $0.hasPrefix("VmRSS") }.map { $0.replacingOccurrences(of: "\t", with: "") }
  FileHandle.standardError.write("[memory] \(tag): \(rss.joined(separator: " ")) live \(liveStorageBytes.load(ordering: .relaxed) >> 20) MiB cached \(BlockCache.cachedBytes >> 20) MiB\n".data(using: .utf8)!)
}

/// The process's peak resident set (VmHWM), in bytes.
public func peakRSSBytes() -> Int {
  let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
  guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM") }),
        let kb = Int(line.split(separator: " ").dropFirst().first { Int($0) != nil } ?? "") else { return 0 }
  return kb * 1024
}

/// Everything a run reads: examples, labels, split and token ids.
public struct PreparedData {
  public let dataset: Dataset
  public let labels: [String]
  public let labelIds: [Int]
  public let split: Split
  public let encodings: [Encoding]

  public init(dataset: Dataset, labels: [String], labelIds: [Int], split: Split, encodings: [Encoding]) {
    self.dataset = dataset; self.labels = labels; self.labelIds = labelIds; self.split = split; self.encodings = encodings
  }
}

public final class Trainer {
  public let config: TrainConfig
  public let runDir: URL
  public let progress: ProgressSink
  let modelFolder: URL

  public init(config: TrainConfig, modelFolder: URL, runDir: URL, progress: ProgressSink = StderrProgress()) {
    self.config = config; self.modelFolder = modelFolder; self.runDir = runDir; self.progress = progress
  }

  var lastCheckpoint: URL { runDir.appendingPathComponent("checkpoint-last") }

  /// Loads the data, maps labels and makes (or, when resuming, reads back) the split.
  public func prepare(_ loaded: Dataset, tokenizer: WordPieceTokenizer, resume: Bool) throws -> PreparedData {
    var dataset = loaded
    if config.deduplicate {
      let dropped = dataset.deduplicate()
      if dropped > 0 { progress.message("dropped \(dropped) duplicate texts") }
    }
    let labels = dataset.labelNames
    let ids = try dataset.labelIds(labels)
    let splitURL = runDir.appendingPathComponent("split.json")
    var split = Split.stratified(labels: dataset.examples.map(\.label), dev: config.devFraction, test: config.testFraction, seed: config.splitSeed ?? config.seed)
    if let subsetPath = config.trainSubset {
      // FTFT's main model: the reference run's selection, inside the same split
      let selection = try Selection.read(subsetPath)
      guard selection.labels == labels else { throw DynamicsError.labelMismatch(selection: selection.labels, data: labels) }
      if let own = ModelFolder.labels(modelFolder), own != selection.labels { throw DynamicsError.labelMismatch(selection: selection.labels, data: own) }
      let indexOfLine = Dictionary(dataset.examples.enumerated().map { ($1.line, $0) }, uniquingKeysWith: { a, _ in a })
      let train = Set(split.train)
      var chosen = Set<Int>()
      for id in selection.ids {
        guard let i = indexOfLine[id], train.contains(i) else { throw DynamicsError.notInTrainingSplit(path: subsetPath, id: id) }
        chosen.insert(i)
      }
      split.train = split.train.filter { chosen.contains($0) }
      progress.message("training on \(split.train.count) selected examples (\(selection.strategy), fraction \(selection.fraction))")
    }
    if resume, let data = FileManager.default.contents(atPath: splitURL.path) {
      let saved = try JSONDecoder().decode(Split.self, from: data)
      guard saved == split else { throw TrainingError.badResume(path: splitURL.path, reason: "the data no longer gives the saved split") }
      split = saved
    }
    let encodings = dataset.examples.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: config.maxLength) }
    return PreparedData(dataset: dataset, labels: labels, labelIds: ids, split: split, encodings: encodings)
  }

  /// Predicted label ids and mean loss of `indices`.
  public func evaluate(_ model: SequenceClassifier, tokenizer: WordPieceTokenizer, data: PreparedData, indices: [Int]) -> ClassificationMetrics {
    let ordered = indices.sorted { data.encodings[$0].ids.count > data.encodings[$1].ids.count }
    var predicted: [Int: Int] = [:]
    var lossSum = 0.0
    for start in stride(from: 0, to: ordered.count, by: 64) {
      let idx = Array(ordered[start..<min(start + 64, ordered.count)])
      let batch = TokenBatch(idx.map { data.encodings[$0] }, tokenizer: tokenizer)
      let logits = withoutGrad { model(batch, rng: nil) }
      let loss = withoutGrad { Tensor.crossEntropy(logits: logits, labels: idx.map { data.labelIds[$0] }) }
      lossSum += Double(loss.item) * Double(idx.count)
      let k = data.labels.count, p = logits.scalars
      for (r, i) in idx.enumerated() {
        let row = p[(r * k)..<((r + 1) * k)]
        predicted[i] = row.firstIndex(of: row.max()!)! - r * k
      }
    }
    return ClassificationMetrics(gold: indices.map { data.labelIds[$0] }, predicted: indices.map { predicted[$0]! }, labels: data.labels,
                                 loss: indices.isEmpty ? nil : lossSum / Double(indices.count))
  }

  /// Dynamics of the whole training split from a forward pass in eval mode (no dropout).
  func evaluationDynamics(_ model: SequenceClassifier, tokenizer: WordPieceTokenizer, data: PreparedData, step: Int, epoch: Int) -> [DynamicsRecord] {
    var out: [DynamicsRecord] = []
    let train = data.split.train
    for start in stride(from: 0, to: train.count, by: 64) {
      let idx = Array(train[start..<min(start + 64, train.count)])
      let logits = withoutGrad { model(TokenBatch(idx.map { data.encodings[$0] }, tokenizer: tokenizer), rng: nil) }
      out += dynamicsRecords(logits: logits.scalars, classes: data.labels.count, gold: idx.map { data.labelIds[$0] },
                             ids: idx.map { data.dataset.examples[$0].line }, step: step, epoch: epoch)
    }
    return out
  }

  /// Runs (or resumes) training; returns the summary written to summary.json.
  @discardableResult
  public func run(resume: Bool) throws -> [String: Any] {
    let fm = FileManager.default
    try fm.createDirectory(at: runDir, withIntermediateDirectories: true)
    if let t = config.threads { Engine.threads = t }
    // the data is read once: its labels size the new head, then it is split and tokenised
    let dataset = try Dataset.load(path: config.data, columns: ColumnSpec(text: config.textColumn, pair: config.pairColumn, label: config.labelColumn))
    let (model, tokenizer, _) = try ModelFolder.loadClassifier(modelFolder, numLabels: try labelCount(dataset), seed: config.seed)
    traceMemory("model loaded")
    var data = try prepare(dataset, tokenizer: tokenizer, resume: resume)
    traceMemory("data prepared")
    // distillation: teacher checks before any work, cached teacher logits, pseudo-labels
    var teacher: Teacher?
    var hiddenMap: [Int] = []
    var projection: HiddenProjection?
    if let d = config.distill {
      let t = try Teacher(folder: try Assets.model(d.teacher), studentTokenizer: tokenizer)
      hiddenMap = try t.validate(d, dataLabels: data.labels, student: model, studentFolder: modelFolder)
      let ws = model.encoderModel.hiddenSize, wt = t.model.encoderModel.hiddenSize
      if !hiddenMap.isEmpty && ws != wt {
        projection = HiddenProjection(count: hiddenMap.count, studentWidth: ws, teacherWidth: wt, rng: RandomSource(seed: config.seed &+ 29))
        progress.message("hidden-state KD through a learned \(ws) -> \(wt) projection per layer")
      }
      var examples = data.dataset.examples.map { (text: $0.text, pair: $0.pair) }
      var extra: [String] = []
      if let u = d.unlabeled {
        guard let text = FileManager.default.contents(atPath: u).flatMap({ String(data: $0, encoding: .utf8) }) else {
          throw DataError.unreadable(path: u, reason: "cannot read the unlabelled texts (one UTF-8 text per line)")
        }
        extra = text.split(separator: "\n").map(String.init).filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        examples += extra.map { (text: $0, pair: nil) }
      }
      t.cacheLogits(examples, maxLength: config.maxLength, progress: progress.message)
      if d.pseudoLabels || !extra.isEmpty {
        let argmax = t.logits.map { row in row.firstIndex(of: row.max()!)! }
        var ids = data.labelIds, split = data.split, encodings = data.encodings
        if d.pseudoLabels { for i in split.train { ids[i] = argmax[i] } }
        for (n, text) in extra.enumerated() {
          split.train.append(ids.count)
          ids.append(argmax[data.labelIds.count + n])
          encodings.append(tokenizer.encode(text, maxLength: config.maxLength))
        }
        data = PreparedData(dataset: data.dataset, labels: data.labels, labelIds: ids, split: split, encodings: encodings)
        progress.message("training on teacher labels\(extra.isEmpty ? "" : " (\(extra.count) unlabelled texts added)")")
      }
      teacher = t
    }
    var state = TrainerState()
    let plan = try TrainingPlan(method: config.method, model: model, config: config)
    plan.dense += projection?.namedParameters(prefix: Trainer.projectionPrefix) ?? []
    self.plan = plan
    if plan.method != "full" {
      baseHash = try Assets.sha256(modelFolder.appendingPathComponent("model.safetensors"))
      progress.message(String(format: "%@: %d trainable parameters (%.3f%% of %d)", plan.method, plan.trainableCount,
                              100 * Double(plan.trainableCount) / Double(model.parameterCount), model.parameterCount))
    }
    let optimizer = AdamW(plan.dense, learningRate: config.learningRate, weightDecay: config.weightDecay)
    plan.sparse?.attach()
    defer { plan.sparse?.detach() }
    if resume {
      state = try restore(model: model, optimizer: optimizer, projection: projection)
      progress.message("resuming at step \(state.globalStep) (epoch \(state.epoch + 1), batch \(state.batchInEpoch))")
    } else {
      try JSONEncoder.pretty.encode(config).write(to: runDir.appendingPathComponent("config.json"))
      try JSONEncoder.pretty.encode(data.split).write(to: runDir.appendingPathComponent("split.json"))
      try? fm.removeItem(at: runDir.appendingPathComponent("metrics.jsonl"))
    }
    let metricsLog = try MetricsLog(url: runDir.appendingPathComponent("metrics.jsonl"), truncateAfter: state.globalStep)
    let dynamics = config.recordDynamics ? try DynamicsLog(url: runDir.appendingPathComponent("dynamics.jsonl"), truncateAfter: state.globalStep) : nil
    let rng = RandomSource(seed: config.seed &+ 17, counter: state.dropoutCounter)
    let lengths = data.encodings.map(\.ids.count)
    let repeatHalf = config.selfDistill != nil || config.batchSampler == "repeat-half"
    let chunk = repeatHalf ? max(1, config.batchSize / 2) : config.batchSize  // new examples per batch
    let batchesPerEpoch = (data.split.train.count + chunk - 1) / chunk
    let stepsPerEpoch = (batchesPerEpoch + config.gradientAccumulation - 1) / config.gradientAccumulation
    let totalSteps = min(stepsPerEpoch * config.epochs, config.maxSteps ?? Int.max)
    let warmup = Int((Float(totalSteps) * config.warmupRatio).rounded(.up))
    func learningRate(_ step: Int) -> Float {  // transformers' get_linear_schedule_with_warmup, step = completed steps
      if step < warmup { return config.learningRate * Float(step) / Float(max(1, warmup)) }
      return config.learningRate * max(0, Float(totalSteps - step) / Float(max(1, totalSteps - warmup)))
    }
    progress.message("\(data.split.train.count) train / \(data.split.dev.count) dev / \(data.split.test.count) test examples, labels \(data.labels); \(totalSteps) optimizer steps")
    var lossCurve: [(Int, Double)] = metricsLog.previousLoss, metricCurve: [(Int, Double)] = metricsLog.previousMetric
    var alphaCurve: [(Int, Double)] = metricsLog.previousAlpha, temperatureCurve: [(Int, Double)] = metricsLog.previousTemperature
    var stepAlpha: [Double] = [], stepTemperature: [Double] = []
    let started = Date()
    let startStep = state.globalStep
    var examplesSeen = 0, tokensSeen = 0
    var stop = state.finished || state.globalStep >= totalSteps
    if let sparse = plan.sparse, !resume {
      // SIFT: the first batches only vote for the indices (|gradient| summed), with no update
      let votes = config.sift?.voteBatches ?? 1
      let batches = lengthGroupedBatches(data.split.train, lengths: lengths, batchSize: config.batchSize, seed: config.seed, epoch: 0)
      let voteRng = RandomSource(seed: config.seed &+ 31)
      sparse.beginSelection()
      for idx in batches.prefix(votes) {
        let batch = TokenBatch(idx.map { data.encodings[$0] }, tokenizer: tokenizer)
        Tensor.crossEntropy(logits: model(batch, rng: voteRng), labels: idx.map { data.labelIds[$0] }).backward()
      }
      sparse.endSelection()
      Tensor.clearGrad(optimizer.parametersWithGradients)
      progress.message("sift: indices chosen from \(min(votes, batches.count)) batch(es): \(sparse.trainableCount) components in \(sparse.entries.count) matrices")
    }
    epochs: while state.epoch < config.epochs && !stop {
      let batches: [[Int]], repeatedCounts: [Int]
      if repeatHalf {
        let pairs = repeatHalfBatches(data.split.train, lengths: lengths, batchSize: config.batchSize, seed: config.seed, epoch: state.epoch)
        batches = pairs.map { $0.repeated + $0.new }; repeatedCounts = pairs.map(\.repeated.count)
      } else {
        batches = lengthGroupedBatches(data.split.train, lengths: lengths, batchSize: config.batchSize, seed: config.seed, epoch: state.epoch)
        repeatedCounts = batches.map { _ in 0 }
      }
      if state.batchInEpoch == 0 { previousLogits = [:] }
      var accumulated = 0, lossAccum: Float = 0
      while state.batchInEpoch < batches.count {
        let idx = batches[state.batchInEpoch]
        let batch = TokenBatch(idx.map { data.encodings[$0] }, tokenizer: tokenizer)
        var loss: Tensor, logits: Tensor
        if let d = config.distill, let teacher {
          let hidden = model.encoderModel.hiddenStates(batch, rng: rng)
          logits = model.head(hidden.last!.reshaped(to: [batch.batch, batch.tokens, model.encoderModel.hiddenSize]), batch: batch, rng: rng)
          let k = data.labels.count
          let teacherLogits = Tensor(idx.flatMap { teacher.logits[$0] }, shape: [idx.count, k])
          var total = Tensor.crossEntropy(logits: logits, labels: idx.map { data.labelIds[$0] }).scaled(by: d.alphaCE)
          if d.alphaKD > 0 { total = total + DistillationLoss.logitKD(student: logits, teacher: teacherLogits, temperature: d.temperature).scaled(by: d.alphaKD) }
          if d.alphaHidden > 0 {
            let tokens = batch.attentionMask.enumerated().filter { $0.element != 0 }.map(\.offset)
            let mse = DistillationLoss.hiddenMSE(student: hidden, teacher: teacher.hiddenStates(batch), map: hiddenMap, tokens: tokens,
                                                 normalize: d.normalizeHidden, projection: projection)
            total = total + mse.scaled(by: d.alphaHidden)
          }
          loss = total
        } else {
          logits = model(batch, rng: rng)
          loss = Tensor.crossEntropy(logits: logits, labels: idx.map { data.labelIds[$0] })
        }
        // the batch's logits as floats, read once for whoever needs them
        let z = (dynamics != nil && config.dynamicsPass == "train") || config.selfDistill != nil ? logits.scalars : []
        if let dynamics, config.dynamicsPass == "train" {
          dynamics.append(dynamicsRecords(logits: z, classes: data.labels.count, gold: idx.map { data.labelIds[$0] },
                                          ids: idx.map { data.dataset.examples[$0].line }, step: state.globalStep + 1, epoch: state.epoch))
        }
        if let sd = config.selfDistill {
          // the repeated half learns from the logits it got one step earlier
          let nR = repeatedCounts[state.batchInEpoch]
          if nR > 0, let previous = Optional(idx.prefix(nR).compactMap { previousLogits[$0] }), previous.count == nR {
            let gold = idx.prefix(nR).map { data.labelIds[$0] }
            let (alpha, temperature) = SelfDistillation.weights(previous: previous, labels: gold, config: sd)
            loss = loss + SelfDistillation.loss(current: logits.gatherRows(Array(0..<nR)), previous: previous, alpha: alpha, temperature: temperature)
            stepAlpha.append(Double(alpha.reduce(0, +)) / Double(nR)); stepTemperature.append(Double(temperature.reduce(0, +)) / Double(nR))
          }
          let k = data.labels.count
          previousLogits = Dictionary(uniqueKeysWithValues: (nR..<idx.count).map { (idx[$0], Array(z[($0 * k)..<(($0 + 1) * k)])) })
        }
        guard loss.item.isFinite else { throw TrainingError.nonFiniteLoss(step: state.globalStep + 1, value: loss.item) }
        let reselect = plan.sparse != nil && (config.sift?.reselectEvery ?? 0) > 0 && state.globalStep > 0
          && state.globalStep % config.sift!.reselectEvery == 0
        if reselect && accumulated == 0 { plan.sparse!.beginReselection() }
        (config.gradientAccumulation > 1 ? loss.scaled(by: 1 / Float(config.gradientAccumulation)) : loss).backward()
        lossAccum += loss.item / Float(config.gradientAccumulation)
        examplesSeen += idx.count
        tokensSeen += batch.batch * batch.tokens
        accumulated += 1
        state.batchInEpoch += 1
        guard accumulated == config.gradientAccumulation || state.batchInEpoch == batches.count else { continue }
        if reselect { plan.sparse!.endReselection() }
        if config.maxGradNorm > 0 { plan.clip(config.maxGradNorm, dense: optimizer) }
        optimizer.learningRate = learningRate(state.globalStep)
        optimizer.update()
        if let sparse = plan.sparse { sparse.learningRate = optimizer.learningRate; sparse.update() }
        Tensor.clearGrad(optimizer.parametersWithGradients)
        state.globalStep += 1
        traceMemory("step \(state.globalStep)")
        let elapsed = Date().timeIntervalSince(started), done = state.globalStep - startStep
        let eta = elapsed / Double(max(done, 1)) * Double(totalSteps - state.globalStep)
        progress.step(epoch: state.epoch + 1, step: state.globalStep, total: totalSteps, loss: lossAccum, learningRate: optimizer.learningRate,
                      examplesPerSecond: Double(examplesSeen) / max(elapsed, 1e-9), eta: eta)
        var line: [String: Any] = ["step": state.globalStep, "epoch": Double(state.epoch) + Double(state.batchInEpoch) / Double(batches.count),
                                   "loss": Double(lossAccum), "learning_rate": Double(optimizer.learningRate)]
        if !stepAlpha.isEmpty {
          let a = stepAlpha.reduce(0, +) / Double(stepAlpha.count), t = stepTemperature.reduce(0, +) / Double(stepTemperature.count)
          line["sd_alpha"] = a; line["sd_temperature"] = t
          alphaCurve.append((state.globalStep, a)); temperatureCurve.append((state.globalStep, t))
        }
        stepAlpha = []; stepTemperature = []
        metricsLog.append(line)
        lossCurve.append((state.globalStep, Double(lossAccum)))
        accumulated = 0; lossAccum = 0
        let endOfEpoch = state.batchInEpoch == batches.count
        if endOfEpoch, let dynamics, config.dynamicsPass == "eval" {
          dynamics.append(evaluationDynamics(model, tokenizer: tokenizer, data: data, step: state.globalStep, epoch: state.epoch))
        }
        if endOfEpoch { state.epoch += 1; state.batchInEpoch = 0 }
        let evalNow = config.evalEvery > 0 ? state.globalStep % config.evalEvery == 0 : endOfEpoch
        let last = state.globalStep >= totalSteps
        if evalNow || last {
          let dev = evaluate(model, tokenizer: tokenizer, data: data, indices: data.split.dev)
          traceMemory("evaluated")
          let value = dev.value(config.metric) ?? dev.accuracy
          metricsLog.append(["step": state.globalStep, "eval": try jsonObject(dev)])
          metricCurve.append((state.globalStep, config.metric == "loss" ? 0 : value))
          progress.message(String(format: "step %d: dev %@ %.4f (accuracy %.4f, macro-F1 %.4f)", state.globalStep, config.metric, value, dev.accuracy, dev.macroF1))
          let better = state.bestMetric.map { config.metric == "loss" ? value < $0 : value > $0 } ?? true
          if better {
            state.bestMetric = value; state.bestStep = state.globalStep; state.evalsWithoutImprovement = 0
            try export(model, labels: data.labels, to: runDir.appendingPathComponent("best"))
          } else {
            state.evalsWithoutImprovement += 1
          }
          if config.patience > 0 && state.evalsWithoutImprovement >= config.patience {
            progress.message("early stop: no improvement in \(config.patience) evaluations")
            stop = true
          }
        }
        if last { stop = true }
        if stop { state.finished = true }
        if evalNow || last || endOfEpoch || stop {
          state.dropoutCounter = rng.counter
          try saveCheckpoint(model: model, optimizer: optimizer, labels: data.labels, state: state, projection: projection)
          let extra = alphaCurve.isEmpty ? [] : [(name: "mean alpha", points: alphaCurve, scale: 1.0),
                                                 (name: "mean T / \(Int(config.selfDistill?.tMax ?? 4))", points: temperatureCurve,
                                                  scale: 1 / Double(max(config.selfDistill?.tMax ?? 4, config.selfDistill?.temperature ?? 3)))]
          try learningCurveSVG(loss: lossCurve, metric: metricCurve, metricName: config.metric, extra: extra)
            .write(to: runDir.appendingPathComponent("learning-curve.svg"), atomically: true, encoding: .utf8)
        }
        if stop { break epochs }
        // For resume tests: end the process right after a checkpoint, as a kill would.
        if let crash = ProcessInfo.processInfo.environment["BONSAI_TEST_CRASH_AFTER_STEP"].flatMap(Int.init),
           state.globalStep >= crash, evalNow || endOfEpoch { exit(75) }
        if let stopAt = ProcessInfo.processInfo.environment["BONSAI_TEST_STOP_AFTER_STEP"].flatMap(Int.init),
           state.globalStep >= stopAt, evalNow || endOfEpoch { throw TrainingError.interrupted(step: state.globalStep) }
        if endOfEpoch { continue epochs }
      }
    }
    traceMemory("trained")
    // final model, then the test set with the best model
    try export(model, labels: data.labels, to: runDir.appendingPathComponent("final"))
    let bestFolder = Trainer.selectedModel(in: runDir)
    // No test split (--test-fraction 0): no test metrics at all, rather than zeros on zero examples.
    var test: ClassificationMetrics? = nil
    if !data.split.test.isEmpty {
      let (best, _, _) = try ModelFolder.loadClassifier(bestFolder, numLabels: data.labels.count)
      test = evaluate(best, tokenizer: tokenizer, data: data, indices: data.split.test)
      traceMemory("tested")
    }
    var summary: [String: Any] = [
      "best_step": state.bestStep as Any, "best_dev_\(config.metric)": state.bestMetric as Any,
      "steps": state.globalStep, "train_seconds": Date().timeIntervalSince(started), "labels": data.labels,
      "method": plan.method, "trainable_parameters": plan.trainableCount, "gradient_bytes": plan.gradientBytes,
      "optimizer_state_bytes": plan.optimizerStateBytes, "peak_rss_bytes": peakRSSBytes(),
      "parameters": model.parameterCount, "train_examples_processed": examplesSeen, "train_tokens_processed": tokensSeen,
      "train_examples": data.split.train.count, "dev_examples": data.split.dev.count, "test_examples": data.split.test.count,
    ]
    if let test { summary["test"] = try jsonObject(test) }
    try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]).write(to: runDir.appendingPathComponent("summary.json"))
    if let test { metricsLog.append(["step": state.globalStep, "test": try jsonObject(test)]) }
    return summary
  }

  /// The folder a finished run's test metrics come from: best/ when dev evaluation kept one, else final/.
  public static func selectedModel(in runDir: URL) -> URL {
    let best = runDir.appendingPathComponent("best")
    return FileManager.default.fileExists(atPath: best.path) ? best : runDir.appendingPathComponent("final")
  }

  /// Labels of the new head: the teacher's when distilling (checked against the data later), else the data's.
  func labelCount(_ dataset: Dataset) throws -> Int {
    if let d = config.distill, let labels = ModelFolder.labels(try Assets.model(d.teacher)) {
      if let own = ModelFolder.labels(modelFolder), own != labels { throw DistillError.studentLabelMismatch(teacher: labels, student: own) }
      return labels.count
    }
    return dataset.labelNames.count
  }

  static let projectionPrefix = "distill_projection"
  var plan: TrainingPlan?
  var baseHash = ""
  /// Self-distillation: logits of the previous step's new examples, by example index.
  var previousLogits: [Int: [Float]] = [:]

  /// best/ or final/: an ordinary Hugging Face folder (LoRA merged), plus the sparse delta or adapters.
  func export(_ model: SequenceClassifier, labels: [String], to dir: URL) throws {
    try ModelFolder.save(model, labels: labels, source: modelFolder, to: dir, overrides: plan?.mergedWeights() ?? [:],
                         extraFiles: try plan?.deltaFiles(model: model, labels: labels, baseHash: baseHash, maxLength: config.maxLength) ?? [:],
                         maxLength: config.maxLength)
  }

  func saveCheckpoint(model: SequenceClassifier, optimizer: AdamW, labels: [String], state: TrainerState, projection: HiddenProjection?) throws {
    let fm = FileManager.default
    let tmp = runDir.appendingPathComponent(".checkpoint-last.tmp")
    try? fm.removeItem(at: tmp)
    try ModelFolder.save(model, labels: labels, source: modelFolder, to: tmp, maxLength: config.maxLength)
    try writeSafeTensors(optimizer.stateTensors(), to: tmp.appendingPathComponent("optimizer.safetensors").path,
                         metadata: ["format": "pt", "step": "\(optimizer.step)"])
    if let projection {
      try writeSafeTensors(projection.namedParameters(prefix: Trainer.projectionPrefix), to: tmp.appendingPathComponent("distill_projection.safetensors").path)
    }
    if let sparse = plan?.sparse {
      let st = sparse.stateTensors()
      try writeSafeTensors(st.floats, int32: st.ints, to: tmp.appendingPathComponent("sparse_optimizer.safetensors").path, metadata: ["format": "pt", "step": "\(sparse.step)"])
    }
    if config.selfDistill != nil {
      let ids = previousLogits.keys.sorted(), k = labels.count
      try writeSafeTensors([("logits", Tensor(ids.flatMap { previousLogits[$0]! }, shape: [ids.count, k]))], int32: [("ids", ids.map { Int32($0) })],
                           to: tmp.appendingPathComponent("self_distill_previous.safetensors").path)
    }
    if let plan, !plan.adapters.isEmpty {
      try writeSafeTensors(plan.adapterTensors, to: tmp.appendingPathComponent("adapters.safetensors").path)
    }
    try JSONEncoder.pretty.encode(state).write(to: tmp.appendingPathComponent("trainer_state.json"))
    // swap in: the old checkpoint stays whole until the new one is complete
    let old = runDir.appendingPathComponent(".checkpoint-last.old")
    try? fm.removeItem(at: old)
    if fm.fileExists(atPath: lastCheckpoint.path) { try fm.moveItem(at: lastCheckpoint, to: old) }
    try fm.moveItem(at: tmp, to: lastCheckpoint)
    try? fm.removeItem(at: old)
  }

  func restore(model: SequenceClassifier, optimizer: AdamW, projection: HiddenProjection?) throws -> TrainerState {
    let fm = FileManager.default
    var dir = lastCheckpoint
    // a kill between the two renames leaves the previous checkpoint under .old
    if !fm.fileExists(atPath: dir.appendingPathComponent("trainer_state.json").path) {
      dir = runDir.appendingPathComponent(".checkpoint-last.old")
    }
    let statePath = dir.appendingPathComponent("trainer_state.json")
    guard let data = fm.contents(atPath: statePath.path) else {
      throw TrainingError.badResume(path: runDir.path, reason: "no checkpoint-last/trainer_state.json")
    }
    if let saved = fm.contents(atPath: runDir.appendingPathComponent("config.json").path) {
      let previous = try JSONDecoder().decode(TrainConfig.self, from: saved)
      var a = previous, b = config
      a.threads = nil; b.threads = nil
      guard a == b else { throw TrainingError.badResume(path: runDir.appendingPathComponent("config.json").path, reason: "the options differ from the run's") }
    }
    let state = try JSONDecoder().decode(TrainerState.self, from: data)
    _ = try model.load(from: SafeTensorsFile(path: dir.appendingPathComponent("model.safetensors").path))
    if let projection {
      let file = try SafeTensorsFile(path: dir.appendingPathComponent("distill_projection.safetensors").path)
      for (key, t) in projection.namedParameters(prefix: Trainer.projectionPrefix) { try file.read(key, into: t) }
    }
    if config.selfDistill != nil {
      let file = try SafeTensorsFile(path: dir.appendingPathComponent("self_distill_previous.safetensors").path)
      let ids = try file.int32s("ids"), z = try file.tensor("logits").scalars
      let k = ids.isEmpty ? 0 : z.count / ids.count
      previousLogits = Dictionary(uniqueKeysWithValues: ids.enumerated().map { (Int($1), Array(z[($0 * k)..<(($0 + 1) * k)])) })
    }
    if let sparse = plan?.sparse {
      let file = try SafeTensorsFile(path: dir.appendingPathComponent("sparse_optimizer.safetensors").path)
      try sparse.restore(step: Int(file.metadata["step"] ?? "0") ?? 0, floats: { try file.tensor($0) }, ints: { try file.int32s($0) })
    }
    if let plan, !plan.adapters.isEmpty {
      let file = try SafeTensorsFile(path: dir.appendingPathComponent("adapters.safetensors").path)
      for (key, t) in plan.adapterTensors { try file.read(key, into: t) }
    }
    let opt = try SafeTensorsFile(path: dir.appendingPathComponent("optimizer.safetensors").path)
    try optimizer.restore(step: Int(opt.metadata["step"] ?? "0") ?? 0) { try opt.tensor($0) }
    return state
  }
}

/// metrics.jsonl, appended line by line; on resume, lines past the checkpoint's step are dropped.
final class MetricsLog {
  let url: URL
  var previousLoss: [(Int, Double)] = []
  var previousMetric: [(Int, Double)] = []
  var previousAlpha: [(Int, Double)] = [], previousTemperature: [(Int, Double)] = []

  init(url: URL, truncateAfter step: Int) throws {
    self.url = url
    var kept: [String] = []
    if let text = try? String(contentsOf: url, encoding: .utf8) {
      for line in text.split(separator: "\n") {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any], let s = obj["step"] as? Int, s <= step else { continue }
        if obj["test"] != nil { continue }
        kept.append(String(line))
        if let l = obj["loss"] as? Double { previousLoss.append((s, l)) }
        if let e = obj["eval"] as? [String: Any], let a = e["accuracy"] as? Double { previousMetric.append((s, a)) }
        if let a = obj["sd_alpha"] as? Double, let t = obj["sd_temperature"] as? Double { previousAlpha.append((s, a)); previousTemperature.append((s, t)) }
      }
    }
    try (kept.map { $0 + "\n" }.joined()).write(to: url, atomically: true, encoding: .utf8)
  }

  func append(_ obj: [String: Any]) {
    guard let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), let h = FileHandle(forWritingAtPath: url.path) else { return }
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
