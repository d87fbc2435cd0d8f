// `bonsai generate`, `bonsai chat` and `bonsai score`: decoders (a name, a .gguf file or a Hugging Face
// folder) continuing, conversing with and scoring one input per stdin line.
import ArgumentParser
import BonsaiData
import BonsaiEngine
import BonsaiModels
import BonsaiTokenizers
import Foundation

/// Bad input found while running (one line on stderr, exit status 1).
struct InputError: LocalizedError {
  let errorDescription: String?
  init(_ message: String) { errorDescription = message }
}

/// Options of the decoder commands.
struct DecoderOptions: ParsableArguments {
  @Option(name: .long, help: "A decoder: a model name (smollm2), a .gguf file or a Hugging Face folder (LlamaForCausalLM, Qwen2ForCausalLM).")
  var model: String
  @Option(name: .long, help: "Threads for kernels and matrix products (default: all cores).") var threads: Int?
  @Flag(name: .long, help: "Refuse a prompt longer than the context instead of keeping its last tokens.") var noTruncate = false
  @Flag(name: .long, help: "Convert a GGUF's weights to fp32 at load instead of multiplying from its Q8_0/Q4_0/Q4_1/F16/BF16 blocks (exact activations; 2-8x the memory, slower).")
  var fp32 = false

  func validate() throws {
    if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1, got \(t)") }
  }

  func load() throws -> (LlamaForCausalLM, ByteLevelBPETokenizer) {
    if let t = threads { Engine.threads = t }
    let url = try Assets.model(model, log: { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) })
    guard DecoderCheckpoint.isDecoder(url) else {
      throw InputError("--model \(model): not a decoder (a .gguf file, or a folder whose config.json has model_type \(LlamaConfig.architectures.joined(separator: " or ")))")
    }
    return try DecoderCheckpoint.load(url, keepingBlocks: !fp32)
  }

  /// Ids of one input line, cut to `limit` tokens from the left (with a warning) unless --no-truncate.
  func ids(_ text: String, line: Int, tokenizer: ByteLevelBPETokenizer, limit: Int) throws -> [Int] {
    guard !text.isEmpty else { throw InputError("stdin line \(line): empty input") }
    let ids = tokenizer.encode(text)
    guard ids.count > limit else { return ids }
    if noTruncate { throw InputError("stdin line \(line): \(ids.count) tokens exceed the context of \(limit) (drop --no-truncate to keep the last \(limit))") }
    FileHandle.standardError.write("warning: stdin line \(line): \(ids.count) tokens, keeping the last \(limit)\n".data(using: .utf8)!)
    return Array(ids.suffix(limit))
  }
}

/// Sampling options shared by generate and chat.
struct SamplingOptions: ParsableArguments {
  @Option(name: .long, help: "Tokens to generate at most.") var maxNewTokens = 128
  @Option(name: .long, help: "Sampling temperature (0: greedy).") var temperature: Float = 0
  @Option(name: .long, help: "Sample among the K most likely tokens (0: all).") var topK = 0
  @Option(name: .long, help: "Sample among the most likely tokens whose probability adds up to P (1: all).") var topP: Float = 1
  @Option(name: .long, help: "Penalty for tokens already in the text (1: none).") var repetitionPenalty: Float = 1
  @Option(name: .long, help: "Seed of the sampler.") var seed: UInt64 = 0
  @Option(name: .long, help: "Stop when the text contains this (repeatable).") var stop: [String] = []

  func validate() throws {
    if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1, got \(maxNewTokens)") }
    if !(temperature >= 0) { throw ValidationError("--temperature must be >= 0, got \(temperature)") }
    if topK < 0 { throw ValidationError("--top-k must be >= 0, got \(topK)") }
    if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
    if !(repetitionPenalty > 0) { throw ValidationError("--repetition-penalty must be positive, got \(repetitionPenalty)") }
  }

  var options: GenerationOptions {
    var o = GenerationOptions()
    o.maxNewTokens = maxNewTokens; o.temperature = temperature; o.topK = topK; o.topP = topP
    o.repetitionPenalty = repetitionPenalty; o.seed = seed; o.stopStrings = stop
    return o
  }
}

func jsonLine(_ obj: [String: Any]) throws -> String {
  String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
}

