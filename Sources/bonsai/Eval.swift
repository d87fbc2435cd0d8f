// `bonsai eval`: a fine-tuned classifier's metrics on a labelled data set.
import ArgumentParser
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTraining
import Foundation

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Evaluate a fine-tuned classifier on a labelled data set, or a decoder on texts, completions or chats; metrics as JSON on stdout.")

  @Option(name: .long, help: "A fine-tuned model folder (a classifier with id2label in config.json, or a decoder), a decoder's GGUF file or smollm2.") var model: String
  @OptionGroup var dataOptions: DataOptions
  @Option(name: .long, help: "Truncate texts to this many tokens (default: the folder's model_max_length, the length it was trained at).")
  var maxLength: Int?
  @Option(name: .long, help: "Threads (default: all cores).") var threads: Int?
  @Option(name: .long, help: "Decoders: new tokens of the greedy generations ROUGE and exact match score (0: none).") var generationTokens = 32
  @Option(name: .long, help: "Rename data labels to the model's, e.g. negative=-1,positive=1; examples whose label is not named are left out (out-of-distribution sets).")
  var labelMap: String?

  func validate() throws {
    if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2, got \(m)") }
    if let m = labelMap, m.split(separator: ",").contains(where: { $0.split(separator: "=", omittingEmptySubsequences: false).count != 2 }) {
      throw ValidationError("--label-map must look like from=to,from=to, got '\(m)'")
    }
  }

  func run() throws {
    try runReportingErrors {
      if let t = threads { Engine.threads = t }
      let folder = try Assets.model(model)
      if DecoderCheckpoint.isDecoder(folder) { return try evaluateDecoder(folder) }
      guard let labels = ModelFolder.labels(folder) else {
        throw ValidationError("\(folder.appendingPathComponent("config.json").path): no id2label: not a classifier (fine-tune it first)")
      }
      var dataset = try Dataset.load(path: try Assets.data(dataOptions.data),
                                     columns: ColumnSpec(text: dataOptions.textColumn, pair: dataOptions.textPairColumn, label: dataOptions.labelColumn))
      var leftOut = 0
      if let m = labelMap {
        let map = Dictionary(m.split(separator: ",").map { p in let kv = p.split(separator: "=", omittingEmptySubsequences: false); return (String(kv[0]), String(kv[1])) },
                             uniquingKeysWith: { a, _ in a })
        for to in map.values where !labels.contains(to) { throw ValidationError("--label-map: '\(to)' is not one of the model's labels \(labels)") }
        let before = dataset.examples.count
        dataset.examples = dataset.examples.compactMap { e in map[e.label].map { var x = e; x.label = $0; return x } }
        leftOut = before - dataset.examples.count
        if dataset.examples.isEmpty { throw ValidationError("--label-map: no example of \(dataset.path) has a label named in the map") }
      }
      let ids = try dataset.labelIds(labels)
      let (clf, tokenizer, _) = try ModelFolder.loadClassifier(folder, numLabels: labels.count)
      let maxLength = self.maxLength ?? tokenizer.modelMaxLength
      let data = PreparedData(dataset: dataset, labels: labels, labelIds: ids, split: Split(train: [], dev: [], test: []),
                              encodings: dataset.examples.map { tokenizer.encode($0.text, pair: $0.pair, maxLength: maxLength) })
      let metrics = ClassificationTask.evaluate(clf, tokenizer: tokenizer, data: data, indices: Array(dataset.examples.indices))
      var obj = try JSONSerialization.jsonObject(with: JSONEncoder().encode(metrics)) as! [String: Any]
      if labelMap != nil { obj["left_out"] = leftOut }
      obj["max_length"] = maxLength
      emit(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
    }
  }

  /// A decoder: loss, perplexity and generation metrics on every example (the JSON of a run's test split).
  func evaluateDecoder(_ folder: URL) throws {
    let dataset = try LanguageDataset.load(path: try Assets.data(dataOptions.data),
                                           columns: LanguageColumns(text: dataOptions.textColumn, prompt: dataOptions.promptColumn, completion: dataOptions.completionColumn))
    let (lm, tokenizer) = try DecoderCheckpoint.load(folder, keepingBlocks: true)
    let maxLength = self.maxLength ?? min(tokenizer.modelMaxLength, 2048)
    let e = try LanguageModelTask.evaluate(lm, tokenizer: tokenizer, dataset: dataset, maxLength: maxLength, generationTokens: generationTokens, source: folder.path)
    var obj = try e.jsonObject() as! [String: Any]
    obj["max_length"] = maxLength
    emit(String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self))
  }
}
