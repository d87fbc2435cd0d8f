// `bonsai convert`: a decoder (a name, a .gguf file or a folder) as a Hugging Face folder that transformers
// loads, or as a GGUF file that llama.cpp (and transformers) load.
import ArgumentParser
import BonsaiData
import BonsaiModels
import Foundation

struct Convert: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write a decoder as a Hugging Face folder (config.json, model.safetensors, tokenizer files) or as a GGUF file (--to gguf).")
  @Option(name: .long, help: "A decoder: a model name (smollm2), a .gguf file or a Hugging Face folder.") var model: String
  @Option(name: .long, help: "The folder or .gguf file to write (replaced if it exists).") var output: String
  @Option(name: .long, help: "hf (a Hugging Face folder) or gguf.") var to = "hf"
  @Option(name: .long, help: "Weight type: f32, f16 or bf16 for hf; f32, f16, q8_0 or q4_0 for gguf.") var dtype = "f32"

  func validate() throws {
    if !["hf", "gguf"].contains(to) { throw ValidationError("--to must be hf or gguf, got '\(to)'") }
    let allowed = to == "gguf" ? ["f32", "f16", "q8_0", "q4_0"] : ["f32", "f16", "bf16"]
    if !allowed.contains(dtype) { throw ValidationError("--dtype must be \(allowed.joined(separator: ", ")) with --to \(to), got '\(dtype)'") }
  }

  func run() throws {
    try runReportingErrors {
      let url = try Assets.model(model)
      guard DecoderCheckpoint.isDecoder(url) else { throw InputError("--model \(model): not a decoder (a .gguf file or a llama/qwen2 folder)") }
      let (m, tokenizer) = try DecoderCheckpoint.load(url)
      if to == "gguf" {
        try DecoderCheckpoint.saveGGUF(m, tokenizer: tokenizer, to: output, dtype: dtype, name: url.deletingPathExtension().lastPathComponent)
      } else {
        try DecoderCheckpoint.save(m, tokenizer: tokenizer, to: URL(fileURLWithPath: output), dtype: dtype.uppercased())
      }
      emit(try jsonLine(["output": output, "parameters": m.parameterCount, "dtype": dtype, "to": to]))
    }
  }
}
