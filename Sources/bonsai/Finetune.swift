// `bonsai finetune` and `bonsai distill`, with the data and training options they share.
import ArgumentParser
import BonsaiData
import BonsaiDistributed
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation

/// Data options shared by finetune and eval.
struct DataOptions: ParsableArguments {
  @Option(name: .long, help: "A data set name (polarity, reviews, bbc, tweets) or a CSV/TSV/JSONL file or label-per-folder directory.")
  var data: String

  @Option(name: .long, help: "Column with the text (default: 'text'; column 2 of a headerless label,text file).")
  var textColumn: String?

  @Option(name: .long, help: "Column with the second text of a pair.")
  var textPairColumn: String?

  @Option(name: .long, help: "Column with the label (default: 'label'; column 1 of a headerless label,text file).")
  var labelColumn: String?

  @Option(name: .long, help: "Decoders: column (CSV/TSV) or field (JSONL) with the prompt (default: 'prompt').")
  var promptColumn: String?

  @Option(name: .long, help: "Decoders: column or field with the completion (default: 'completion').")
  var completionColumn: String?
}

/// Training options shared by finetune and distill.
struct TrainingOptions: ParsableArguments {
  @Option(name: .long, help: "Passes over the training split.") var epochs = 3
  @Option(name: .long, help: "Examples per forward pass.") var batchSize = 32
  @Option(name: .long, help: "Peak learning rate of AdamW.") var learningRate: Float = 5e-5
  @Option(name: .long, help: "Decoupled weight decay (not applied to biases and LayerNorm weights).") var weightDecay: Float = 0.01
  @Option(name: .long, help: "Fraction of the steps spent warming the learning rate up linearly.") var warmupRatio: Float = 0
  @Option(name: .long, help: "Clip the global gradient norm to this (0: off).") var maxGradNorm: Float = 1
  @Option(name: .long, help: "Batches whose gradients are summed before each optimizer step.") var gradientAccumulation = 1
  @Option(name: .long, help: "Truncate texts to this many tokens.") var maxLength = 128
  @Option(name: .long, help: "Seed of the split, the new head, dropout and the data order.") var seed: UInt64 = 42
  @Option(name: .long, help: "Seed of the train/dev/test split alone (default: --seed), to vary seeds over one split.") var splitSeed: UInt64?
  @Option(name: .long, help: "Fraction of each label held out for the dev split.") var devFraction = 0.1
  @Option(name: .long, help: "Fraction of each label held out for the test split.") var testFraction = 0.2
  @Flag(name: .long, help: "Drop examples whose text repeats an earlier one (before splitting).") var dedup = false
  @Option(name: .long, help: "Evaluate on dev every N optimizer steps (default: each epoch).") var evalEvery = 0
  @Option(name: .long, help: "Stop after N evaluations without improvement (0: never).") var patience = 0
  @Option(name: .long, help: "Dev metric for best checkpoint and early stopping: accuracy, macro_f1 or loss (default accuracy); decoders: loss, perplexity, rouge1, rouge2, rougeL or exact_match (default loss).") var metric: String?
  @Option(name: .long, help: "Stop after this many optimizer steps.") var maxSteps: Int?
  @Option(name: .long, help: "Threads (default: all cores).") var threads: Int?
  @Flag(name: .long, help: "Record per-example training dynamics (dynamics.jsonl) for `bonsai datamap` and `select`.") var recordDynamics = false
  @Option(name: .long, help: "Dynamics from the training forward pass (train, as FTFT) or an extra eval-mode pass per epoch (eval).")
  var dynamicsPass = "train"
  @Option(name: .long, help: "A selection file from `bonsai select`: train only on those examples (dev and test unchanged).") var trainSubset: String?
  @Option(name: .long, help: "full, head (a classifier's head, a decoder's LM head), sift (sparse components), lora (low-rank adapters); dynsdpb or dlb: full fine-tuning with dynamic or static self-distillation from the previous mini-batch.") var method = "full"
  @Option(name: .long, help: "Self-distillation from the previous mini-batch with any method: dynamic (DynSDPB) or static (DLB).") var selfDistill: String?
  @Option(name: .long, help: "Self-distillation weight alpha (the dynamic rule scales it per example).") var sdAlpha: Float = 1
  @Option(name: .long, help: "Static self-distillation temperature.") var sdTemperature: Float = 3
  @Option(name: .long, help: "Dynamic self-distillation: temperature range T_min..T_max.") var sdTMin: Float = 1
  @Option(name: .long, help: "Dynamic self-distillation: upper temperature.") var sdTMax: Float = 4
  @Option(name: .long, help: "Decoders' self-distillation: tokens of each previous distribution kept (the rest as one bucket).") var sdTopK = 32
  @Option(name: .long, help: "length-grouped, or repeat-half (each batch repeats half of the previous one; implied by self-distillation).") var batchSampler = "length-grouped"
  @Option(name: .long, help: "SIFT: fraction of each selected matrix that trains, in (0, 1].") var sparsity = 0.01
  @Option(name: .long, help: "SIFT: batches whose |gradient| chooses the components (they make no update).") var siftVoteBatches = 1
  @Option(name: .long, help: "SIFT: choose again from the current batch every N steps (0: never).") var siftReselectEvery = 0
  @Option(name: .long, help: "SIFT: comma-separated substrings of the sparse matrices' keys (default: attention and feed-forward).") var sparseTarget: String?
  @Option(name: .long, help: "LoRA: adapter rank r.") var rank = 8
  @Option(name: .long, help: "LoRA: scale numerator alpha (the update is alpha/r * B A).") var alpha: Float = 16
  @Option(name: .long, help: "LoRA: comma-separated key suffixes of the adapted layers (default: query,value; decoders: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).") var target: String?
  @Option(name: .long, help: "classification or causal-lm (default: causal-lm for a decoder, classification otherwise).") var task: String?
  @Option(name: .long, help: "Decoders: completion (the completion or assistant tokens are the targets) or all (prompts too).") var trainOn = "completion"
  @Option(name: .long, help: "Decoders: new tokens of the greedy generations ROUGE and exact match score on test (and dev, for those metrics); 0: none.") var generationTokens = 32
  @Flag(name: .long, help: "Decoders from a GGUF with --method lora: keep the frozen base in its quantised blocks (less memory).") var quantizedBase = false
  @Flag(name: .long, help: "Decoders: recompute each layer in the backward pass instead of keeping its activations (least memory, ~30% more time).") var gradientCheckpointing = false
  @Flag(name: .long, help: "Decoders: keep each layer's matrix products and recompute only the cheap ops between them in the backward pass (most of the memory saved for a few percent of time).") var selectiveCheckpointing = false
  @Option(name: .long, help: "With --selective-checkpointing: recompute the first N layers whole instead (each saves its products' memory for a forward pass of the layer).") var wholeLayers = 0
  @Option(name: .long, help: "Decoders: also write best/ and final/ as model.gguf with matrices in f32, f16, q8_0 or q4_0 (llama.cpp loads it).") var exportGguf: String?
  @Option(name: .long, help: "Run folder (default: runs/MODEL-DATA).") var output: String?
  @Option(name: .long, help: "Continue the run in this folder from its last checkpoint.") var resume: String?
  @Flag(name: .long, help: "Replace a run already in the output folder.") var overwrite = false

