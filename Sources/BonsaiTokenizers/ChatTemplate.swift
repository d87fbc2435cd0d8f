// Chat templates. Bonsai has no Jinja interpreter: it recognises the templates it can render exactly as
// transformers' apply_chat_template does (ChatML, as SmolLM2 ships it with a default system message, and
// plain ChatML), and refuses any other template with a clear error rather than guess.
import Foundation

public struct ChatMessage: Codable, Sendable, Equatable {
  public var role: String
  public var content: String
  public init(role: String, content: String) { self.role = role; self.content = content }
}

public enum ChatTemplateError: LocalizedError, Equatable {
  case unsupported(source: String, excerpt: String)
  case missing(source: String)

  public var errorDescription: String? {
    switch self {
    case let .unsupported(source, excerpt):
      return "\(source): chat template not supported (Bonsai renders ChatML templates such as SmolLM2's and Qwen2's exactly and will not guess at others): \(excerpt)"
    case let .missing(source): return "\(source): the model has no chat template (tokenizer.chat_template); use it without --chat"
    }
  }
}

public struct ChatTemplate: Sendable, Equatable {
  /// The system message inserted when a conversation does not start with one (nil: none).
  public let defaultSystem: String?

  static let loop = "{% for message in messages %}"
  // (newlines inside the Jinja strings, written as a newline or as the escape \n: both are read as one)
  static let turn = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
  static let prompt = "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
  static let systemHead = "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
  static let systemTail = "<|im_end|>\n' }}{% endif %}"

  /// Recognises `template` (the Jinja source) or throws naming `source`.
  public init(_ template: String, source: String) throws {
    let t = template.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "\\n", with: "\n")
    if t == ChatTemplate.loop + ChatTemplate.turn + ChatTemplate.prompt { defaultSystem = nil; return }
    let head = ChatTemplate.loop + ChatTemplate.systemHead, tail = ChatTemplate.systemTail + ChatTemplate.turn + ChatTemplate.prompt
    if t.hasPrefix(head) && t.hasSuffix(tail) && t.count > head.count + tail.count {
      let message = String(t.dropFirst(head.count).dropLast(tail.count))
      if !message.contains("'") && !message.contains("{") && !message.contains("\\") && !message.contains("<|") { defaultSystem = message; return }
    }
    throw ChatTemplateError.unsupported(source: source, excerpt: String(t.prefix(120)) + (t.count > 120 ? "..." : ""))
  }

  /// The conversation as text, ending with the assistant's header when `addGenerationPrompt`.
  public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool) -> String {
    var out = ""
    if let defaultSystem, messages.first?.role != "system" { out += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n" }
    for m in messages { out += "<|im_start|>\(m.role)\n\(m.content)<|im_end|>\n" }
    if addGenerationPrompt { out += "<|im_start|>assistant\n" }
    return out
  }
}
