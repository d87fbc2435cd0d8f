// Which parameters a run trains and how: full fine-tuning, the classifier head only, LoRA adapters, or
// SIFT's sparse components (shared/METHODS.md "SIFT"). The plan freezes the rest, builds the optimizers,
// exports the trained model (merged) with its delta, and accounts for memory.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import Foundation

/// SIFT options, saved in config.json.
public struct SIFTConfig: Codable, Sendable, Equatable {
  /// Fraction of each selected matrix that trains (k = int(rate * numel) + 1).
  public var rate = 0.01
  /// Batches whose |gradient| is summed to choose the indices (they make no update).
  public var voteBatches = 1
  /// Choose again from the current batch every N optimizer steps (0: never).
  public var reselectEvery = 0
  /// Substrings of the matrix keys that train sparsely (default: attention and feed-forward matrices).
  public var targets: [String]?
  public init() {}
  enum CodingKeys: String, CodingKey { case rate, voteBatches = "vote_batches", reselectEvery = "reselect_every", targets }
  public static let defaultTargets = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense",
                                      "attn.q", "attn.k", "attn.v", "attn.o"]
}

/// LoRA options, saved in config.json.
public struct LoRAConfig: Codable, Sendable, Equatable {
  public var rank = 8
  public var alpha: Float = 16
  /// Substrings of the Linear keys that get adapters (default: PEFT's for BERT and MPNet, query and value).
  public var targets: [String]?
  public init() {}
  public static let defaultTargets = ["query", "value", "attn.q", "attn.v"]
}

public enum MethodError: LocalizedError, Equatable {
  case unknownMethod(String)
  case badRate(Double)
  case noMatch(option: String, targets: [String])
  case deltaBaseMismatch(path: String, expected: String, actual: String)
  case deltaShape(path: String, key: String, reason: String)
  case notADelta(path: String)

  public var errorDescription: String? {
    switch self {
    case let .unknownMethod(m): return "--method must be full, head, sift or lora, got '\(m)'"
    case let .badRate(r): return "--sparsity must be in (0, 1], got \(r)"
    case let .noMatch(option, targets): return "\(option) \(targets.joined(separator: ",")) matches no parameter of the model"
    case let .deltaBaseMismatch(path, expected, actual):
      return "\(path): the delta was trained from a base whose model.safetensors has sha256 \(expected), this base has \(actual)"
    case let .deltaShape(path, key, reason): return "\(path): \(key): \(reason)"
    case let .notADelta(path): return "\(path): not a Bonsai delta (no __metadata__ kind sift or lora)"
    }
  }
}

/// The keys of the classifier head (trained densely by every method).
func isHead(_ key: String) -> Bool { key.hasPrefix("classifier") }

/// The trainable set of a run.
final class TrainingPlan {
  let method: String
  /// Densely trained parameters (AdamW).
  var dense: [(key: String, tensor: Tensor)] = []
  var sparse: SparseAdamW?
  /// LoRA adapters with the Linear they adapt and its key.
  var adapters: [(key: String, linear: Linear, lora: LoRA)] = []

  init(method: String, model: SequenceClassifier, config: TrainConfig) throws {
    self.method = method
    let all = model.namedParameters()
    switch method {
    case "full":
      dense = all
    case "head":
      dense = all.filter { isHead($0.key) }
    case "lora":
      let l = config.lora ?? LoRAConfig()
      let targets = l.targets ?? LoRAConfig.defaultTargets
      let rng = RandomSource(seed: config.seed &+ 41)
      for (key, linear) in model.namedLinears() where !isHead(key) && targets.contains(where: { key.hasSuffix($0) }) {
        let lora = LoRA(inFeatures: linear.weight.shape[1], outFeatures: linear.weight.shape[0], rank: l.rank, alpha: l.alpha, rng: rng)
        linear.adapter.lora = lora
        adapters.append((key, linear, lora))
      }
      guard !adapters.isEmpty else { throw MethodError.noMatch(option: "--lora-target", targets: targets) }
      dense = all.filter { isHead($0.key) } + adapterTensors
    case "sift":
      let s = config.sift ?? SIFTConfig()
      guard s.rate > 0 && s.rate <= 1 else { throw MethodError.badRate(s.rate) }
      let targets = s.targets ?? SIFTConfig.defaultTargets
      let matrices = all.filter { p in !isHead(p.key) && p.tensor.rank == 2 && p.key.hasSuffix(".weight") && !p.key.contains("embeddings")
        && targets.contains { p.key.contains($0) } }
      guard !matrices.isEmpty else { throw MethodError.noMatch(option: "--sparse-target", targets: targets) }
      sparse = SparseAdamW(matrices, rate: s.rate, learningRate: config.learningRate, weightDecay: config.weightDecay)
      dense = all.filter { isHead($0.key) }
    default:
      throw MethodError.unknownMethod(method)
    }
    // freeze everything that neither optimizer updates
    let trained = Set(dense.map { ObjectIdentifier($0.tensor) } + (sparse?.entries.map { ObjectIdentifier($0.weight) } ?? []))
    for (_, t) in all where !trained.contains(ObjectIdentifier(t)) { t.requiringGrad(false) }
  }