  func validate() throws {
    if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
    if epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
    if gradientAccumulation < 1 { throw ValidationError("--gradient-accumulation must be at least 1, got \(gradientAccumulation)") }
    if !(learningRate > 0 && learningRate.isFinite) { throw ValidationError("--learning-rate must be a positive number, got \(learningRate)") }
    if maxLength < 2 { throw ValidationError("--max-length must be at least 2, got \(maxLength)") }
    if !(0..<1).contains(warmupRatio) { throw ValidationError("--warmup-ratio must be in [0, 1), got \(warmupRatio)") }
    if devFraction < 0 || testFraction < 0 || devFraction + testFraction >= 1 {
      throw ValidationError("--dev-fraction and --test-fraction must be >= 0 and sum below 1")
    }
    let metrics = ["accuracy", "macro_f1", "loss", "perplexity", "rouge1", "rouge2", "rougeL", "exact_match"]
    if let m = metric, !metrics.contains(m) { throw ValidationError("--metric must be one of \(metrics.joined(separator: ", ")), got \(m)") }
    if let t = task, !["classification", "causal-lm"].contains(t) { throw ValidationError("--task must be classification or causal-lm, got '\(t)'") }
    if wholeLayers < 0 || (wholeLayers > 0 && !selectiveCheckpointing) {
      throw ValidationError("--whole-layers takes a count of layers (0 or more) and goes with --selective-checkpointing")
    }
    if gradientCheckpointing && selectiveCheckpointing {
      throw ValidationError("--gradient-checkpointing and --selective-checkpointing exclude each other (the first recomputes the products the second keeps)")
    }
    if !["completion", "all"].contains(trainOn) { throw ValidationError("--train-on must be completion or all, got '\(trainOn)'") }
    if let g = exportGguf, !["f32", "f16", "q8_0", "q4_0"].contains(g) { throw ValidationError("--export-gguf must be f32, f16, q8_0 or q4_0, got '\(g)'") }
    if generationTokens < 0 { throw ValidationError("--generation-tokens must be >= 0, got \(generationTokens)") }
    if let m = maxSteps, m < 1 { throw ValidationError("--max-steps must be at least 1, got \(m)") }
    if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
    if !["full", "head", "sift", "lora", "dynsdpb", "dlb"].contains(method) {
      throw ValidationError("--method must be full, head, sift, lora, dynsdpb or dlb, got '\(method)'")
    }
    if let sd = selfDistill, !["dynamic", "static"].contains(sd) { throw ValidationError("--self-distill must be dynamic or static, got '\(sd)'") }
    if selfDistill != nil && ["dynsdpb", "dlb"].contains(method) { throw ValidationError("--self-distill: --method \(method) already self-distils") }
    if !(sdAlpha >= 0) || !(sdTemperature > 0) || !(sdTMin > 0) || !(sdTMax >= sdTMin) {
      throw ValidationError("self-distillation needs --sd-alpha >= 0, --sd-temperature > 0 and 0 < --sd-t-min <= --sd-t-max")
    }
    if sdTopK < 1 { throw ValidationError("--sd-top-k must be at least 1, got \(sdTopK)") }
    if !["length-grouped", "repeat-half"].contains(batchSampler) { throw ValidationError("--batch-sampler must be length-grouped or repeat-half") }
    if (selfDistill != nil || ["dynsdpb", "dlb"].contains(method) || batchSampler == "repeat-half") && batchSize < 2 {
      throw ValidationError("--batch-size must be at least 2 when batches repeat half of the previous one")
    }
    if !(sparsity > 0 && sparsity <= 1) { throw ValidationError(MethodError.badRate(sparsity).errorDescription!) }
    if siftVoteBatches < 1 { throw ValidationError("--sift-vote-batches must be at least 1") }
    if siftReselectEvery < 0 { throw ValidationError("--sift-reselect-every must be >= 0") }
    if rank < 1 { throw ValidationError("--rank must be at least 1, got \(rank)") }
    if !(alpha > 0) { throw ValidationError("--alpha must be positive, got \(alpha)") }
    if !["train", "eval"].contains(dynamicsPass) { throw ValidationError("--dynamics-pass must be train or eval, got \(dynamicsPass)") }
    if resume != nil && overwrite { throw ValidationError("--resume and --overwrite exclude each other") }
  }

