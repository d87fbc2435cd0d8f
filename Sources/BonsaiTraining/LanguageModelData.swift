// A causal-LM run's data: token ids with a target flag per token (the completion or the assistant's turns
// only, unless `--train-on all`), truncation to the training length, and the same seeded, saved split as
// classification (stratified by completion when the completions are label words).
import BonsaiData
import BonsaiTokenizers
import Foundation

/// One example as token ids; `targets[i]` says whether id i is predicted (and scored) from ids ..< i.
public struct TargetedEncoding: Sendable, Equatable {
  public var ids: [Int]
  public var targets: [Bool]
  /// How many ids come before the final target segment (the completion or last assistant turn): the
  /// prompt a generation metric continues.
  public var promptLength: Int
  /// Whether tokens of the prompt (or, for a plain text, of its end) were dropped to fit.
  public var truncated = false
  /// Whether a chat's only assistant turn was too long and lost its end (it is trained on its start).
  public var cutTurn = false
  /// What a generation from the prompt is scored against: the completion, or the chat's last assistant turn kept.
  public var reference: String?
}

public enum LanguageDataError: LocalizedError, Equatable {
  case completionTooLong(path: String, line: Int, tokens: Int, maxLength: Int)
  case noChatTemplate(path: String, model: String)

  public var errorDescription: String? {
    switch self {
    case let .completionTooLong(path, line, tokens, maxLength):
      return "\(path): line \(line): the completion takes \(tokens) tokens, more than --max-length \(maxLength) leaves after one prompt token; raise --max-length or shorten it"
    case let .noChatTemplate(path, model):
      return "\(path): the examples are chats ('messages') but \(model) has no chat template Bonsai can render; give prompt/completion data instead"
    }
  }
}

/// Turns examples into targeted token ids.
public struct LanguageEncoder {
  public let tokenizer: ByteLevelBPETokenizer
  public let template: ChatTemplate?
  public let maxLength: Int
  /// Score every token after the first, prompts included.
  public let trainOnAll: Bool
  /// When a prompt is cut, its last `keptTail` tokens stay (a chat's assistant header, a "Headline:" cue).
  public static let keptTail = 16

  public init(tokenizer: ByteLevelBPETokenizer, template: ChatTemplate?, maxLength: Int, trainOnAll: Bool) {
    self.tokenizer = tokenizer; self.template = template; self.maxLength = maxLength; self.trainOnAll = trainOnAll
  }

  /// The encoder for `dataset`: chats need the model's chat template (`model` names it in the error).
  public init(for dataset: LanguageDataset, tokenizer: ByteLevelBPETokenizer, model: String, maxLength: Int, trainOnAll: Bool) throws {
    var template: ChatTemplate?
    if dataset.format == "chat" {
      guard let t = tokenizer.chatTemplate.flatMap({ try? ChatTemplate($0, source: model) }) else {
        throw LanguageDataError.noChatTemplate(path: dataset.path, model: model)
      }
      template = t
    }
    self.init(tokenizer: tokenizer, template: template, maxLength: maxLength, trainOnAll: trainOnAll)
  }

  /// Every example of `dataset`, in order.
  public func encode(_ dataset: LanguageDataset) throws -> [TargetedEncoding] {
    try zip(dataset.examples, dataset.lines).map { try encode($0, path: dataset.path, line: $1) }
  }

  /// Segments of text, each a target or not, in order.
  func segments(_ example: LanguageExample) -> [(text: String, target: Bool)] {
    switch example {
    case let .text(t): return [(t, true)]
    case let .completion(p, c): return [(p, false), (c, true)]
    case let .chat(turns):
      let messages = turns.map { ChatMessage(role: $0.role, content: $0.content) }
      var out: [(String, Bool)] = [], done = 0
      for k in messages.indices where messages[k].role == "assistant" {
        let context = template!.render(Array(messages[..<k]), addGenerationPrompt: true)
        var turn = String(template!.render(Array(messages[...k]), addGenerationPrompt: false).dropFirst(context.count))
        let newline = turn.hasSuffix("\n")  // the newline after <|im_end|> is the next turn's, not a target
        if newline { turn.removeLast() }
        out.append((String(context.dropFirst(done)), false))
        out.append((turn, true))
        done = context.count + turn.count
      }
      return out
    }
  }

