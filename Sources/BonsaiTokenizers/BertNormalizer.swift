// The `BertNormalizer` and `BertPreTokenizer` of Hugging Face `tokenizers` (normalizers/bert.rs,
// pre_tokenizers/bert.rs), on Unicode scalars exactly as the Rust code iterates `char`s. Which
// characters count as control, non-spacing mark, punctuation and whitespace comes from tables read
// off `tokenizers` itself (BertCharacterClasses.swift), not from Swift's newer Unicode properties.
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
      s = nfd.unicodeScalars.filter { !ScalarSet.nonspacingMarks.contains($0) }
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

/// '\t', '\n', '\r' and Unicode White_Space (Rust's `char::is_whitespace`).
@inline(__always)
func isBertWhitespace(_ c: Unicode.Scalar) -> Bool { ScalarSet.whitespace.contains(c) }

/// The "other" characters clean_text removes: Cc, Cf and Co of `tokenizers`' Unicode tables, except
/// tab, newline and carriage return. Unassigned code points (Cn) are not among them: they stay and
/// become [UNK], as in `tokenizers`.
@inline(__always)
func isControl(_ c: Unicode.Scalar) -> Bool { ScalarSet.removed.contains(c) }

@inline(__always)
func isChineseChar(_ c: Unicode.Scalar) -> Bool {
  switch c.value {
  case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
       0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
  default: return false
  }
}

/// ASCII punctuation (symbols included, as BERT's tokenizer does) or a punctuation character of
/// `tokenizers`' Unicode tables (Pc, Pd, Ps, Pe, Pi, Pf, Po).
@inline(__always)
func isBertPunctuation(_ c: Unicode.Scalar) -> Bool {
  if c.isASCII {
    let v = c.value
    return (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v)
  }
  return ScalarSet.punctuation.contains(c)
}

/// A set of code points given as sorted, disjoint, inclusive ranges: a bitmap for ASCII, a binary search above.
struct ScalarSet: Sendable {
  let ascii: (UInt64, UInt64)
  let ranges: [(UInt32, UInt32)]

  init(_ ranges: [(UInt32, UInt32)]) {
    var lo: UInt64 = 0, hi: UInt64 = 0
    for (a, b) in ranges where a < 128 {
      for v in a...min(b, 127) { if v < 64 { lo |= 1 << UInt64(v) } else { hi |= 1 << UInt64(v - 64) } }
    }
    ascii = (lo, hi)
    self.ranges = ranges
  }

  @inline(__always)
  func contains(_ c: Unicode.Scalar) -> Bool {
    let v = c.value
    if v < 64 { return ascii.0 >> UInt64(v) & 1 != 0 }
    if v < 128 { return ascii.1 >> UInt64(v - 64) & 1 != 0 }
    var low = 0, high = ranges.count
    while low < high {
      let mid = (low + high) / 2
      if ranges[mid].1 < v { low = mid + 1 } else { high = mid }
    }
    return low < ranges.count && ranges[low].0 <= v
  }

  static let removed = ScalarSet(bertRemovedRanges)
  static let nonspacingMarks = ScalarSet(bertNonspacingMarkRanges)
  static let punctuation = ScalarSet(bertPunctuationRanges)
  static let whitespace = ScalarSet(bertWhitespaceRanges)
}

/// Splits on whitespace (dropped) and isolates every punctuation character.
public func bertPreTokenize(_ s: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
  var words: [[Unicode.Scalar]] = []
  var current: [Unicode.Scalar] = []
  for c in s {
    if isBertWhitespace(c) {
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