  var trainableCount: Int { dense.reduce(0) { $0 + $1.tensor.count } + (sparse?.trainableCount ?? 0) }
  var gradientBytes: Int { dense.reduce(0) { $0 + 4 * $1.tensor.count } + (sparse?.gradientBytes ?? 0) }
  var optimizerStateBytes: Int { dense.reduce(0) { $0 + 8 * $1.tensor.count } + (sparse?.stateBytes ?? 0) }

  /// LoRA-merged weights for export (empty for the other methods).
  func mergedWeights() -> [String: Tensor] {
    Dictionary(uniqueKeysWithValues: adapters.map { ($0.key + ".weight", $0.lora.merged(into: $0.linear.weight)) })
  }

  /// The adapters' tensors under PEFT-style keys (`KEY.lora_A.weight`, `KEY.lora_B.weight`).
  var adapterTensors: [(key: String, tensor: Tensor)] {
    adapters.flatMap { [($0.key + ".lora_A.weight", $0.lora.A), ($0.key + ".lora_B.weight", $0.lora.B)] }
  }

  /// Scales all gradients (the dense optimizer's and the sparse ones) to a global L2 norm of at most `maxNorm`.
  func clip(_ maxNorm: Float, dense optimizer: AdamW) {
    let total = optimizer.gradientSquaredNorm + (sparse?.gradientSquaredNorm ?? 0)
    let coef = maxNorm / (Float(total.squareRoot()) + 1e-6)
    guard coef < 1 else { return }
    optimizer.scaleGradients(coef)
    sparse?.scaleGradients(coef)
  }

  /// Writers of the files that go next to an exported model: the sparse delta or the LoRA adapters.
  func deltaFiles(model: SequenceClassifier, labels: [String], baseHash: String, maxLength: Int) throws -> [String: (URL) throws -> Void] {
    let meta = ["format": "pt", "kind": method, "base_sha256": baseHash, "labels": String(decoding: try JSONEncoder().encode(labels), as: UTF8.self),
                "max_length": "\(maxLength)"]
    let head = model.namedParameters().filter { isHead($0.key) }
    switch method {
    case "sift":
      guard let sparse else { return [:] }
      var floats = head, ints: [(key: String, values: [Int32])] = []
      for e in sparse.entries {
        let w = e.weight.data
        floats.append((e.key + ".values", Tensor(e.touched.map { w[Int($0)] }, shape: [e.touched.count])))
        ints.append((e.key + ".indices", e.touched))
      }
      var m = meta
      m["shapes"] = String(decoding: try JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: sparse.entries.map { ($0.key, $0.weight.shape) }), options: [.sortedKeys]), as: UTF8.self)
      return ["sift_delta.safetensors": { try writeSafeTensors(floats, int32: ints, to: $0.path, metadata: m) }]
    case "lora":
      var m = meta
      let l = adapters.first?.lora
      m["rank"] = "\(l?.rank ?? 0)"; m["alpha"] = "\(l?.alpha ?? 0)"
      let tensors = head + adapterTensors
      let cfg: [String: Any] = ["peft_type": "LORA", "r": l?.rank ?? 0, "lora_alpha": l?.alpha ?? 0, "target_modules": adapters.map(\.key),
                                "modules_to_save": ["classifier"], "bias": "none", "base_sha256": baseHash]
      let cfgData = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
      return ["adapter_model.safetensors": { try writeSafeTensors(tensors, to: $0.path, metadata: m) },
              "adapter_config.json": { try cfgData.write(to: $0) }]
    default:
      return [:]
    }
  }
}


