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
    try SafeTensorsFile(path: folder.appendingPathComponent("model.safetensors").path)
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
