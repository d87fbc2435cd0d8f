// ROUGE-1, ROUGE-2 and ROUGE-L F-measures as Google's rouge-score (0.1.2) computes them with
// use_stemmer=True: lower-case, every run of characters outside [a-z0-9] is a space, tokens longer than
// 3 characters go through NLTK's Porter stemmer (its default NLTK_EXTENSIONS mode); n-gram overlap with
// clipped counts, and the longest common subsequence for L. Checked against the package in a fixture
// (scripts/make-golden-rouge.py).

public enum Rouge {
  public struct Scores: Equatable, Sendable { public var rouge1: Double, rouge2: Double, rougeL: Double }

  public static func scores(prediction: String, reference: String) -> Scores {
    let p = tokens(prediction), r = tokens(reference)
    return Scores(rouge1: ngramF(p, r, n: 1), rouge2: ngramF(p, r, n: 2), rougeL: lcsF(p, r))
  }

  /// rouge-score's tokenizer with stemming.
  public static func tokens(_ text: String) -> [String] {
    var words: [String] = [], current = ""
    for ch in text.lowercased().unicodeScalars {
      if ("a"..."z").contains(ch) || ("0"..."9").contains(ch) { current.unicodeScalars.append(ch) }
      else if !current.isEmpty { words.append(current); current = "" }
    }
    if !current.isEmpty { words.append(current) }
    return words.map { $0.count > 3 ? PorterStemmer.stem($0) : $0 }
  }

  static func fmeasure(_ hits: Int, predicted: Int, reference: Int) -> Double {
    let precision = Double(hits) / Double(max(predicted, 1)), recall = Double(hits) / Double(max(reference, 1))
    return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
  }

  static func ngramF(_ p: [String], _ r: [String], n: Int) -> Double {
    func grams(_ t: [String]) -> [[String]: Int] {
      var c: [[String]: Int] = [:]
      if t.count >= n { for i in 0...(t.count - n) { c[Array(t[i..<(i + n)]), default: 0] += 1 } }
      return c
    }
    let gp = grams(p), gr = grams(r)
    let hits = gr.reduce(0) { $0 + min($1.value, gp[$1.key] ?? 0) }
    return fmeasure(hits, predicted: gp.values.reduce(0, +), reference: gr.values.reduce(0, +))
  }

  static func lcsF(_ p: [String], _ r: [String]) -> Double {
    guard !p.isEmpty, !r.isEmpty else { return 0 }
    var prev = [Int](repeating: 0, count: p.count + 1), row = prev
    for i in 1...r.count {
      for j in 1...p.count { row[j] = r[i - 1] == p[j - 1] ? prev[j - 1] + 1 : max(prev[j], row[j - 1]) }
      swap(&prev, &row)
    }
    return fmeasure(prev[p.count], predicted: p.count, reference: r.count)
  }
}

/// NLTK's PorterStemmer (nltk/stem/porter.py, mode NLTK_EXTENSIONS) on lower-case ASCII words.
public enum PorterStemmer {
  static let pool: [String: String] = [
    "sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news", "innings": "inning", "inning": "inning",
    "outings": "outing", "outing": "outing", "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed",
    "exceed": "exceed", "succeed": "succeed",
  ]
  typealias Word = [Character]
  /// A suffix rule: (suffix, replacement, condition on the stem); "*d" stands for a double consonant.
  typealias Rule = (String, String, ((Word) -> Bool)?)

  public static func stem(_ word: String) -> String {
    let w = word.lowercased()
    if let p = pool[w] { return p }
    if w.count <= 2 { return w }
    var s = Word(w)
    s = step1a(s); s = step1b(s); s = step1c(s); s = step2(s); s = step3(s); s = step4(s); s = step5a(s); s = step5b(s)
    return String(s)
  }

  static func isVowel(_ c: Character) -> Bool { "aeiou".contains(c) }

  static func consonantFlags(_ w: Word) -> [Bool] {
    var flags: [Bool] = []
    for (i, c) in w.enumerated() { flags.append(isVowel(c) ? false : c == "y" ? (i == 0 ? true : !flags[i - 1]) : true) }
    return flags
  }
  static func isConsonant(_ w: Word, _ i: Int) -> Bool { consonantFlags(Array(w[...i]))[i] }
  static func measure(_ w: Word) -> Int {
    let f = consonantFlags(w)
    var m = 0
    if f.count > 1 { for i in 1..<f.count where !f[i - 1] && f[i] { m += 1 } }
    return m
  }
  static func positive(_ w: Word) -> Bool { measure(w) > 0 }
  static func containsVowel(_ w: Word) -> Bool { consonantFlags(w).contains(false) }
  static func endsDouble(_ w: Word) -> Bool { w.count >= 2 && w[w.count - 1] == w[w.count - 2] && isConsonant(w, w.count - 1) }
  static func endsCVC(_ w: Word) -> Bool {
    let n = w.count
    if n >= 3 && isConsonant(w, n - 3) && !isConsonant(w, n - 2) && isConsonant(w, n - 1) && !"wxy".contains(w[n - 1]) { return true }
    return n == 2 && !isConsonant(w, 0) && isConsonant(w, 1)
  }
  static func ends(_ w: Word, _ suffix: String) -> Bool { w.count >= suffix.count && w.suffix(suffix.count).elementsEqual(suffix) }

