// A first slice of `bonsai finetune` (issue 4 builds the full workflow): a headerless or headed
// `label,text` CSV, a seeded 80/20 split, AdamW with linear decay, test accuracy at the end.
import ArgumentParser
import BonsaiEngine
import BonsaiModels
import BonsaiNN
import Foundation

struct Finetune: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Fine-tune a classifier on a label,text CSV and print test accuracy.")

  @OptionGroup var options: ModelOptions

  @Option(name: .long, help: "CSV file with the label in the first column and the text in the second.")
  var data: String

  @Option(name: .long, help: "Passes over the training split.")
  var epochs = 1

  @Option(name: .long, help: "Examples per step.")
  var batchSize = 32

  @Option(name: .long, help: "Peak learning rate of AdamW (linear decay to 0).")
  var learningRate: Float = 5e-5

  @Option(name: .long, help: "Seed for the split, the head and dropout.")
  var seed: UInt64 = 42

  @Option(name: .long, help: "Write the fine-tuned model here as a Hugging Face folder.")
  var output: String?

  @Option(name: .long, help: "Stop after this many optimizer steps (for smoke tests).")
  var maxSteps: Int?

  func validate() throws {
    if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") }
    if epochs < 1 { throw ValidationError("--epochs must be at least 1, got \(epochs)") }
  }

  func run() throws {
    try runReportingErrors {
      if let t = options.threads { Engine.threads = t }
      let rows = try readLabelTextCSV(data)
      let labels = Array(Set(rows.map(\.label))).sorted()
      let labelId = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
      var order = Array(rows.indices)
      var state = seed
      for i in stride(from: order.count - 1, to: 0, by: -1) { state = mix64(state); order.swapAt(i, Int(state % UInt64(i + 1))) }
      let nTest = rows.count / 5
      let test = Array(order.prefix(nTest)), train = Array(order.dropFirst(nTest))
      let (model, tokenizer, _) = try ModelFolder.loadClassifier(options.folder, numLabels: labels.count, seed: seed)
      let maxLength = options.maxLength ?? 64
      let encodings = rows.map { tokenizer.encode($0.text, maxLength: maxLength) }
      let params = model.namedParameters()
      let opt = AdamW(params, learningRate: learningRate, weightDecay: 0.01)
      let rng = RandomSource(seed: seed)
      let stepsPerEpoch = (train.count + batchSize - 1) / batchSize
      let total = min(stepsPerEpoch * epochs, maxSteps ?? Int.max)
      var step = 0
      let start = Date()
      for epoch in 1...epochs {
        var shuffled = train
        for i in stride(from: shuffled.count - 1, to: 0, by: -1) { state = mix64(state); shuffled.swapAt(i, Int(state % UInt64(i + 1))) }
        for b in stride(from: 0, to: shuffled.count, by: batchSize) where step < total {
          let idx = Array(shuffled[b..<min(b + batchSize, shuffled.count)])
          let batch = TokenBatch(idx.map { encodings[$0] }, tokenizer: tokenizer)
          Tensor.zeroGrad(params.map(\.tensor))
          let loss = Tensor.crossEntropy(logits: model(batch, rng: rng), labels: idx.map { labelId[rows[$0].label]! })
          guard loss.item.isFinite else { throw ValidationError("loss became \(loss.item) at step \(step + 1): lower --learning-rate") }
          loss.backward()
          opt.learningRate = learningRate * Float(total - step) / Float(total)
          opt.update()
          step += 1
          if step % 10 == 0 || step == total {
            let elapsed = Date().timeIntervalSince(start)
            FileHandle.standardError.write(String(format: "epoch %d step %d/%d loss %.4f  %.1f s, ETA %.0f s\n", epoch, step, total,
                                                  loss.item, elapsed, elapsed / Double(step) * Double(total - step)).data(using: .utf8)!)
          }
        }
      }
      var correct = 0
      for b in stride(from: 0, to: test.count, by: 64) {
        let idx = Array(test[b..<min(b + 64, test.count)])
        let batch = TokenBatch(idx.map { encodings[$0] }, tokenizer: tokenizer)
        let logits = withoutGrad { model(batch, rng: nil) }
        for (r, i) in idx.enumerated() {
          let row = Array(logits.scalars[(r * labels.count)..<((r + 1) * labels.count)])
          if row.firstIndex(of: row.max()!)! == labelId[rows[i].label]! { correct += 1 }
        }
      }
      if let output { try ModelFolder.save(model, labels: labels, source: options.folder, to: URL(fileURLWithPath: output)) }
      emit(String(format: "{\"test_accuracy\": %.4f, \"test_examples\": %d, \"train_examples\": %d, \"labels\": %@}",
                  Double(correct) / Double(max(test.count, 1)), test.count, train.count,
                  "[" + labels.map { "\"\($0)\"" }.joined(separator: ",") + "]"))
    }
  }
}

/// Reads `label,text` rows (RFC 4180 quoting, optional UTF-8 BOM, optional `label,text` header).
func readLabelTextCSV(_ path: String) throws -> [(label: String, text: String)] {
  guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("\(path): file not found") }
  guard let text = String(data: data, encoding: .utf8) else { throw ValidationError("\(path): not valid UTF-8") }
  var s = Array(text.unicodeScalars)
  if s.first == "\u{FEFF}" { s.removeFirst() }
  // rows with the file line each starts on (quoted fields may span lines)
  var rows: [(line: Int, fields: [String])] = [], row: [String] = [], field = String.UnicodeScalarView(), quoted = false, i = 0
  var line = 1, rowLine = 1
  while i < s.count {
    let c = s[i]
    if c == "\n" { line += 1 }
    if quoted {
      if c == "\"" { if i + 1 < s.count && s[i + 1] == "\"" { field.append("\""); i += 1 } else { quoted = false } } else { field.append(c) }
    } else if c == "\"" { quoted = true } else if c == "," { row.append(String(field)); field = .init() } else if c == "\n" || c == "\r" {
      if c == "\r" && i + 1 < s.count && s[i + 1] == "\n" { i += 1; line += 1 }
      row.append(String(field)); field = .init(); rows.append((rowLine, row)); row = []
      rowLine = line
    } else { field.append(c) }
    i += 1
  }
  if !field.isEmpty || !row.isEmpty { row.append(String(field)); rows.append((rowLine, row)) }
  if quoted { throw ValidationError("\(path): line \(rowLine): unterminated quoted field") }
  if let first = rows.first, first.fields.count >= 2, first.fields[0].lowercased() == "label" { rows.removeFirst() }
  var out: [(String, String)] = []
  for (n, r) in rows where !(r.count == 1 && r[0].isEmpty) {
    guard r.count >= 2 else { throw ValidationError("\(path): line \(n): \(r.count) column(s), want label,text") }
    guard !r[1].trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { throw ValidationError("\(path): line \(n): empty text") }
    out.append((r[0], r[1]))
  }
  guard !out.isEmpty else { throw ValidationError("\(path): no rows") }
  return out
}