  /// The ids of `example` (bos first when the tokenizer adds one; eos after a text or a completion),
  /// at most `maxLength` of them: a long prompt loses tokens from its middle (its start and last
  /// `keptTail` tokens stay), a long text its end, a chat whose last assistant turn cannot fit ends at an
  /// earlier assistant turn, and a chat's first assistant turn that cannot fit keeps its start (its context
  /// cut as a prompt to at most half the length, the turn's end dropped: `cutTurn`); a completion that
  /// cannot fit is an error naming `line`.
  public func encode(_ example: LanguageExample, path: String, line: Int) throws -> TargetedEncoding {
    var ids: [Int] = tokenizer.addsBOS ? tokenizer.bosId.map { [$0] } ?? [] : []
    var targets = [Bool](repeating: false, count: ids.count)
    let segs = segments(example)
    var finalStart = 0
    var isChat = false
    if case .chat = example { isChat = true }
    for (n, s) in segs.enumerated() {
      var part = tokenizer.encode(s.text, addSpecialTokens: false)
      if n == segs.count - 1 {
        finalStart = ids.count
        if !isChat, let eos = tokenizer.eosId { part.append(eos) }  // a chat turn ends with its own <|im_end|>
      }
      ids += part
      targets += [Bool](repeating: s.target || trainOnAll, count: part.count)
    }
    if !targets.isEmpty { targets[0] = false }
    var e = TargetedEncoding(ids: ids, targets: targets, promptLength: finalStart, reference: example.reference)
    guard ids.count > maxLength else { return e }
    e.truncated = true
    if case .text = example {
      e.ids = Array(ids.prefix(maxLength)); e.targets = Array(targets.prefix(maxLength)); e.promptLength = 0
      return e
    }
    let final = ids.count - finalStart
    if final > maxLength - 1, case let .chat(turns) = example, turns.filter({ $0.role == "assistant" }).count > 1 {
      // a chat whose last assistant turn cannot fit ends at an earlier one
      var shorter = try encode(.chat(Array(turns.dropLast(2))), path: path, line: line)
      shorter.truncated = true
      return shorter
    }
    var turnEnd = ids.count
    if final > maxLength - 1 {
      guard isChat else { throw LanguageDataError.completionTooLong(path: path, line: line, tokens: final, maxLength: maxLength) }
      turnEnd = finalStart + maxLength - min(finalStart, maxLength / 2)  // the context keeps at most half
      e.cutTurn = true
    }
    let keep = maxLength - (turnEnd - finalStart), tail = min(LanguageEncoder.keptTail, keep / 2), head = keep - tail
    let kept = Array(0..<head) + Array((finalStart - tail)..<turnEnd)
    e.ids = kept.map { ids[$0] }; e.targets = kept.map { targets[$0] }; e.promptLength = keep
    e.targets[0] = false
    return e
  }
}

/// Everything a causal-LM run reads: examples, token ids and the split.
public struct LanguageModelData {
  public let dataset: LanguageDataset
  public let encodings: [TargetedEncoding]
  public let split: Split

  /// Tokenises (saying how many examples were cut to --max-length), makes the split or, when resuming,
  /// checks that the data still gives the saved one in `runDir`/split.json.
  public static func prepare(_ dataset: LanguageDataset, encoder: LanguageEncoder, config: TrainConfig, runDir: URL, resume: Bool,
                             progress: ProgressSink) throws -> LanguageModelData {
    let encodings = try encoder.encode(dataset)
    let cut = encodings.filter(\.truncated).count
    if cut > 0 {
      progress.message("\(cut) of \(encodings.count) examples are longer than --max-length \(config.maxLength): "
                       + (dataset.format == "text" ? "their ends were cut" : "their prompts lost tokens from the middle (start and last \(LanguageEncoder.keptTail) tokens kept)"
                          + (dataset.format == "chat" ? ", chats end at the last assistant turn that fits" : "")))
    }
    let turns = zip(encodings, dataset.lines).filter { $0.0.cutTurn }.map(\.1)
    if !turns.isEmpty {
      progress.message("\(turns.count) chats have a first assistant turn longer than --max-length \(config.maxLength): trained on its start "
                       + "(lines \(turns.prefix(5).map(String.init).joined(separator: ", "))\(turns.count > 5 ? ", ..." : ""))")
    }
    let strata = dataset.labelWords ?? [String](repeating: "", count: dataset.examples.count)
    var split = Split.stratified(labels: strata, dev: config.devFraction, test: config.testFraction, seed: config.splitSeed ?? config.seed)
    let splitURL = runDir.appendingPathComponent("split.json")
    if resume, let data = FileManager.default.contents(atPath: splitURL.path) {
      let saved = try JSONDecoder().decode(Split.self, from: data)
      guard saved == split else { throw TrainingError.badResume(path: splitURL.path, reason: "the data no longer gives the saved split") }
      split = saved
    }
    return LanguageModelData(dataset: dataset, encodings: encodings, split: split)
  }

  /// Padding of one epoch's batches as a fraction of the tokens, length-grouped vs in random order.
  public func paddingFractions(batchSize: Int, seed: UInt64) -> (grouped: Double, random: Double) {
    let lengths = encodings.map(\.ids.count)
    func padding(_ batches: [[Int]]) -> Double {
      var pad = 0, total = 0
      for b in batches { let t = b.map { lengths[$0] }.max() ?? 0; total += t * b.count; pad += b.reduce(0) { $0 + t - lengths[$1] } }
      return total == 0 ? 0 : Double(pad) / Double(total)
    }
    var order = split.train
    var rng = SplitMix(seed: seed)
    rng.shuffle(&order)
    let random = stride(from: 0, to: order.count, by: batchSize).map { Array(order[$0..<min($0 + batchSize, order.count)]) }
    return (padding(lengthGroupedBatches(split.train, lengths: lengths, batchSize: batchSize, seed: seed, epoch: 0)), padding(random))
  }
}
