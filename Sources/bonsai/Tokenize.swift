import ArgumentParser
import BonsaiData
import BonsaiTokenizers
import Foundation

struct Tokenize: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print the token ids of each stdin line as a JSON array.")

  @Option(name: .long, help: "A model name (minilm, mpnet), a model folder holding tokenizer.json, or the tokenizer.json file itself.")
  var model: String

  @Option(name: .long, help: "Truncate to this many tokens including special tokens (default: the model's limit).")
  var maxLength: Int?

  func validate() throws {
    if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2, got \(m)") }
  }

  func run() throws {
    try runReportingErrors {
      let tokenizer = try WordPieceTokenizer(contentsOf: try Assets.model(model))
      for line in try readLines() {
        let e = tokenizer.encode(line, maxLength: maxLength)
        emit("[" + e.ids.map(String.init).joined(separator: ",") + "]")
      }
    }
  }
}
