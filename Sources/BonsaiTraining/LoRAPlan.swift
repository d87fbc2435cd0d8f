// LoRA (Hu et al. 2021; PEFT's LoraLayer) as a parameter plan: adapters on the chosen Linears and the
// classifier head train, the base is frozen; exports merge the adapters and write PEFT-style files.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

/// LoRA options, saved in config.json.
public struct LoRAConfig: Codable, Sendable, Equatable {
  public var rank = 8
  public var alpha: Float = 16
  /// Substrings of the Linear keys that get adapters (default: PEFT's for BERT and MPNet, query and value).
  public var targets: [String]?
  public init() {}
  public static let defaultTargets = ["query", "value", "attn.q", "attn.v"]
  /// For decoders: every attention and MLP projection (as QLoRA and most decoder recipes adapt).
  public static let decoderTargets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
}

final class LoRAPlan: ParameterPlan {
  /// The adapters with the Linear they adapt and its key.
  let adapters: [(key: String, linear: Linear, lora: LoRA)]

  init(task: TrainingTask, extra: [(key: String, tensor: Tensor)], config: TrainConfig, modelFolder: URL) throws {
    let l = config.lora ?? LoRAConfig()
    let targets = l.targets ?? (task is LanguageModelTask ? LoRAConfig.decoderTargets : LoRAConfig.defaultTargets)
    let rng = RandomSource(seed: config.seed &+ 41)
    var adapters: [(key: String, linear: Linear, lora: LoRA)] = []
    for (key, linear) in task.model.namedLinears() where !task.isHead(key) && targets.contains(where: { key.hasSuffix($0) }) {
      let lora = LoRA(inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: l.rank, alpha: l.alpha, rng: rng)
      linear.adapter.lora = lora
      adapters.append((key, linear, lora))
    }
    guard !adapters.isEmpty else { throw MethodError.noMatch(option: "--lora-target", targets: targets) }
    self.adapters = adapters
    try super.init(method: "lora", task: task, trained: task.model.namedParameters().filter { task.isHead($0.key) } + LoRAPlan.tensors(adapters),
                   extra: extra, config: config, modelFolder: modelFolder)
  }

  /// The adapters' tensors under PEFT-style keys (`KEY.lora_A.weight`, `KEY.lora_B.weight`).
  static func tensors(_ adapters: [(key: String, linear: Linear, lora: LoRA)]) -> [(key: String, tensor: Tensor)] {
    adapters.flatMap { [($0.key + ".lora_A.weight", $0.lora.A), ($0.key + ".lora_B.weight", $0.lora.B)] }
  }
  var adapterTensors: [(key: String, tensor: Tensor)] { LoRAPlan.tensors(adapters) }

  override func mergedWeightMakers() -> [String: () -> Tensor] {
    Dictionary(uniqueKeysWithValues: adapters.map { a in (a.key + ".weight", { a.lora.merged(into: a.linear.packedWeight?.dequantized() ?? a.linear.weight) }) })
  }

  /// PEFT's adapter folder for a model without a new head: adapter_config.json and adapter_model.safetensors
  /// with keys `base_model.model.KEY.lora_A.weight`, as `PeftModel.from_pretrained(base, folder)` reads them.
  func writePEFTAdapter(to folder: URL, taskType: String) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let l = adapters.first?.lora
    let modules = Array(Set(adapters.map { String($0.key.split(separator: ".").last!) })).sorted()
    let cfg: [String: Any] = ["peft_type": "LORA", "task_type": taskType, "r": l?.rank ?? 0, "lora_alpha": l?.alpha ?? 0, "lora_dropout": 0.0,
                              "target_modules": modules, "bias": "none", "fan_in_fan_out": false, "inference_mode": true,
                              "base_model_name_or_path": NSNull(), "base_sha256": baseHash]
    try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys]).write(to: folder.appendingPathComponent("adapter_config.json"))
    try writeSafeTensors(adapterTensors.map { (key: "base_model.model." + $0.key, tensor: $0.tensor) },
                         to: folder.appendingPathComponent("adapter_model.safetensors").path, metadata: ["format": "pt"])
  }

  /// adapter_model.safetensors (head + adapters) and adapter_config.json, as PEFT writes them.
  override func deltaFiles(metadata: [String: String]) throws -> [String: (URL) throws -> Void] {
    var m = deltaMetadata(metadata)
    let l = adapters.first?.lora
    m["rank"] = "\(l?.rank ?? 0)"; m["alpha"] = "\(l?.alpha ?? 0)"
    let tensors = task.model.namedParameters().filter { task.isHead($0.key) } + adapterTensors
    let cfg: [String: Any] = ["peft_type": "LORA", "r": l?.rank ?? 0, "lora_alpha": l?.alpha ?? 0, "target_modules": adapters.map(\.key),
                              "modules_to_save": ["classifier"], "bias": "none", "base_sha256": baseHash]
    let cfgData = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
    return ["adapter_model.safetensors": { try writeSafeTensors(tensors, to: $0.path, metadata: m) },
            "adapter_config.json": { try cfgData.write(to: $0) }]
  }

  override func saveState(to checkpoint: CheckpointWriter) throws {
    try super.saveState(to: checkpoint)
    try checkpoint.write("adapters", tensors: adapterTensors)
  }

  override func restoreState(from checkpoint: CheckpointReader) throws {
    try super.restoreState(from: checkpoint)
    let file = try checkpoint.tensors("adapters")
    for (key, t) in adapterTensors { try file.read(key, into: t) }
  }
}
