// The pre-tokenisation of byte-level BPE: GPT-2's regex, written out by hand over Unicode scalars,
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// as `tokenizers`' ByteLevel pre-tokenizer applies it (Oniguruma: \s = White_Space, \p{L} = L*,
// \p{N} = N*), optionally after isolating every numeric character (`Digits(individual_digits)`, which
// SmolLM2's original tokenizer.json and llama.cpp's "smollm" pre-type do first). Then GPT-2's
// bytes_to_unicode alphabet maps each UTF-8 byte to one printable character.

/// How text is cut into words before BPE.
public enum ByteLevelPreTokenizer: String, Sendable, CaseIterable {
  /// GPT-2's regex (what transformers builds from a GGUF whose tokenizer.ggml.pre it has no split for).
  case gpt2
  /// Every \p{N} character on its own first, then GPT-2's regex (SmolLM2's tokenizer.json, llama.cpp "smollm").
  case gpt2IndividualDigits
  /// Llama 3's split: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  case llama3
  /// Qwen2's: the same with single digits (\p{N} instead of \p{N}{1,3}).
  case qwen2

  /// The regex a tokenizer.json Split holds for this pre-tokenizer (nil: no Split).
  public var splitPattern: String? {
    switch self {
    case .llama3: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    case .qwen2: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    default: return nil
    }
  }

  /// The words of `text` as ranges of its Unicode scalars.
  func split(_ s: [Unicode.Scalar]) -> [Range<Int>] {
    switch self {
    case .gpt2: return gpt2Words(s, 0..<s.count)
    case .llama3: return llama3Words(s, maxDigits: 3)
    case .qwen2: return llama3Words(s, maxDigits: 1)
    case .gpt2IndividualDigits:
      var out: [Range<Int>] = [], start = 0
      for i in s.indices where isNumber(s[i]) {
        if start < i { out += gpt2Words(s, start..<i) }
        out.append(i..<(i + 1)); start = i + 1
      }
      if start < s.count { out += gpt2Words(s, start..<s.count) }
      return out
    }
  }
}

@inline(__always) func isLetter(_ c: Unicode.Scalar) -> Bool {
  if c.value < 0x80 { return (c.value | 0x20) >= 0x61 && (c.value | 0x20) <= 0x7A }
  switch c.properties.generalCategory {
  case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
  default: return false
  }
}

@inline(__always) func isNumber(_ c: Unicode.Scalar) -> Bool {
  if c.value < 0x80 { return c.value >= 0x30 && c.value <= 0x39 }
  switch c.properties.generalCategory {
  case .decimalNumber, .letterNumber, .otherNumber: return true
  default: return false
  }
}

@inline(__always) func isSpace(_ c: Unicode.Scalar) -> Bool {
  if c.value < 0x80 { return c.value == 0x20 || (c.value >= 0x09 && c.value <= 0x0D) }
  return c.properties.isWhitespace
}

/// GPT-2's regex over `s[range]`, leftmost alternative first as a backtracking regex engine takes it.
func gpt2Words(_ s: [Unicode.Scalar], _ range: Range<Int>) -> [Range<Int>] {
  var out: [Range<Int>] = []
  var i = range.lowerBound
  let n = range.upperBound
  func run(from k: Int, _ accept: (Unicode.Scalar) -> Bool) -> Int { var k = k; while k < n && accept(s[k]) { k += 1 }; return k }
  while i < n {
    // 's 't 're 've 'm 'll 'd
    if s[i] == "'" && i + 1 < n {
      let a = s[i + 1], b: Unicode.Scalar? = i + 2 < n ? s[i + 2] : nil
      if a == "s" || a == "t" || a == "m" || a == "d" { out.append(i..<(i + 2)); i += 2; continue }
      if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { out.append(i..<(i + 3)); i += 3; continue }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
    let j = s[i] == " " ? i + 1 : i
    if j < n {
      let c = s[j]
      var end = j
      if isLetter(c) { end = run(from: j, isLetter) }
      else if isNumber(c) { end = run(from: j, isNumber) }
      else if !isSpace(c) { end = run(from: j) { !isSpace($0) && !isLetter($0) && !isNumber($0) } }
      if end > j { out.append(i..<end); i = end; continue }
    }
    // '\s+(?!\S)', then '\s+': a run of whitespace leaves its last character to the word after it
    let end = run(from: i, isSpace)
    if end == n || end - i == 1 { out.append(i..<end) } else { out.append(i..<(end - 1)) }
    i = end == n || end - i == 1 ? end : end - 1
  }
  return out
}

/// Llama 3's (and Qwen2's) split, leftmost alternative first as Oniguruma takes it.
func llama3Words(_ s: [Unicode.Scalar], maxDigits: Int) -> [Range<Int>] {
  var out: [Range<Int>] = []
  let n = s.count
  var i = 0
  func newline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
  func run(from k: Int, _ accept: (Unicode.Scalar) -> Bool) -> Int { var k = k; while k < n && accept(s[k]) { k += 1 }; return k }
  func lower(_ c: Unicode.Scalar) -> Unicode.Scalar { c.value >= 0x41 && c.value <= 0x5A ? Unicode.Scalar(c.value + 32)! : c }
  while i < n {
    // (?i:'s|'t|'re|'ve|'m|'ll|'d)
    if s[i] == "'" && i + 1 < n {
      let a = lower(s[i + 1]), b: Unicode.Scalar? = i + 2 < n ? lower(s[i + 2]) : nil
      if a == "s" || a == "t" || a == "m" || a == "d" { out.append(i..<(i + 2)); i += 2; continue }
      if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { out.append(i..<(i + 3)); i += 3; continue }
    }
    let c = s[i]
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if isLetter(c) { let e = run(from: i, isLetter); out.append(i..<e); i = e; continue }
    if !newline(c) && !isNumber(c) && i + 1 < n && isLetter(s[i + 1]) { let e = run(from: i + 1, isLetter); out.append(i..<e); i = e; continue }
    // \p{N}{1,maxDigits}
    if isNumber(c) { var e = i; while e < n && e - i < maxDigits && isNumber(s[e]) { e += 1 }; out.append(i..<e); i = e; continue }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    let j = c == " " ? i + 1 : i
    if j < n && !isSpace(s[j]) && !isLetter(s[j]) && !isNumber(s[j]) {
      var e = run(from: j) { !isSpace($0) && !isLetter($0) && !isNumber($0) }
      e = run(from: e, newline)
      out.append(i..<e); i = e; continue
    }
    // '\s*[\r\n]+': up to the last \r or \n of the whitespace run
    let end = run(from: i, isSpace)
    if let last = (i..<end).last(where: { newline(s[$0]) }) { out.append(i..<(last + 1)); i = last + 1; continue }
    // '\s+(?!\S)', then '\s+'
    if end == n || end - i == 1 { out.append(i..<end); i = end } else { out.append(i..<(end - 1)); i = end - 1 }
  }
  return out
}

/// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes for
/// U+0100 onwards, in byte order.
let byteToUnicode: [Unicode.Scalar] = {
  var printable = Set<Int>(0x21...0x7E)
  printable.formUnion(0xA1...0xAC); printable.formUnion(0xAE...0xFF)
  var out = [Unicode.Scalar](repeating: " ", count: 256), extra = 0
  for b in 0..<256 {
    if printable.contains(b) { out[b] = Unicode.Scalar(UInt32(b))! } else { out[b] = Unicode.Scalar(UInt32(256 + extra))!; extra += 1 }
  }
  return out
}()
