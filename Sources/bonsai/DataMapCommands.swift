// Data maps and FTFT: `bonsai datamap RUN`, `bonsai select RUN`, `bonsai ftft` (shared/METHODS.md "FTFT").
import ArgumentParser
import BonsaiData
import BonsaiTraining
import Foundation

struct Datamap: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Draw a run's data map (datamap.svg) and write its per-example scores (datamap.csv): confidence, variability, correctness.")

  @Argument(help: "A run folder trained with --record-dynamics.") var runFolder: String
  @Option(name: .long, help: "Folder for datamap.svg and datamap.csv (default: the run folder).") var output: String?

  func run() throws {
    try runReportingErrors {
      let map = try RunDataMap.load(run: URL(fileURLWithPath: runFolder))
      let dir = URL(fileURLWithPath: output ?? runFolder)
      try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
      let title = "\(URL(fileURLWithPath: runFolder).lastPathComponent): \(map.scores.count) training examples"
      try DataMap.svg(map.scores, title: title).write(to: dir.appendingPathComponent("datamap.svg"), atomically: true, encoding: .utf8)
      try map.csv().write(to: dir.appendingPathComponent("datamap.csv"), atomically: true, encoding: .utf8)
      let ambiguous = try DataMap.select(map.scores, strategy: "ambiguous", fraction: 0.33)
      let out: [String: Any] = [
        "examples": map.scores.count, "svg": dir.appendingPathComponent("datamap.svg").path, "csv": dir.appendingPathComponent("datamap.csv").path,
        "mean_confidence": map.scores.map(\.confidence).reduce(0, +) / Double(map.scores.count),
        "mean_variability": map.scores.map(\.variability).reduce(0, +) / Double(map.scores.count),
        "ambiguous_33pct_min_variability": map.scores.filter { ambiguous.contains($0.id) }.map(\.variability).min() ?? 0,
      ]
      emit(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self))
    }
  }
}

struct Select: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Choose a subset of a run's training split from its data map: a selection (.json) for `finetune --train-subset`, or a data file (.csv/.jsonl).")

  @Argument(help: "A run folder trained with --record-dynamics.") var runFolder: String
  @Option(name: .long, help: "ambiguous (highest variability), hard (lowest confidence), easy (highest confidence) or random.") var strategy = "ambiguous"
  @Option(name: .long, help: "Fraction of the training split to keep, in (0, 1].") var fraction = 0.33
  @Option(name: .long, help: "Seed of the random strategy.") var seed: UInt64 = 42
  @Option(name: .long, help: "Output: .json (selection for --train-subset), .csv or .jsonl (a data file).") var output: String

  func validate() throws {
    guard fraction > 0 && fraction <= 1 else { throw ValidationError(DynamicsError.badFraction(fraction).errorDescription!) }
    guard DataMap.strategies.contains(strategy) else { throw ValidationError(DynamicsError.unknownStrategy(strategy).errorDescription!) }
  }

  func run() throws {
    try runReportingErrors {
      let selection = try select(run: URL(fileURLWithPath: runFolder), strategy: strategy, fraction: fraction, seed: seed, output: URL(fileURLWithPath: output))
      emit("{\"examples\": \(selection.ids.count), \"output\": \"\(output)\"}")
    }
  }
}

/// Selects from a run and writes the selection (JSON) or a data file, by the output's extension.
@discardableResult
func select(run: URL, strategy: String, fraction: Double, seed: UInt64, output: URL) throws -> Selection {
  let map = try RunDataMap.load(run: run)
  let ids = try DataMap.select(map.scores, strategy: strategy, fraction: fraction, seed: seed)
  let selection = Selection(run: run.path, data: map.config.data, labels: map.labels, strategy: strategy, fraction: fraction, ids: ids)
  try FileManager.default.createDirectory(at: output.deletingLastPathComponent(), withIntermediateDirectories: true)
  switch output.pathExtension.lowercased() {
  case "csv": try map.dataFile(ids: ids, jsonl: false).write(to: output, atomically: true, encoding: .utf8)
  case "jsonl": try map.dataFile(ids: ids, jsonl: true).write(to: output, atomically: true, encoding: .utf8)
  default:
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    try e.encode(selection).write(to: output, options: .atomic)
  }
  return selection
}