public enum Delta {
  /// Adds a delta (`sift_delta.safetensors` or `adapter_model.safetensors`) onto a base model folder and
  /// writes the trained classifier to `output`, with the training length as its `model_max_length`. Refuses a base whose weights file differs from the one
  /// the delta was trained from, and any shape mismatch.
  public static func apply(base: URL, delta: URL, output: URL) throws {
    let file = try SafeTensorsFile(path: delta.path)
    guard let kind = file.metadata["kind"], ["sift", "lora"].contains(kind),
          let labelsJSON = file.metadata["labels"], let labels = try? JSONDecoder().decode([String].self, from: Data(labelsJSON.utf8)) else {
      throw MethodError.notADelta(path: delta.path)
    }
    let baseWeights = base.appendingPathComponent("model.safetensors")
    let hash = try Assets.sha256(baseWeights)
    if let want = file.metadata["base_sha256"], want != hash { throw MethodError.deltaBaseMismatch(path: delta.path, expected: want, actual: hash) }
    let (model, _, _) = try ModelFolder.loadClassifier(base, numLabels: labels.count)
    let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.key, $0.tensor) })
    var overrides: [String: Tensor] = [:]
    for key in file.keys where isHead(key) {
      guard let p = params[key] else { throw MethodError.deltaShape(path: delta.path, key: key, reason: "no such parameter in the base") }
      let t = try file.tensor(key)
      guard t.shape == p.shape else { throw MethodError.deltaShape(path: delta.path, key: key, reason: "shape \(t.shape), base has \(p.shape)") }
      p.mutableData.update(from: t.data, count: t.count)
    }
    if kind == "sift" {
      for key in file.keys where key.hasSuffix(".indices") {
        let name = String(key.dropLast(".indices".count))
        guard let p = params[name] else { throw MethodError.deltaShape(path: delta.path, key: name, reason: "no such parameter in the base") }
        let idx = try file.int32s(key), values = try file.tensor(name + ".values")
        guard idx.count == values.count, idx.allSatisfy({ $0 >= 0 && Int($0) < p.count }) else {
          throw MethodError.deltaShape(path: delta.path, key: name, reason: "indices outside a matrix of shape \(p.shape)")
        }
        let w = p.mutableData, v = values.data
        for (j, i) in idx.enumerated() { w[Int(i)] = v[j] }
      }
    } else {
      let rank = Int(file.metadata["rank"] ?? "") ?? 0, alpha = Float(file.metadata["alpha"] ?? "") ?? 0
      let linears = Dictionary(uniqueKeysWithValues: model.namedLinears().map { ($0.key, $0.linear) })
      for key in file.keys where key.hasSuffix(".lora_A.weight") {
        let name = String(key.dropLast(".lora_A.weight".count))
        guard let linear = linears[name] else { throw MethodError.deltaShape(path: delta.path, key: name, reason: "no such layer in the base") }
        let lora = LoRA(inFeatures: linear.weight.shape[1], outFeatures: linear.weight.shape[0], rank: rank, alpha: alpha, rng: RandomSource(seed: 0))
        let a = try file.tensor(key), b = try file.tensor(name + ".lora_B.weight")
        guard a.shape == lora.A.shape, b.shape == lora.B.shape else {
          throw MethodError.deltaShape(path: delta.path, key: name, reason: "adapter shapes \(a.shape), \(b.shape) do not fit a \(linear.weight.shape) weight at rank \(rank)")
        }
        lora.A.mutableData.update(from: a.data, count: a.count); lora.B.mutableData.update(from: b.data, count: b.count)
        overrides[name + ".weight"] = lora.merged(into: linear.weight)
      }
    }
    try ModelFolder.save(model, labels: labels, source: base, to: output, overrides: overrides, maxLength: file.metadata["max_length"].flatMap { Int($0) })
  }
}
