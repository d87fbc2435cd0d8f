// The resolved configuration of a fine-tuning run, saved as config.json in the run folder.
import BonsaiEngine

/// Hyperparameters and data options of one run (defaults follow transformers' Trainer where it has one).
public struct TrainConfig: Codable, Sendable, Equatable {
  public var model: String
  public var data: String
  public var textColumn: String?
  public var pairColumn: String?
  public var labelColumn: String?
  public var epochs = 3
  public var batchSize = 32
  public var learningRate: Float = 5e-5
  public var weightDecay: Float = 0.01
  public var warmupRatio: Float = 0.0
  public var maxGradNorm: Float = 1.0
  public var gradientAccumulation = 1
  public var maxLength = 128
  public var seed: UInt64 = 42
  /// Seed of the train/dev/test split alone (nil: `seed`), so runs with other seeds share one split.
  public var splitSeed: UInt64?
  public var devFraction = 0.1
  public var testFraction = 0.2
  public var deduplicate = false
  /// Evaluate every N optimizer steps (0: at the end of each epoch).
  public var evalEvery = 0
  /// Stop after this many evaluations without improvement (0: never).
  public var patience = 0
  public var metric = "accuracy"
  public var maxSteps: Int?
  public var threads: Int?
  /// Record per-example training dynamics (dynamics.jsonl) for data maps.
  public var recordDynamics = false
  /// Where dynamics come from: "train" (the training forward pass, as FTFT) or "eval" (an extra pass in
  /// eval mode over the training split at the end of each epoch, as cartography's option).
  public var dynamicsPass = "train"
  /// A selection file (`bonsai select`): train only on those examples of the training split.
  public var trainSubset: String?
  /// Knowledge distillation from a teacher (nil: plain fine-tuning).
  public var distill: DistillConfig?
  /// What trains: full, head (the classifier only), sift (sparse components), lora (adapters).
  public var method = "full"
  public var sift: SIFTConfig?
  public var lora: LoRAConfig?
  /// Self-distillation from the previous mini-batch (DynSDPB / DLB); implies the repeat-half sampler.
  public var selfDistill: SelfDistillConfig?
  /// "length-grouped", or "repeat-half" (each batch repeats half of the previous one, as DLB samples).
  public var batchSampler = "length-grouped"

  /// "classification" or "causal-lm" (nil: causal-lm for a decoder, classification otherwise).
  public var task: String?
  /// Causal LM: "completion" (the completion or assistant tokens are the targets) or "all" (prompts too).
  public var trainOn = "completion"
  public var promptColumn: String?
  public var completionColumn: String?
  /// Causal LM: new tokens of the greedy generations that ROUGE and exact match score (0: none).
  public var generationTokens = 32
  /// Causal LM from a GGUF with LoRA: keep the frozen base in its quantised blocks (QLoRA's idea).
  public var quantizedBase = false
  /// Causal LM: also write best/ and final/ as model.gguf in this type (f32, f16, q8_0, q4_0).
  public var exportGGUF: String?
  /// Decoders: recompute each layer in the backward pass, keeping only its input (`.input`: the least
  /// memory, a forward pass more) or its input and matrix products (`.products`: the cheap ops alone run
  /// twice); nil keeps every activation. The same gradients either way.
  public var gradientCheckpointing: CheckpointPolicy?
  /// With `.products`: the first layers recomputed whole instead (`LlamaForCausalLM.wholeRecomputedLayers`).
  public var wholeRecomputedLayers = 0

  public init(model: String, data: String) { self.model = model; self.data = data }

