// Fine-tuning a sequence classifier, by any method and combination of methods: the Trainer reads the
// configuration, assembles a TrainingRun from components (the only place that knows them by name:
// task, loss terms, parameter plan, batch sampler, observers) and runs or resumes it exactly.
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation

/// A training failure the user can act on.
public enum TrainingError: LocalizedError {
  case nonFiniteLoss(step: Int, value: Float)
  case runExists(path: String)
  case badResume(path: String, reason: String)
  case interrupted(step: Int)
  case unsupported(String)

  public var errorDescription: String? {
    switch self {
    case let .nonFiniteLoss(step, value):
      return "the loss became \(value) at step \(step); the last checkpoint is kept: lower --learning-rate or set --max-grad-norm, then --resume"
    case let .runExists(path): return "\(path) already holds a run: pass --overwrite to replace it or --resume to continue it"
    case let .badResume(path, reason): return "\(path): cannot resume: \(reason)"
    case let .unsupported(reason): return reason
    case let .interrupted(step): return "stopped after step \(step) (BONSAI_TEST_STOP_AFTER_STEP); continue with --resume"
    }
  }
}

public final class Trainer {
  public let config: TrainConfig
  public let runDir: URL
  public let progress: ProgressSink
  let modelFolder: URL
  /// Loss terms of your own, made for each run after the built-in ones (docs/training.md); nil: none this run.
  public var extraLossTerms: [(TrainingTask) throws -> LossTerm?] = []

  /// The ranks training together (DataParallel.world unless given): rank 0 alone writes and reports.
  public let communicator: Communicator

  public init(config: TrainConfig, modelFolder: URL, runDir: URL, progress: ProgressSink = StderrProgress(),
              communicator: Communicator = DataParallel.world) {
    self.config = config; self.modelFolder = modelFolder; self.runDir = runDir; self.communicator = communicator
    self.progress = communicator.rank == 0 ? progress : SilentProgress()
  }

  /// Runs (or resumes from checkpoint-last/) training; returns the summary written to summary.json.
  @discardableResult
  public func run(resume: Bool) throws -> [String: Any] {
    try FileManager.default.createDirectory(at: runDir, withIntermediateDirectories: true)
    if let t = config.threads { Engine.threads = t }
    let run = try assemble(resume: resume)
    if resume {
      try run.restore(validate: checkOptionsUnchanged)
      progress.message("resuming at step \(run.state.globalStep) (epoch \(run.state.epoch + 1), batch \(run.state.batchInEpoch))")
    } else if communicator.rank == 0 {
      try JSONEncoder.pretty.encode(config).write(to: runDir.appendingPathComponent("config.json"))
    }
    return try run.train(resumed: resume)
  }

  /// The folder a finished run's test metrics come from: best/ when dev evaluation kept one, else final/.
  public static func selectedModel(in runDir: URL) -> URL {
    let best = runDir.appendingPathComponent("best")
    return FileManager.default.fileExists(atPath: best.path) ? best : runDir.appendingPathComponent("final")
  }

  /// The run's task: causal-lm for a decoder (unless --task says otherwise), classification for an encoder.
  func taskKind() throws -> String {
    let decoder = DecoderCheckpoint.isDecoder(modelFolder)
    let kind = config.task ?? (decoder ? "causal-lm" : "classification")
    if kind == "causal-lm" && !decoder { throw TrainingError.unsupported("\(modelFolder.path) is not a decoder (llama or qwen2): --task causal-lm needs one") }
    if kind == "classification" && decoder {
      throw TrainingError.unsupported("\(modelFolder.path) is a decoder: Bonsai fine-tunes decoders as language models; give the labels as completions (e.g. --data polarity-instruct)")
    }
    return kind
  }

  /// The run's components, from the configuration.
  func assemble(resume: Bool) throws -> TrainingRun {
    var (task, terms) = try taskKind() == "causal-lm" ? languageModelTask(resume: resume) : classificationTask(resume: resume)
    for make in extraLossTerms { if let term = try make(task) { terms.append(term) } }
    let plan = try makePlan(task: task, extra: terms.flatMap(\.parameters))
    if plan.method != "full" {
      progress.message(String(format: "%@: %d trainable parameters (%.3f%% of %d)", plan.method, plan.trainableCount,
                              100 * Double(plan.trainableCount) / Double(task.model.parameterCount), task.model.parameterCount))
    }
    let sampler: BatchSampler = config.selfDistill != nil || config.batchSampler == "repeat-half"
      ? RepeatHalfSampler(indices: task.trainIndices, lengths: task.lengths, batchSize: config.batchSize, seed: config.seed)
      : LengthGroupedSampler(indices: task.trainIndices, lengths: task.lengths, batchSize: config.batchSize, seed: config.seed)
    let metrics = MetricsLog(url: runDir.appendingPathComponent("metrics.jsonl"), metricName: config.metric)
    var observers: [TrainingComponent] = [ProgressObserver(), metrics]
    if config.recordDynamics, let task = task as? ClassificationTask {
      observers.append(DynamicsRecorder(task: task, pass: config.dynamicsPass, url: runDir.appendingPathComponent("dynamics.jsonl")))
    }
    observers.append(Evaluator(metric: config.metric, evalEvery: config.evalEvery, patience: config.patience))
    return TrainingRun(config: config, runDir: runDir, progress: progress, task: task, lossTerms: terms, taskWeight: config.distill?.alphaCE ?? 1,
                       plan: plan, sampler: sampler, metrics: metrics, observers: observers, communicator: communicator)
  }