  /// Resolves names, fills a TrainConfig, prepares the run folder and trains; prints the test metrics.
  /// Under `mpirun -np N` (a build with the MPI trait) the N ranks train together; rank 0 prints.
  func train(model: String, data dataOptions: DataOptions, distill: DistillConfig? = nil) throws {
    try Distributed.start()
    let (config, modelFolder) = try makeConfig(model: model, data: dataOptions, distill: distill)
    let runPath = resume ?? output ?? "runs/\(modelFolder.lastPathComponent)-\(URL(fileURLWithPath: config.data).deletingPathExtension().lastPathComponent)"
    let summary = try runTraining(config, modelFolder: modelFolder, runDir: URL(fileURLWithPath: runPath), resume: resume != nil, overwrite: overwrite)
    var out: [String: Any]
    if let test = summary["test"] as? [String: Any], config.task == "causal-lm" {
      out = ["test_examples": summary["test_examples"] ?? 0, "run": runPath]
      for (k, v) in test where k != "examples" && k != "tokens" { out["test_" + k] = v }
    } else if let test = summary["test"] as? [String: Any] {
      out = ["test_accuracy": test["accuracy"] ?? 0, "test_macro_f1": test["macro_f1"] ?? 0,
             "test_examples": summary["test_examples"] ?? 0, "run": runPath]
    } else {
      // --test-fraction 0: nothing was tested; say where to evaluate instead of printing zeros.
      let folder = Trainer.selectedModel(in: URL(fileURLWithPath: runPath)).path
      out = ["test_examples": 0, "run": runPath,
             "evaluate": "no test split (--test-fraction 0): evaluate with bonsai eval --model \(folder) --data HELD-OUT-FILE"]
    }
    if DataParallel.world.rank == 0 { emit(String(decoding: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), as: UTF8.self)) }
  }

  /// The run's configuration from these options (model and data names resolved, fetched on first use).
  func makeConfig(model: String, data dataOptions: DataOptions, distill: DistillConfig? = nil) throws -> (TrainConfig, URL) {
    let log = StderrProgress()
    let modelFolder = try Assets.model(model, log: log.message)
    let dataPath = try Assets.data(dataOptions.data, log: log.message)
    var config = TrainConfig(model: modelFolder.path, data: dataPath)
    config.textColumn = dataOptions.textColumn; config.pairColumn = dataOptions.textPairColumn; config.labelColumn = dataOptions.labelColumn
    config.epochs = epochs; config.batchSize = batchSize; config.learningRate = learningRate; config.weightDecay = weightDecay
    config.warmupRatio = warmupRatio; config.maxGradNorm = maxGradNorm; config.gradientAccumulation = gradientAccumulation
    config.maxLength = maxLength; config.seed = seed; config.splitSeed = splitSeed; config.devFraction = devFraction; config.testFraction = testFraction
    config.deduplicate = dedup; config.evalEvery = evalEvery; config.patience = patience
    let decoder = DecoderCheckpoint.isDecoder(modelFolder)
    config.task = task ?? (decoder ? "causal-lm" : "classification")
    config.metric = metric ?? (config.task == "causal-lm" ? "loss" : "accuracy")
    if config.task == "classification" && !["accuracy", "macro_f1", "loss"].contains(config.metric) {
      throw ValidationError("--metric \(config.metric) is for decoders; a classifier selects on accuracy, macro_f1 or loss")
    }
    config.trainOn = trainOn; config.generationTokens = generationTokens; config.quantizedBase = quantizedBase; config.exportGGUF = exportGguf
    config.gradientCheckpointing = gradientCheckpointing ? .input : selectiveCheckpointing ? .products : nil
    config.wholeRecomputedLayers = wholeLayers
    config.promptColumn = dataOptions.promptColumn; config.completionColumn = dataOptions.completionColumn
    config.maxSteps = maxSteps; config.threads = threads; config.distill = distill
    config.recordDynamics = recordDynamics; config.dynamicsPass = dynamicsPass; config.trainSubset = trainSubset
    config.method = ["dynsdpb", "dlb"].contains(method) ? "full" : method
    config.batchSampler = batchSampler
    if let rule = selfDistill ?? (method == "dynsdpb" ? "dynamic" : method == "dlb" ? "static" : nil) {
      var sd = SelfDistillConfig()
      sd.rule = rule; sd.alpha = sdAlpha; sd.temperature = sdTemperature; sd.tMin = sdTMin; sd.tMax = sdTMax; sd.topK = sdTopK
      config.selfDistill = sd
    }
    if method == "sift" {
      var sc = SIFTConfig()
      sc.rate = sparsity; sc.voteBatches = siftVoteBatches; sc.reselectEvery = siftReselectEvery
      sc.targets = sparseTarget.map { $0.split(separator: ",").map(String.init) }
      config.sift = sc
    }
    if method == "lora" {
      var lc = LoRAConfig()
      lc.rank = rank; lc.alpha = alpha; lc.targets = target.map { $0.split(separator: ",").map(String.init) }
      config.lora = lc
    }
    return (config, modelFolder)
  }
}