  public init(from decoder: Decoder) throws {  // keys added later are optional, so older run folders still resume
    let c = try decoder.container(keyedBy: CodingKeys.self)
    model = try c.decode(String.self, forKey: .model); data = try c.decode(String.self, forKey: .data)
    textColumn = try c.decodeIfPresent(String.self, forKey: .textColumn); pairColumn = try c.decodeIfPresent(String.self, forKey: .pairColumn)
    labelColumn = try c.decodeIfPresent(String.self, forKey: .labelColumn)
    epochs = try c.decode(Int.self, forKey: .epochs); batchSize = try c.decode(Int.self, forKey: .batchSize)
    learningRate = try c.decode(Float.self, forKey: .learningRate); weightDecay = try c.decode(Float.self, forKey: .weightDecay)
    warmupRatio = try c.decode(Float.self, forKey: .warmupRatio); maxGradNorm = try c.decode(Float.self, forKey: .maxGradNorm)
    gradientAccumulation = try c.decode(Int.self, forKey: .gradientAccumulation); maxLength = try c.decode(Int.self, forKey: .maxLength)
    seed = try c.decode(UInt64.self, forKey: .seed); splitSeed = try c.decodeIfPresent(UInt64.self, forKey: .splitSeed)
    devFraction = try c.decode(Double.self, forKey: .devFraction); testFraction = try c.decode(Double.self, forKey: .testFraction)
    deduplicate = try c.decode(Bool.self, forKey: .deduplicate); evalEvery = try c.decode(Int.self, forKey: .evalEvery)
    patience = try c.decode(Int.self, forKey: .patience); metric = try c.decode(String.self, forKey: .metric)
    maxSteps = try c.decodeIfPresent(Int.self, forKey: .maxSteps); threads = try c.decodeIfPresent(Int.self, forKey: .threads)
    distill = try c.decodeIfPresent(DistillConfig.self, forKey: .distill)
    recordDynamics = try c.decodeIfPresent(Bool.self, forKey: .recordDynamics) ?? false
    dynamicsPass = try c.decodeIfPresent(String.self, forKey: .dynamicsPass) ?? "train"
    trainSubset = try c.decodeIfPresent(String.self, forKey: .trainSubset)
    method = try c.decodeIfPresent(String.self, forKey: .method) ?? "full"
    sift = try c.decodeIfPresent(SIFTConfig.self, forKey: .sift); lora = try c.decodeIfPresent(LoRAConfig.self, forKey: .lora)
    selfDistill = try c.decodeIfPresent(SelfDistillConfig.self, forKey: .selfDistill)
    batchSampler = try c.decodeIfPresent(String.self, forKey: .batchSampler) ?? "length-grouped"
    task = try c.decodeIfPresent(String.self, forKey: .task); trainOn = try c.decodeIfPresent(String.self, forKey: .trainOn) ?? "completion"
    promptColumn = try c.decodeIfPresent(String.self, forKey: .promptColumn)
    completionColumn = try c.decodeIfPresent(String.self, forKey: .completionColumn)
    generationTokens = try c.decodeIfPresent(Int.self, forKey: .generationTokens) ?? 32
    quantizedBase = try c.decodeIfPresent(Bool.self, forKey: .quantizedBase) ?? false
    exportGGUF = try c.decodeIfPresent(String.self, forKey: .exportGGUF)
    if let whole = try? c.decodeIfPresent(Bool.self, forKey: .gradientCheckpointing) {  // run folders before the policies
      gradientCheckpointing = whole ? .input : nil
    } else {
      gradientCheckpointing = try c.decodeIfPresent(CheckpointPolicy.self, forKey: .gradientCheckpointing)
    }
    wholeRecomputedLayers = try c.decodeIfPresent(Int.self, forKey: .wholeRecomputedLayers) ?? 0
  }

  enum CodingKeys: String, CodingKey {
    case model, data, textColumn = "text_column", pairColumn = "text_pair_column", labelColumn = "label_column", epochs
    case batchSize = "batch_size", learningRate = "learning_rate", weightDecay = "weight_decay", warmupRatio = "warmup_ratio"
    case maxGradNorm = "max_grad_norm", gradientAccumulation = "gradient_accumulation_steps", maxLength = "max_length", seed, splitSeed = "split_seed"
    case devFraction = "dev_fraction", testFraction = "test_fraction", deduplicate, evalEvery = "eval_every", patience, metric
    case maxSteps = "max_steps", threads, distill, recordDynamics = "record_dynamics", dynamicsPass = "dynamics_pass"
    case trainSubset = "train_subset", method, sift, lora, selfDistill = "self_distill", batchSampler = "batch_sampler"
    case task, trainOn = "train_on", promptColumn = "prompt_column", completionColumn = "completion_column"
    case generationTokens = "generation_tokens", quantizedBase = "quantized_base", exportGGUF = "export_gguf"
    case gradientCheckpointing = "gradient_checkpointing", wholeRecomputedLayers = "whole_recomputed_layers"
  }
}
