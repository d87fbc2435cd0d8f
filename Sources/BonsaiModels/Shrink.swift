// Shrink and Fine-Tune's student initialisation (Shleifer & Rush 2020; transformers'
// seq2seq-distillation make_student.py): copy the embeddings, a chosen subset of layers in order, the
// final norms and the head of a teacher into a shallower model of the same architecture. Works on the
// checkpoint keys (`encoder.layer.N.` for BERT/MPNet, `model.layers.N.` for decoder stacks), so any
// architecture whose layers are numbered that way shrinks the same way.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import Foundation

public enum ShrinkError: LocalizedError, Equatable {
  case layerOutOfRange(Int, layers: Int)
  case notIncreasing([Int])
  case badCount(Int, layers: Int)
  case noLayers(path: String)

  public var errorDescription: String? {
    switch self {
    case let .layerOutOfRange(i, n): return "--layers: index \(i) is outside the teacher's layers 0...\(n - 1)"
    case let .notIncreasing(l): return "--layers: indices must be strictly increasing without repeats, got \(l.map(String.init).joined(separator: ","))"
    case let .badCount(k, n): return "--num-layers: \(k) is not between 1 and the teacher's \(n) layers"
    case let .noLayers(path): return "\(path): no numbered layers (encoder.layer.N. or model.layers.N.) in the checkpoint"
    }
  }
}

public enum Shrink {
  /// The layers a student of `k` layers copies from a teacher of `n`: the paper's table where it has an
  /// entry (first and last layer kept), else evenly spread with the first and last kept.
  public static func defaultLayers(teacher n: Int, student k: Int) -> [Int] {
    let table: [Int: [Int: [Int]]] = [
      12: [1: [0], 2: [0, 6], 3: [0, 6, 11], 4: [0, 4, 8, 11], 6: [0, 2, 4, 7, 9, 11], 9: [0, 1, 2, 4, 5, 7, 9, 10, 11], 12: Array(0..<12)],
      6: [1: [0], 2: [0, 5], 3: [0, 2, 5], 4: [0, 1, 3, 5], 6: Array(0..<6)],
      16: [3: [0, 8, 15], 4: [0, 5, 10, 15], 6: [0, 3, 6, 9, 12, 15], 16: Array(0..<16)],
    ]
    if let l = table[n]?[k] { return l }
    if k == 1 { return [0] }
    return (0..<k).map { Int((Double($0) * Double(n - 1) / Double(k - 1)).rounded()) }
  }

  /// Checks a layer choice against a teacher depth.
  public static func validate(_ layers: [Int], teacherLayers n: Int) throws {
    for i in layers where i < 0 || i >= n { throw ShrinkError.layerOutOfRange(i, layers: n) }
    guard !layers.isEmpty, zip(layers, layers.dropFirst()).allSatisfy({ $0 < $1 }) else { throw ShrinkError.notIncreasing(layers) }
  }

  /// The layer number in a checkpoint key and the text around it, for `encoder.layer.N.` / `layers.N.` keys.
  static func splitLayerKey(_ key: String) -> (prefix: String, index: Int, rest: String)? {
    for marker in ["encoder.layer.", "model.layers.", "layers."] {
      guard let r = key.range(of: marker) else { continue }
      let tail = key[r.upperBound...]
      guard let dot = tail.firstIndex(of: "."), let i = Int(tail[..<dot]) else { continue }
      return (String(key[..<r.upperBound]), i, String(tail[dot...]))
    }
    return nil
  }

  /// Number of numbered layers in a checkpoint.
  public static func layerCount(_ file: SafeTensorsFile) throws -> Int {
    let indices = file.tensors.keys.compactMap { splitLayerKey($0)?.index }
    guard let m = indices.max() else { throw ShrinkError.noLayers(path: file.path) }
    return m + 1
  }

  /// Writes the student folder: the teacher's config with the new depth and `init_metadata`, its
  /// tokenizer files, and the copied tensors (bit-equal for F32 checkpoints).
  public static func makeStudent(teacher: URL, layers: [Int], output: URL, randomInit: Bool = false, seed: UInt64 = 0) throws {
    let fm = FileManager.default
    let file = try SafeTensorsFile(folder: teacher)
    let n = try layerCount(file)
    try validate(layers, teacherLayers: n)
    let configURL = teacher.appendingPathComponent("config.json")
    guard let data = fm.contents(atPath: configURL.path),
          var config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw CheckpointError.unreadable(path: configURL.path, reason: "cannot read config.json")
    }
    let newIndex = Dictionary(uniqueKeysWithValues: layers.enumerated().map { ($1, $0) })
    var tensors: [(key: String, tensor: Tensor)] = []
    for key in file.tensors.keys.sorted() {
      guard ["F32", "F16", "BF16"].contains(file.tensors[key]!.dtype) else { continue }  // integer buffers (position_ids)
      if let (prefix, i, rest) = splitLayerKey(key) {
        guard let j = newIndex[i] else { continue }
        tensors.append((prefix + "\(j)" + rest, try file.tensor(key)))
      } else {
        tensors.append((key, try file.tensor(key)))
      }
    }
    let depthKey = config["num_hidden_layers"] != nil ? "num_hidden_layers" : "n_layer"
    config[depthKey] = layers.count
    config["init_metadata"] = ["teacher": teacher.path, "teacher_layers": n, "copied_layers": layers]
    if randomInit {
      // the baseline that shows what copying buys: same shapes, transformers' initialisation
      ParameterInit.initialize(tensors, std: Float(config["initializer_range"] as? Double ?? 0.02), rng: RandomSource(seed: seed))
      config["init_metadata"] = ["teacher": teacher.path, "random_init": true, "seed": seed]
    }
    try writeStudentFolder(config: try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]), tensors: tensors,
                           tokenizerFrom: teacher, to: output)
  }
}

/// A new model folder swapped in atomically: config.json, model.safetensors (with `metadata`) and the tokenizer
/// files of `source` (a shrunk student's teacher, a random student's model it is like).
func writeStudentFolder(config: Data, tensors: [(key: String, tensor: Tensor)], metadata: [String: String] = ["format": "pt"], tokenizerFrom source: URL,
                        to output: URL) throws {
  let fm = FileManager.default
  let tmp = output.deletingLastPathComponent().appendingPathComponent(".\(output.lastPathComponent).tmp-\(getpid())")
  try? fm.removeItem(at: tmp)
  try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
  try config.write(to: tmp.appendingPathComponent("config.json"))
  try writeSafeTensors(tensors, to: tmp.appendingPathComponent("model.safetensors").path, metadata: metadata)
  for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"] {
    let src = source.appendingPathComponent(name)
    if fm.fileExists(atPath: src.path) { try fm.copyItem(at: src, to: tmp.appendingPathComponent(name)) }
  }
  try? fm.removeItem(at: output)
  try fm.createDirectory(at: output.deletingLastPathComponent(), withIntermediateDirectories: true)
  try fm.moveItem(at: tmp, to: output)
}
