// A Hugging Face model folder: config.json + model.safetensors + tokenizer.json, dispatched on model_type.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiNN
import BonsaiTokenizers
import Foundation

/// A loaded encoder with its tokenizer.
public struct LoadedEncoder {
  public let encoder: Encoder
  public let tokenizer: WordPieceTokenizer
  public let folder: URL
}

/// Architectures Bonsai can load.
public enum ModelFolder {
  /// `model_type` from config.json, with clear errors for a missing folder or file.
  public static func modelType(_ folder: URL) throws -> String {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
      throw CheckpointError.unreadable(path: folder.path, reason: "model folder not found")
    }
    struct Probe: Decodable { let model_type: String? }
    let probe = try readConfig(Probe.self, folder: folder)
    guard let t = probe.model_type else {
      throw CheckpointError.unsupportedConfig(path: folder.appendingPathComponent("config.json").path, key: "model_type", value: "missing")
    }
    return t
  }

  static func weights(_ folder: URL) throws -> SafeTensorsFile {
    try SafeTensorsFile(folder: folder)
  }

  static func tokenizer(_ folder: URL) throws -> WordPieceTokenizer {
    try WordPieceTokenizer(contentsOf: folder.appendingPathComponent("tokenizer.json"))
  }

  /// The base encoder of a BERT or MPNet folder, with its weights and tokenizer.
  public static func loadEncoder(_ folder: URL) throws -> LoadedEncoder {
    let configPath = folder.appendingPathComponent("config.json").path
    let type = try modelType(folder)
    let tokenizer = try tokenizer(folder)
    switch type {
    case "bert":
      let c = try readConfig(BertConfig.self, folder: folder)
      try c.validate(path: configPath)
      let m = ParameterInit.deferred { BertModel(config: c, addPoolingLayer: false) }
      _ = try m.load(from: weights(folder))
      tokenizer.modelMaxLength = min(tokenizer.modelMaxLength, m.maxTokens)
      return LoadedEncoder(encoder: m, tokenizer: tokenizer, folder: folder)
    case "mpnet":
      let c = try readConfig(MPNetConfig.self, folder: folder)
      try c.validate(path: configPath)
      let m = ParameterInit.deferred { MPNetModel(config: c) }
      _ = try m.load(from: weights(folder))
      tokenizer.modelMaxLength = min(tokenizer.modelMaxLength, m.maxTokens)
      return LoadedEncoder(encoder: m, tokenizer: tokenizer, folder: folder)
    default:
      throw CheckpointError.unsupportedConfig(path: configPath, key: "model_type", value: type)
    }
  }

  /// A sequence classifier from a BERT or MPNet folder; the head is new when the checkpoint has none.
  public static func loadClassifier(_ folder: URL, numLabels: Int, seed: UInt64 = 0) throws -> (SequenceClassifier, WordPieceTokenizer, LoadReport) {
    let configPath = folder.appendingPathComponent("config.json").path
    let type = try modelType(folder)
    let tokenizer = try tokenizer(folder)
    let model: SequenceClassifier
    var std: Float = 0.02
    switch type {
    case "bert":
      let c = try readConfig(BertConfig.self, folder: folder)
      try c.validate(path: configPath)
      model = ParameterInit.deferred { BertForSequenceClassification(config: c, numLabels: numLabels, seed: seed) }
      std = c.initializerRange
    case "mpnet":
      let c = try readConfig(MPNetConfig.self, folder: folder)
      try c.validate(path: configPath)
      model = ParameterInit.deferred { MPNetForSequenceClassification(config: c, numLabels: numLabels, seed: seed) }
      std = c.initializerRange
    default:
      throw CheckpointError.unsupportedConfig(path: configPath, key: "model_type", value: type)
    }
    let report = try model.load(from: weights(folder))
    let fresh = Set(report.initialisedFresh)
    ParameterInit.initialize(model.namedParameters().filter { fresh.contains($0.key) }, std: std, rng: RandomSource(seed: seed &+ 1))
    tokenizer.modelMaxLength = min(tokenizer.modelMaxLength, model.encoderModel.maxTokens)
    return (model, tokenizer, report)
  }
}

