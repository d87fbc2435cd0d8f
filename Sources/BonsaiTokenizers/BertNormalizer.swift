// The `BertNormalizer` and `BertPreTokenizer` of Hugging Face `tokenizers` (normalizers/bert.rs,
// pre_tokenizers/bert.rs), on Unicode scalars exactly as the Rust code iterates `char`s.
import Foundation

/// Clean text, CJK spacing, accent stripping and lower-casing, as configured in tokenizer.json.
public struct BertNormalizer: Sendable {
  public var cleanText = true
  public var handleChineseChars = true
  public var stripAccents: Bool? = nil
  public var lowercase = true

  public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
    self.cleanText = cleanText; self.handleChineseChars = handleChineseChars
    self.stripAccents = stripAccents; self.lowercase = lowercase
  }

  public func normalize(_ input: [Unicode.Scalar]) -> [Unicode.Scalar] {
    var s = input
    if cleanText {
      s = s.compactMap { c in
        if c.value == 0 || c.value == 0xFFFD || isControl(c) { return nil }
        return isBertWhitespace(c) ? " " : c
      }
    }
    if handleChineseChars {
      var out: [Unicode.Scalar] = []
      out.reserveCapacity(s.count)
      for c in s {
        if isChineseChar(c) { out.append(" "); out.append(c); out.append(" ") } else { out.append(c) }
      }
      s = out
    }
    if stripAccents ?? lowercase {
      let nfd = String(String.UnicodeScalarView(s)).decomposedStringWithCanonicalMapping
      s = nfd.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
    }
    if lowercase {
      var out: [Unicode.Scalar] = []
      out.reserveCapacity(s.count)
      for c in s {
        if c.isASCII { out.append(c.value >= 65 && c.value <= 90 ? Unicode.Scalar(c.value + 32)! : c) }
        else { out.append(contentsOf: c.properties.lowercaseMapping.unicodeScalars) }
      }
      s = out
    }
    return s
  }
}

/// '\t', '\n', '\r' and Unicode White_Space.
@inline(__always)
func isBertWhitespace(_ c: Unicode.Scalar) -> Bool {
  c == "\t" || c == "\n" || c == "\r" || c.properties.isWhitespace
}

/// Unicode "Other" categories (Cc, Cf, Cn, Co, Cs), except tab, newline and carriage return.
@inline(__always)
func isControl(_ c: Unicode.Scalar) -> Bool {
  if c == "\t" || c == "\n" || c == "\r" { return false }
  switch c.properties.generalCategory {
  case .control, .format, .unassigned, .privateUse, .surrogate: return true
  default: return false
  }
}

@inline(__always)
func isChineseChar(_ c: Unicode.Scalar) -> Bool {
  switch c.value {
  case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
       0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
  default: return false
  }
}

/// ASCII punctuation or any Unicode punctuation category (Pc, Pd, Ps, Pe, Pi, Pf, Po).
@inline(__always)
func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
  if c.isASCII {
    let v = c.value
    return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
  }
  switch c.properties.generalCategory {
  case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
       .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
  default: return false
  }
}

/// Splits on whitespace (dropped) and isolates every punctuation character.
public func bertPreTokenize(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
  var words: [[Unicode.Scalar]] = []
  var current: [Unicode.Scalar] = []
  for c in s {
    if c.properties.isWhitespace || c == "\t" || c == "\n" || c == "\r" {
      if !current.isEmpty { words.append(current); current = [] }
    } else if isBertPunctuation(c) {
      if !current.isEmpty { words.append(current); current = [] }
      words.append([c])
    } else {
      current.append(c)
    }
  }
  if !current.isEmpty { words.append(current) }
  return words
}