  /// A decoder learning its data's completions (or texts, or chats' assistant turns).
  func languageModelTask(resume: Bool) throws -> (TrainingTask, [LossTerm]) {
    for (on, option) in [(config.distill?.unlabeled != nil, "--unlabeled"), (config.recordDynamics, "--record-dynamics"), (config.distill?.alignUniform != nil, "--loss align-uniform"),
                         (config.trainSubset != nil, "--train-subset")] where on {
      throw TrainingError.unsupported("\(option) is not available for decoders yet")
    }
    guard LanguageEvaluation.metrics.contains(config.metric) else {
      throw TrainingError.unsupported("--metric \(config.metric) is not a language-model metric (\(LanguageEvaluation.metrics.joined(separator: ", ")))")
    }
    if config.quantizedBase && (config.method != "lora" || modelFolder.pathExtension.lowercased() != "gguf") {
      throw TrainingError.unsupported("--quantized-base needs --method lora and a GGUF model")
    }
    let dataset = try LanguageDataset.load(path: config.data, columns: LanguageColumns(text: config.textColumn, prompt: config.promptColumn,
                                                                                         completion: config.completionColumn))
    let (model, tokenizer) = try DecoderCheckpoint.load(modelFolder, keepingBlocks: config.quantizedBase)
    model.checkpointing = config.gradientCheckpointing
    model.wholeRecomputedLayers = config.wholeRecomputedLayers
    traceMemory("model loaded")
    let encoder = try LanguageEncoder(for: dataset, tokenizer: tokenizer, model: modelFolder.path, maxLength: config.maxLength,
                                      trainOnAll: config.trainOn == "all")
    var data = try LanguageModelData.prepare(dataset, encoder: encoder, config: config, runDir: runDir, resume: resume, progress: progress)
    traceMemory("data prepared")
    let teacher = try config.distill.map { try DecoderTeacher(url: try Assets.model($0.teacher, log: progress.message), studentTokenizer: tokenizer) }
    if let d = config.distill, d.pseudoLabels, let teacher {
      data = try communicator.rankZeroFirst {  // rank 0 generates and caches them, the others read the cache
        try DecoderDistillation.pseudoLabelled(data, teacher: teacher, tokenizer: tokenizer, maxLength: config.maxLength, runDir: runDir, progress: progress)
      }
    }
    let task = LanguageModelTask(model: model, tokenizer: tokenizer, data: data, runDir: runDir, generationTokens: config.generationTokens,
                                 metric: config.metric, ggufType: config.exportGGUF)
    task.logitsNeeded = config.selfDistill != nil
    var terms: [LossTerm] = config.selfDistill.map { [TokenSelfDistillationTerm(config: $0)] } ?? []
    if let d = config.distill, let teacher {
      terms += try communicator.rankZeroFirst {  // rank 0 makes and caches the teacher's top-k rows, the others read them
        try DecoderDistillation.make(d, teacher: teacher, config: config, task: task, runDir: runDir, progress: progress)
      }
    }
    return (task, terms)
  }

  /// A sequence classifier with a new head, and the distillation terms the configuration asks for.
  func classificationTask(resume: Bool) throws -> (TrainingTask, [LossTerm]) {
    if config.gradientCheckpointing != nil {
      throw TrainingError.unsupported("--gradient-checkpointing and --selective-checkpointing are available for decoders only")
    }
    // the data is read once: its labels (or the teacher's) size the new head, then it is split and tokenised
    let dataset = try Dataset.load(path: config.data, columns: ColumnSpec(text: config.textColumn, pair: config.pairColumn, label: config.labelColumn))
    let labelCount = try DistillationSetup.headLabelCount(config, dataset: dataset, studentFolder: modelFolder)
    let (model, tokenizer, _) = try ModelFolder.loadClassifier(modelFolder, numLabels: labelCount, seed: config.seed)
    traceMemory("model loaded")
    var data = try PreparedData.prepare(dataset, tokenizer: tokenizer, config: config, modelFolder: modelFolder, runDir: runDir,
                                        resume: resume, progress: progress)
    traceMemory("data prepared")
    let fileSplit = data.split
    var terms: [LossTerm] = []
    if let d = config.distill {
      terms += try DistillationSetup.make(d, config: config, student: model, studentFolder: modelFolder, tokenizer: tokenizer, data: &data, progress: progress)
    }
    if let sd = config.selfDistill { terms.append(SelfDistillationTerm(config: sd)) }
    let task = ClassificationTask(classifier: model, tokenizer: tokenizer, data: data, recordedSplit: fileSplit, modelFolder: modelFolder,
                                  runDir: runDir, maxLength: config.maxLength)
    return (task, terms)
  }

  func makePlan(task: TrainingTask, extra: [(key: String, tensor: Tensor)]) throws -> ParameterPlan {
    switch config.method {
    case "full": return try FullPlan(task: task, extra: extra, config: config, modelFolder: modelFolder)
    case "head": return try HeadPlan(task: task, extra: extra, config: config, modelFolder: modelFolder)
    case "lora": return try LoRAPlan(task: task, extra: extra, config: config, modelFolder: modelFolder)
    case "sift": return try SIFTPlan(task: task, extra: extra, config: config, modelFolder: modelFolder)
    default: throw MethodError.unknownMethod(config.method)
    }
  }

  /// A resumed run must have the options it started with (the thread count may change).
  func checkOptionsUnchanged() throws {
    let url = runDir.appendingPathComponent("config.json")
    guard let saved = FileManager.default.contents(atPath: url.path) else { return }
    var a = try JSONDecoder().decode(TrainConfig.self, from: saved), b = config
    a.threads = nil; b.threads = nil
    guard a == b else { throw TrainingError.badResume(path: url.path, reason: "the options differ from the run's") }
  }
}