struct FTFT: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ftft",
    abstract: "Fine-tune a cheap reference model with dynamics, select its most ambiguous examples, and train the main model on them with a reduced step budget.")

  @Option(name: .long, help: "The reference model (small and cheap), e.g. minilm.") var reference: String
  @Option(name: .long, help: "The main model, e.g. mpnet.") var main: String
  @OptionGroup var dataOptions: DataOptions
  @Option(name: .long, help: "Selection strategy: ambiguous, hard, easy or random.") var strategy = "ambiguous"
  @Option(name: .long, help: "Fraction of the training split the main model trains on.") var fraction = 0.33
  @Option(name: .long, help: "Main model's step budget (default: the steps of one epoch over the full training split).") var mainSteps: Int?
  @Option(name: .long, help: "Evaluate the main model on dev every N steps (default: a quarter of the budget); the best checkpoint is kept.") var mainEvalEvery: Int?
  @Option(name: .long, help: "Stop the main model after N evaluations without improvement (0: run the whole budget).") var mainPatience = 2
  @Option(name: .long, help: "Main model's learning rate (default: --learning-rate).") var mainLearningRate: Float?
  @OptionGroup var training: TrainingOptions

  func validate() throws {
    guard fraction > 0 && fraction <= 1 else { throw ValidationError(DynamicsError.badFraction(fraction).errorDescription!) }
    guard DataMap.strategies.contains(strategy) else { throw ValidationError(DynamicsError.unknownStrategy(strategy).errorDescription!) }
    if training.epochs < 2 { throw ValidationError("--epochs (the reference's) must be at least 2: variability needs 2 epochs of dynamics") }
    if let m = mainSteps, m < 1 { throw ValidationError("--main-steps must be at least 1") }
    if training.trainSubset != nil { throw ValidationError("--train-subset: ftft makes its own selection") }
  }

  func run() throws {
    try runReportingErrors {
      let log = StderrProgress()
      let dir = URL(fileURLWithPath: training.resume ?? training.output ?? "runs/ftft-\(main)-\(URL(fileURLWithPath: dataOptions.data).deletingPathExtension().lastPathComponent)")
      let fm = FileManager.default
      if training.resume == nil, fm.fileExists(atPath: dir.appendingPathComponent("ftft.json").path) || fm.fileExists(atPath: dir.appendingPathComponent("reference").path) {
        guard training.overwrite else { throw TrainingError.runExists(path: dir.path) }
        try fm.removeItem(at: dir)
      }
      try fm.createDirectory(at: dir, withIntermediateDirectories: true)
      // a stage runs, or resumes (its time then counts from the resume), or, finished, is read back
      func stage(_ config: TrainConfig, folder: URL, _ name: String) throws -> ([String: Any], Double) {
        let runDir = dir.appendingPathComponent(name)
        if let data = fm.contents(atPath: runDir.appendingPathComponent("summary.json").path),
           let s = try JSONSerialization.jsonObject(with: data) as? [String: Any], let t = s["stage_seconds"] as? Double {
          log.message("\(name): done earlier"); return (s, t)
        }
        let resume = fm.fileExists(atPath: runDir.appendingPathComponent("checkpoint-last").path)
        let t0 = Date()
        log.message("== \(name): \(URL(fileURLWithPath: config.model).lastPathComponent)")
        var s = try runTraining(config, modelFolder: folder, runDir: runDir, resume: resume, overwrite: !resume)
        let seconds = Date().timeIntervalSince(t0)
        s["stage_seconds"] = seconds
        try JSONSerialization.data(withJSONObject: s, options: [.prettyPrinted, .sortedKeys]).write(to: runDir.appendingPathComponent("summary.json"))
        return (s, seconds)
      }
      // 1. the reference model, with training dynamics
      var (refConfig, refFolder) = try training.makeConfig(model: reference, data: dataOptions)
      refConfig.recordDynamics = true
      let (refSummary, refSeconds) = try stage(refConfig, folder: refFolder, "reference")
      // 2. the data map and the selection
      let t0 = Date()
      let map = try RunDataMap.load(run: dir.appendingPathComponent("reference"))
      try DataMap.svg(map.scores, title: "reference \(reference): \(map.scores.count) training examples")
        .write(to: dir.appendingPathComponent("datamap.svg"), atomically: true, encoding: .utf8)
      try map.csv().write(to: dir.appendingPathComponent("datamap.csv"), atomically: true, encoding: .utf8)
      let selectionURL = dir.appendingPathComponent("selection.json")
      let selection = try select(run: dir.appendingPathComponent("reference"), strategy: strategy, fraction: fraction, seed: training.seed, output: selectionURL)
      let selectSeconds = Date().timeIntervalSince(t0)
      log.message("selected \(selection.ids.count) of \(map.scores.count) training examples (\(strategy))")
      // 3. the main model on the selection, with a fixed reduced budget and dev checkpoints
      var (mainConfig, mainFolder) = try training.makeConfig(model: main, data: dataOptions)
      let fullSteps = ((map.scores.count + mainConfig.batchSize - 1) / mainConfig.batchSize + mainConfig.gradientAccumulation - 1) / mainConfig.gradientAccumulation
      let budget = mainSteps ?? fullSteps
      let perEpoch = ((selection.ids.count + mainConfig.batchSize - 1) / mainConfig.batchSize + mainConfig.gradientAccumulation - 1) / mainConfig.gradientAccumulation
      mainConfig.trainSubset = selectionURL.path
      mainConfig.maxSteps = budget
      mainConfig.epochs = (budget + perEpoch - 1) / perEpoch
      mainConfig.evalEvery = mainEvalEvery ?? max(1, budget / 4)
      mainConfig.patience = mainPatience
      if let lr = mainLearningRate { mainConfig.learningRate = lr }
      let (mainSummary, mainSeconds) = try stage(mainConfig, folder: mainFolder, "main")
      let refTest = refSummary["test"] as? [String: Any] ?? [:], mainTest = mainSummary["test"] as? [String: Any] ?? [:]
      let report: [String: Any] = [
        "reference": ["model": reference, "seconds": refSeconds, "steps": refSummary["steps"] ?? 0, "test_accuracy": refTest["accuracy"] ?? 0],
        "selection": ["strategy": strategy, "fraction": fraction, "examples": selection.ids.count, "of": map.scores.count, "seconds": selectSeconds],
        "main": ["model": main, "seconds": mainSeconds, "steps": mainSummary["steps"] ?? 0, "step_budget": budget, "best_step": mainSummary["best_step"] ?? 0,
                 "test_accuracy": mainTest["accuracy"] ?? 0, "test_macro_f1": mainTest["macro_f1"] ?? 0, "run": dir.appendingPathComponent("main").path],
        "total_seconds": refSeconds + selectSeconds + mainSeconds,
      ]
      let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
      try data.write(to: dir.appendingPathComponent("ftft.json"))
      log.message(String(format: "ftft: reference %.0f s + selection %.1f s + main %.0f s = %.0f s; main test accuracy %.4f",
                         refSeconds, selectSeconds, mainSeconds, refSeconds + selectSeconds + mainSeconds, mainTest["accuracy"] as? Double ?? 0))
      emit(String(decoding: data, as: UTF8.self))
    }
  }
}
