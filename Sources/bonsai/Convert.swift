// `bonsai convert`: a decoder (a name, a .gguf file or a folder) as a Hugging Face folder that transformers loads.
import ArgumentParser
import BonsaiData
import BonsaiModels
import Foundation

struct Convert: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a decoder as a Hugging Face folder: config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with the chat template).")
  @Option(name: .long, help: "A decoder: a model name (smollm2), a .gguf file or a Hugging Face folder.") var model: String
  @Option(name: .long, help: "The folder to write (replaced if it exists).") var output: String
  @Option(name: .long, help: "Weight type: f32, f16 or bf16.") var dtype = "f32"

  func validate() throws {
    if !["f32", "f16", "bf16"].contains(dtype) { throw ValidationError("--dtype must be f32, f16 or bf16, got '\(dtype)'") }
  }

  func run() throws {
    try runReportingErrors {
      let url = try Assets.model(model)
      guard DecoderCheckpoint.isDecoder(url) else { throw InputError("--model \(model): not a decoder (a .gguf file or a llama/qwen2 folder)") }
      let (m, tokenizer) = try DecoderCheckpoint.load(url)
      try DecoderCheckpoint.save(m, tokenizer: tokenizer, to: URL(fileURLWithPath: output), dtype: dtype.uppercased())
      emit(try jsonLine(["output": output, "parameters": m.parameterCount, "dtype": dtype]))
    }
  }
}
