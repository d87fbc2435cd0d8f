// Deltas: a SIFT run's sparse components or a LoRA run's adapters, written beside an exported model,
// added back onto their base by `bonsai apply-delta`.
import BonsaiCheckpoint
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import Foundation

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
    for key in file.keys where ClassificationTask.isHead(key) {
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
        let lora = LoRA(inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: rank, alpha: alpha, rng: RandomSource(seed: 0))
        let a = try file.tensor(key), b = try file.tensor(name + ".lora_B.weight")
        guard a.shape == lora.A.shape, b.shape == lora.B.shape else {
          throw MethodError.deltaShape(path: delta.path, key: name, reason: "adapter shapes \(a.shape), \(b.shape) do not fit a [\(linear.outFeatures), \(linear.inFeatures)] weight at rank \(rank)")
        }
        lora.A.mutableData.update(from: a.data, count: a.count); lora.B.mutableData.update(from: b.data, count: b.count)
        overrides[name + ".weight"] = lora.merged(into: linear.weight)
      }
    }
    try ModelFolder.save(model, labels: labels, source: base, to: output, overrides: overrides, maxLength: file.metadata["max_length"].flatMap { Int($0) })
  }
}