struct Generate: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Continue each stdin line with a decoder; one JSON object per line: text, new token ids, finish_reason.")
  @OptionGroup var decoder: DecoderOptions
  @OptionGroup var sampling: SamplingOptions
  @Flag(name: .long, help: "Wrap each line as a user message in the model's chat template (with its generation prompt).") var chat = false
  @Option(name: .long, help: "Prompts generated together (left-padded).") var batchSize = 1

  func validate() throws { if batchSize < 1 { throw ValidationError("--batch-size must be at least 1, got \(batchSize)") } }

  func run() throws {
    try runReportingErrors {
      let lines = try readLines()
      let (model, tokenizer) = try decoder.load()
      let template = chat ? try chatTemplate(tokenizer, source: decoder.model) : nil
      let limit = model.config.maxPositionEmbeddings - sampling.maxNewTokens
      var prompts: [[Int]] = []
      for (n, line) in lines.enumerated() {
        let text = template?.render([ChatMessage(role: "user", content: line)], addGenerationPrompt: true) ?? line
        if line.isEmpty { throw InputError("stdin line \(n + 1): empty input") }
        prompts.append(try decoder.ids(text, line: n + 1, tokenizer: tokenizer, limit: max(1, limit)))
      }
      let generator = Generator(model: model, tokenizer: tokenizer)
      let stream = isatty(2) != 0 && batchSize == 1
      for start in stride(from: 0, to: prompts.count, by: batchSize) {
        let text = TextStream(tokenizer: tokenizer, to: .standardError)
        let results = generator.generate(Array(prompts[start..<min(start + batchSize, prompts.count)]), options: sampling.options) { _, id in
          if stream { text.add(id) }
        }
        if stream { FileHandle.standardError.write("\n".data(using: .utf8)!) }
        for r in results { emit(try jsonLine(["text": r.text, "tokens": r.tokens, "finish_reason": r.finishReason])) }
      }
    }
  }
}

/// Writes generated text as its tokens arrive, holding back a character whose UTF-8 bytes are not all there yet.
final class TextStream {
  let tokenizer: ByteLevelBPETokenizer, out: FileHandle
  var ids: [Int] = [], printed = ""
  init(tokenizer: ByteLevelBPETokenizer, to out: FileHandle) { self.tokenizer = tokenizer; self.out = out }

  func add(_ id: Int) {
    ids.append(id)
    var text = tokenizer.decode(ids, skipSpecialTokens: true)
    while text.hasSuffix("\u{FFFD}") { text.removeLast() }
    guard text.hasPrefix(printed), text.count > printed.count else { return }
    out.write(String(text.dropFirst(printed.count)).data(using: .utf8)!)
    printed = text
  }
}

func chatTemplate(_ tokenizer: ByteLevelBPETokenizer, source: String) throws -> ChatTemplate {
  guard let t = tokenizer.chatTemplate else { throw ChatTemplateError.missing(source: source) }
  return try ChatTemplate(t, source: source)
}

struct Chat: ParsableCommand {
  static let configuration = CommandConfiguration(abstract: "Talk with a decoder: each stdin line is your turn; the history is kept.")
  @OptionGroup var decoder: DecoderOptions
  @OptionGroup var sampling: SamplingOptions
  @Option(name: .long, help: "A system message (default: the template's own, if it has one).") var system: String?

  func run() throws {
    try runReportingErrors {
      let (model, tokenizer) = try decoder.load()
      let template = try chatTemplate(tokenizer, source: decoder.model)
      let generator = Generator(model: model, tokenizer: tokenizer)
      var history = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
      let tty = isatty(0) != 0
      var n = 0
      while true {
        if tty { FileHandle.standardError.write("> ".data(using: .utf8)!) }
        guard let line = Swift.readLine(strippingNewline: true) else { break }
        n += 1
        if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
        history.append(ChatMessage(role: "user", content: line))
        let prompt = try decoder.ids(template.render(history, addGenerationPrompt: true), line: n, tokenizer: tokenizer,
                                     limit: max(1, model.config.maxPositionEmbeddings - sampling.maxNewTokens))
        let text = TextStream(tokenizer: tokenizer, to: .standardOutput)
        let reply = generator.generate([prompt], options: sampling.options) { _, id in text.add(id) }[0]
        FileHandle.standardOutput.write("\n".data(using: .utf8)!)
        history.append(ChatMessage(role: "assistant", content: reply.text))
      }
    }
  }
}

struct Score: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Score each stdin line with a decoder: tokens, summed negative log-likelihood of tokens 2..n, perplexity.")
  @OptionGroup var decoder: DecoderOptions

  func run() throws {
    try runReportingErrors {
      let lines = try readLines()
      let (model, tokenizer) = try decoder.load()
      for (n, line) in lines.enumerated() {
        let ids = try decoder.ids(line, line: n + 1, tokenizer: tokenizer, limit: model.config.maxPositionEmbeddings)
        guard ids.count > 1 else { emit(try jsonLine(["tokens": ids.count, "nll": 0, "perplexity": NSNull()])); continue }
        let x = TokenBatch(batch: 1, tokens: ids.count, ids: ids)
        let mean = Double(withoutGrad { LlamaForCausalLM.nextTokenLoss(logits: model(x), batch: x) }.item)
        emit(try jsonLine(["tokens": ids.count, "nll": mean * Double(ids.count - 1), "perplexity": Foundation.exp(mean)]))
      }
    }
  }
}