/// Trains `config` in `runDir` (refusing to replace a run unless `overwrite`); returns the summary.
func runTraining(_ config: TrainConfig, modelFolder: URL, runDir: URL, resume: Bool, overwrite: Bool) throws -> [String: Any] {
  let log = StderrProgress(), world = DataParallel.world
  let fm = FileManager.default
  if !resume, fm.fileExists(atPath: runDir.appendingPathComponent("config.json").path) {
    guard overwrite else { throw TrainingError.runExists(path: runDir.path) }
    if world.rank == 0 { try fm.removeItem(at: runDir) }
  }
  world.barrier()  // every rank sees the run folder as rank 0 left it
  let trainer = Trainer(config: config, modelFolder: modelFolder, runDir: runDir, progress: log)
  let summary = try trainer.run(resume: resume)
  if world.rank == 0 { log.message("run folder: \(runDir.path) (best/, final/, metrics.jsonl, summary.json, learning-curve.svg\(config.recordDynamics ? ", dynamics.jsonl" : ""))") }
  return summary
}

struct Finetune: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Fine-tune a sequence classifier or a decoder (causal LM); writes a run folder and prints the test metrics.")

  @Option(name: .long, help: "A model name (minilm, mpnet, smollm2), a Hugging Face model folder or a decoder's GGUF file.")
  var model: String
  @OptionGroup var dataOptions: DataOptions
  @OptionGroup var training: TrainingOptions

  func run() throws {
    try runReportingErrors(dataParallel: true) { try training.train(model: model, data: dataOptions) }
  }
}