  /// The first rule whose suffix the word has decides: replaced if its condition holds, else the word stays.
  static func apply(_ w: Word, _ rules: [Rule]) -> Word {
    for (suffix, replacement, condition) in rules {
      if suffix == "*d" && endsDouble(w) {
        let stem = Word(w.dropLast(2))
        return condition.map { $0(stem) } ?? true ? stem + Word(replacement) : w
      }
      if ends(w, suffix) {
        let stem = Word(w.dropLast(suffix.count))
        return condition.map { $0(stem) } ?? true ? stem + Word(replacement) : w
      }
    }
    return w
  }

  static func step1a(_ w: Word) -> Word {
    if ends(w, "ies") && w.count == 4 { return Word(w.dropLast(3)) + Word("ie") }
    return apply(w, [("sses", "ss", nil), ("ies", "i", nil), ("ss", "ss", nil), ("s", "", nil)])
  }

  static func step1b(_ w: Word) -> Word {
    if ends(w, "ied") { return Word(w.dropLast(3)) + Word(w.count == 4 ? "ie" : "i") }
    if ends(w, "eed") {
      let stem = Word(w.dropLast(3))
      return measure(stem) > 0 ? stem + Word("ee") : w
    }
    var stem: Word?
    for suffix in ["ed", "ing"] where ends(w, suffix) {
      let s = Word(w.dropLast(suffix.count))
      if containsVowel(s) { stem = s; break }
    }
    guard let s = stem else { return w }
    let last = s.last.map { String($0) } ?? ""
    return apply(s, [("at", "ate", nil), ("bl", "ble", nil), ("iz", "ize", nil),
                     ("*d", last, { _ in !"lsz".contains(last) }),
                     ("", "e", { measure($0) == 1 && endsCVC($0) })])
  }

  static func step1c(_ w: Word) -> Word { apply(w, [("y", "i", { $0.count > 1 && isConsonant($0, $0.count - 1) })]) }

  static func step2(_ w: Word) -> Word {
    if ends(w, "alli") && positive(Word(w.dropLast(4))) { return step2(Word(w.dropLast(4)) + Word("al")) }
    let rules: [Rule] = [
      ("ational", "ate", positive), ("tional", "tion", positive), ("enci", "ence", positive), ("anci", "ance", positive),
      ("izer", "ize", positive), ("bli", "ble", positive), ("alli", "al", positive), ("entli", "ent", positive), ("eli", "e", positive),
      ("ousli", "ous", positive), ("ization", "ize", positive), ("ation", "ate", positive), ("ator", "ate", positive),
      ("alism", "al", positive), ("iveness", "ive", positive), ("fulness", "ful", positive), ("ousness", "ous", positive),
      ("aliti", "al", positive), ("iviti", "ive", positive), ("biliti", "ble", positive), ("fulli", "ful", positive),
      ("logi", "log", { _ in positive(Word(w.dropLast(3))) }),
    ]
    return apply(w, rules)
  }

  static func step3(_ w: Word) -> Word {
    apply(w, [("icate", "ic", positive), ("ative", "", positive), ("alize", "al", positive), ("iciti", "ic", positive),
              ("ical", "ic", positive), ("ful", "", positive), ("ness", "", positive)])
  }

  static func step4(_ w: Word) -> Word {
    let gt1: (Word) -> Bool = { measure($0) > 1 }
    return apply(w, [("al", "", gt1), ("ance", "", gt1), ("ence", "", gt1), ("er", "", gt1), ("ic", "", gt1), ("able", "", gt1),
                     ("ible", "", gt1), ("ant", "", gt1), ("ement", "", gt1), ("ment", "", gt1), ("ent", "", gt1),
                     ("ion", "", { measure($0) > 1 && ($0.last == "s" || $0.last == "t") }), ("ou", "", gt1), ("ism", "", gt1),
                     ("ate", "", gt1), ("iti", "", gt1), ("ous", "", gt1), ("ive", "", gt1), ("ize", "", gt1)])
  }

  static func step5a(_ w: Word) -> Word {
    guard w.last == "e" else { return w }
    let stem = Word(w.dropLast())
    let m = measure(stem)
    return m > 1 || (m == 1 && !endsCVC(stem)) ? stem : w
  }

  static func step5b(_ w: Word) -> Word { apply(w, [("ll", "l", { _ in measure(Word(w.dropLast())) > 1 })]) }
}