extension ModelFolder {
  /// Writes a classifier as a Hugging Face folder that transformers loads: config.json (with
  /// `architectures`, `id2label`, `label2id`), model.safetensors (keys as transformers' state dict) and
  /// the tokenizer files copied from `source`. Written to a temporary folder first, then renamed into place.
  /// `overrides` replaces tensors by key (e.g. LoRA-merged weights) without touching the model;
  /// `extraFiles` writes more files (by name, each given its path) into the folder before it is renamed into place.
  /// `maxLength`, when given, is recorded as tokenizer_config.json's `model_max_length` (the length the model
  /// was trained at), which transformers' tokenizer and Bonsai's `eval`, `predict` and `embed` then default to.
  public static func save(_ model: SequenceClassifier, labels: [String], source: URL, to destination: URL,
                          overrides: [String: Tensor] = [:], extraFiles: [String: (URL) throws -> Void] = [:], maxLength: Int? = nil) throws {
    let fm = FileManager.default
    let tmp = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).tmp-\(getpid())")
    try? fm.removeItem(at: tmp)
    try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
    try write(model, labels: labels, source: source, into: tmp, overrides: overrides, extraFiles: extraFiles, maxLength: maxLength)
    if fm.fileExists(atPath: destination.path) {
      let old = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).old-\(getpid())")
      try fm.moveItem(at: destination, to: old)
      try fm.moveItem(at: tmp, to: destination)
      try? fm.removeItem(at: old)
    } else {
      try fm.moveItem(at: tmp, to: destination)
    }
  }

  /// The files of `save` written into an existing folder, in place (for a folder that is itself
  /// assembled and then renamed into place, such as a training checkpoint).
  public static func write(_ model: SequenceClassifier, labels: [String], source: URL, into tmp: URL,
                           overrides: [String: Tensor] = [:], extraFiles: [String: (URL) throws -> Void] = [:], maxLength: Int? = nil) throws {
    let fm = FileManager.default
    let configURL = source.appendingPathComponent("config.json")
    guard let data = fm.contents(atPath: configURL.path),
          var config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
      throw CheckpointError.unreadable(path: configURL.path, reason: "cannot read config.json")
    }
    let type = config["model_type"] as? String ?? ""
    config["architectures"] = [type == "mpnet" ? "MPNetForSequenceClassification" : "BertForSequenceClassification"]
    config["id2label"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { (String($0.offset), $0.element) })
    config["label2id"] = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($0.element, $0.offset) })
    config["problem_type"] = "single_label_classification"
    try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: tmp.appendingPathComponent("config.json"))
    try writeSafeTensors(model.namedParameters().map { ($0.key, overrides[$0.key] ?? $0.tensor) }, to: tmp.appendingPathComponent("model.safetensors").path)
    for (name, write) in extraFiles { try write(tmp.appendingPathComponent(name)) }
    for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"] {
      let src = source.appendingPathComponent(name)
      if fm.fileExists(atPath: src.path) { try fm.copyItem(at: src, to: tmp.appendingPathComponent(name)) }
    }
    if let maxLength { try recordMaxLength(maxLength, in: tmp.appendingPathComponent("tokenizer_config.json")) }
  }

  /// Sets `model_max_length` in a tokenizer_config.json (created when missing), keeping its other keys.
  static func recordMaxLength(_ maxLength: Int, in file: URL) throws {
    var config: [String: Any] = [:]
    if let data = FileManager.default.contents(atPath: file.path) {
      guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
        throw CheckpointError.unreadable(path: file.path, reason: "not a JSON object")
      }
      config = obj
    }
    config["model_max_length"] = maxLength
    try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]).write(to: file)
  }

  /// Label names of a saved classifier (config.json's id2label, in id order), or nil for a base model.
  public static func labels(_ folder: URL) -> [String]? {
    guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent("config.json").path),
          let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
          let id2label = config["id2label"] as? [String: String] else { return nil }
    let pairs = id2label.compactMap { k, v in Int(k).map { ($0, v) } }.sorted { $0.0 < $1.0 }
    guard pairs.map(\.0) == Array(0..<pairs.count) else { return nil }
    return pairs.map(\.1)
  }
}
