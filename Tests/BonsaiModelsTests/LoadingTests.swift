// Strict loading: missing, unexpected and mis-shaped keys, unsupported configs, missing folders.
import BonsaiCheckpoint
import BonsaiEngine
import BonsaiModels
import Foundation
import XCTest

final class LoadingTests: XCTestCase {
  func tinyFolder(_ mutate: (inout [String: Tensor]) -> Void = { _ in }, config: [String: Any]? = nil) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bonsai-load-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let cfg: [String: Any] = config ?? ["model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 64, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
      "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
      "layer_norm_eps": 1e-12]
    try JSONSerialization.data(withJSONObject: cfg).write(to: dir.appendingPathComponent("config.json"))
    let src = try modelFolder("minilm").appendingPathComponent("tokenizer.json")
    try FileManager.default.copyItem(at: src, to: dir.appendingPathComponent("tokenizer.json"))
    if cfg["model_type"] as? String == "bert" {
      let model = BertModel(config: try JSONDecoder().decode(BertConfig.self, from: JSONSerialization.data(withJSONObject: cfg)), addPoolingLayer: true, seed: 3)
      var params = model.parameterDictionary()
      mutate(&params)
      try writeSafeTensors(params.map { ($0.key, $0.value) }, to: dir.appendingPathComponent("model.safetensors").path)
    }
    return dir
  }

  func testBaseCheckpointLoadsIntoClassifierWithFreshHead() throws {
    let dir = try tinyFolder()
    let (clf, _, report) = try ModelFolder.loadClassifier(dir, numLabels: 4)
    XCTAssertEqual(report.initialisedFresh, ["classifier.weight", "classifier.bias"])
    XCTAssertEqual(clf.numLabels, 4)
    // and a task checkpoint written from it loads back with its head
    let params = clf.namedParameters()
    try writeSafeTensors(params, to: dir.appendingPathComponent("model.safetensors").path)
    let (again, _, report2) = try ModelFolder.loadClassifier(dir, numLabels: 4)
    XCTAssertTrue(report2.initialisedFresh.isEmpty)
    XCTAssertEqual(again.parameterDictionary()["classifier.weight"]!.scalars, clf.parameterDictionary()["classifier.weight"]!.scalars)
    let encoderOnly = try ModelFolder.loadEncoder(dir)
    XCTAssertEqual(encoderOnly.encoder.parameterDictionary()["embeddings.word_embeddings.weight"]!.scalars.prefix(5),
                   clf.parameterDictionary()["bert.embeddings.word_embeddings.weight"]!.scalars.prefix(5))
  }

  func testMissingUnexpectedAndMisshapedKeys() throws {
    let missing = try tinyFolder { $0["encoder.layer.1.output.dense.weight"] = nil }
    XCTAssertThrowsError(try ModelFolder.loadEncoder(missing)) { e in
      XCTAssertTrue(e.localizedDescription.contains("encoder.layer.1.output.dense.weight"), e.localizedDescription)
      XCTAssertTrue(e.localizedDescription.contains("model.safetensors"))
    }
    let unexpected = try tinyFolder { $0["encoder.layer.2.output.dense.weight"] = Tensor(zeros: [2]) }
    XCTAssertThrowsError(try ModelFolder.loadEncoder(unexpected)) { e in
      XCTAssertEqual(e as? CheckpointError, .unexpectedKey(path: unexpected.appendingPathComponent("model.safetensors").path, key: "encoder.layer.2.output.dense.weight"))
    }
    let shaped = try tinyFolder { $0["pooler.dense.bias"] = Tensor(zeros: [7]) }
    XCTAssertThrowsError(try ModelFolder.loadClassifier(shaped, numLabels: 2)) { e in
      XCTAssertEqual(e as? CheckpointError, .shapeMismatch(path: shaped.appendingPathComponent("model.safetensors").path, key: "pooler.dense.bias", expected: [32], actual: [7]))
    }
  }

  func testUnsupportedArchitectureAndMissingFolder() throws {
    let dir = try tinyFolder(config: ["model_type": "llama", "vocab_size": 10])
    XCTAssertThrowsError(try ModelFolder.loadEncoder(dir)) { e in
      XCTAssertTrue(e.localizedDescription.contains("config.json") && e.localizedDescription.contains("llama"), e.localizedDescription)
    }
    XCTAssertThrowsError(try ModelFolder.loadEncoder(URL(fileURLWithPath: "/nonexistent/model"))) { e in
      XCTAssertTrue(e.localizedDescription.contains("/nonexistent/model"))
    }
  }
}
