import ArgumentParser
import BonsaiData
import BonsaiModels
import BonsaiTokenizers
import Foundation

struct Tokenize: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Print the token ids of each stdin line as a JSON array.")

  @Option(name: .long, help: "A model name (minilm, mpnet, smollm2), a model folder holding tokenizer.json, the tokenizer.json file itself, or a .gguf file.")
  var model: String

  @Option(name: .long, help: "Truncate to this many tokens including special tokens (default: the model's limit).")
  var maxLength: Int?

  func validate() throws {
    if let m = maxLength, m < 2 { throw ValidationError("--max-length must be at least 2, got \(m)") }
  }

  func run() throws {
    try runReportingErrors {
      let url = try Assets.model(model)
      if DecoderCheckpoint.isDecoder(url) {  // byte-level BPE: special tokens only where the tokenizer adds them
        let tokenizer = try DecoderCheckpoint.tokenizer(url)
        for line in try readLines() {
          let ids = tokenizer.encode(line)
          emit("[" + (maxLength.map { Array(ids.prefix($0)) } ?? ids).map(String.init).joined(separator: ",") + "]")
        }
        return
      }
      let tokenizer = try WordPieceTokenizer(contentsOf: url)
      for line in try readLines() {
        let e = tokenizer.encode(line, maxLength: maxLength)
        emit("[" + e.ids.map(String.init).joined(separator: ",") + "]")
      }
    }
  }
}