struct Distill: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train a student from a fine-tuned teacher: labels, logit KD, hidden-state KD and/or pseudo-labels.")

  @Option(name: .long, help: "A fine-tuned teacher, e.g. a finetune run's best/: a classifier folder (with id2label), or a decoder (folder or .gguf) with the student's vocabulary.") var teacher: String
  @Option(name: .long, help: "The student: a model name or folder (e.g. made by `bonsai shrink`).") var student: String
  @OptionGroup var dataOptions: DataOptions
  @Option(name: .long, help: "kd (Hinton's logit KD, the variants below) or align-uniform (Farhat & Chen: CE + alignment + uniformity of projected sentence vectors + KD at T=4).")
  var loss = "kd"
  @Option(name: .long, help: "Weight of cross-entropy on the (gold or pseudo) labels (default 0.2; align-uniform: 1).") var alphaCe: Float?
  @Option(name: .long, help: "Weight of T^2 * KL(teacher || student) at temperature T (default 0.8; align-uniform: 1).") var alphaKd: Float?
  @Option(name: .long, help: "Distillation temperature T (default 2; align-uniform: 4).") var temperature: Float?
  @Option(name: .long, help: "align-uniform: weight of the alignment term.") var alignWeight: Float = 1
  @Option(name: .long, help: "align-uniform: weight of the uniformity term.") var uniformWeight: Float = 1
  @Option(name: .long, help: "align-uniform: width of the projected sentence vectors.") var projectionDim = 128
  @Option(name: .long, help: "Weight of the hidden-state MSE (needs a shared tokenizer; a narrower student gets a learned projection).") var alphaHidden: Float = 0
  @Option(name: .long, help: "Teacher layer per student layer, e.g. 0,6,11 (default: the student's copied layers).") var hiddenMap: String?
  @Flag(name: .long, help: "Parameter-free layer norm on both hidden states before the MSE.") var normalizeHidden = false
  @Flag(name: .long, help: "Train on the teacher's predicted labels instead of the gold ones.") var pseudoLabels = false
  @Option(name: .long, help: "Extra unlabelled texts, one per line, labelled by the teacher.") var unlabeled: String?
  @Option(name: .long, help: "Decoders: tokens of each teacher distribution kept for logit KD, the rest as one bucket (cached once per run).") var topK = 32
  @OptionGroup var training: TrainingOptions

  var alignUniform: Bool { loss == "align-uniform" }

  func validate() throws {
    guard ["kd", "align-uniform"].contains(loss) else { throw ValidationError("--loss must be kd or align-uniform, got '\(loss)'") }
    let ce = alphaCe ?? 0.2, kd = alphaKd ?? 0.8
    if ce < 0 || kd < 0 || alphaHidden < 0 || (ce + kd + alphaHidden == 0 && !alignUniform) {
      throw ValidationError("--alpha-ce, --alpha-kd and --alpha-hidden must be >= 0 and not all 0")
    }
    if let t = temperature, !(t > 0) { throw ValidationError("--temperature must be positive, got \(t)") }
    if alignWeight < 0 || uniformWeight < 0 || projectionDim < 1 {
      throw ValidationError("--align-weight and --uniform-weight must be >= 0 and --projection-dim at least 1")
    }
    if topK < 1 { throw ValidationError("--top-k must be at least 1, got \(topK)") }
    if let m = hiddenMap, m.split(separator: ",").contains(where: { Int($0) == nil }) {
      throw ValidationError("--hidden-map must be comma-separated integers, got '\(m)'")
    }
  }

  func run() throws {
    try runReportingErrors(dataParallel: true) {
      var d = DistillConfig(teacher: teacher)
      d.alphaCE = alphaCe ?? (alignUniform ? 1 : 0.2); d.alphaKD = alphaKd ?? (alignUniform ? 1 : 0.8)
      d.temperature = temperature ?? (alignUniform ? 4 : 2); d.alphaHidden = alphaHidden
      if alignUniform {
        var au = AlignUniformConfig()
        au.alignWeight = alignWeight; au.uniformWeight = uniformWeight; au.dim = projectionDim
        d.alignUniform = au
      }
      d.hiddenMap = hiddenMap.map { $0.split(separator: ",").map { Int($0)! } }
      d.normalizeHidden = normalizeHidden; d.pseudoLabels = pseudoLabels; d.unlabeled = unlabeled
      if DecoderCheckpoint.isDecoder(try Assets.model(student)) { d.topK = topK }
      try training.train(model: student, data: dataOptions, distill: d)
    }
  }
}
