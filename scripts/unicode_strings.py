"""Seeded generator of messy strings for the tokenizer differential test (scripts/make-golden.py).

Every string mixes pieces drawn from the whole of Unicode: each general category (Python's
unicodedata, Unicode 14; its unassigned code points include characters assigned since), controls,
format characters (zero-width joiners, BOM, bidi marks), private use, U+FFFD and mojibake, combining
marks on letters in NFC and NFD, CJK and other scripts, emoji sequences with ZWJ, skin tones, flags,
keycaps and variation selectors, every kind of whitespace, very long words, and literal special
tokens with and without spaces around them.
"""
import random, sys, unicodedata

def _pools():
    pools = {}
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF:
            continue  # surrogates are not text
        pools.setdefault(unicodedata.category(chr(c)), []).append(c)
    return pools

POOLS = _pools()
CATEGORIES = sorted(POOLS)
WHITESPACE = [0x09, 0x0B, 0x0C, 0x20, 0x85, 0xA0, 0x1680, 0x180E, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
              0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x200B, 0x2028, 0x2029, 0x202F, 0x205F,
              0x3000, 0xFEFF, 0x1C, 0x1D, 0x1E, 0x1F]
FORMAT = [0x00AD, 0x061C, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
          0x2060, 0x2061, 0x2066, 0x2067, 0x2068, 0x2069, 0xFEFF, 0xFFF9, 0xFFFA, 0xFFFB, 0xE0001, 0xE0041]
SPECIALS = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "<s>", "</s>", "<mask>", "<pad>", "<unk>",
            "[cls]", "[Mask]", "<S>", "[CLS", "MASK]", "<mask"]
WORDS = ["the", "movie", "was", "a", "delight", "naïve", "café", "résumé", "Ångström", "façade", "jalapeño",
         "Übermensch", "straße", "İstanbul", "ǅemal", "ﬁnance", "Ⅻ", "x²", "½", "№", "ℌ", "ﬀ", "ﾊﾝｶｸ", "ＡＢＣ"]
SCRIPTS = [(0x0391, 0x03C9), (0x0410, 0x044F), (0x05D0, 0x05EA), (0x0620, 0x064A), (0x0900, 0x097F),
           (0x0E01, 0x0E5B), (0x1100, 0x11FF), (0xAC00, 0xD7A3), (0x3040, 0x30FF), (0x0F00, 0x0FDA),
           (0x1200, 0x137C), (0x13A0, 0x13F5), (0x10A0, 0x10FF), (0x0531, 0x058A), (0x1780, 0x17F9)]
CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0xF900, 0xFAFF),
       (0x2F800, 0x2FA1F), (0x30000, 0x3134A), (0x3000, 0x303F), (0xFF00, 0xFFEF)]
EMOJI = [0x1F600, 0x1F44D, 0x1F468, 0x1F469, 0x1F467, 0x1F466, 0x2764, 0x1F525, 0x1F3F3, 0x1F308, 0x1F9D1,
         0x1F4BB, 0x2708, 0x263A, 0x1FAE0, 0x1F972, 0x1F3F4]
MOJIBAKE = ["Ã©", "Ã¨", "â€™", "â€œ", "â€\x9d", "Ã¼", "_Ñ_", "ÛÏ", "ÛÒ", "\ufffd\ufffd", "Ã\x83Â©", "ï»¿"]
MARKS = [0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030A, 0x0327, 0x0328, 0x0331, 0x0345, 0x0483, 0x05B0,
         0x0651, 0x093C, 0x0E31, 0x1AB0, 0x1DC0, 0x20D0, 0x20DD, 0x20E3, 0xFE20, 0x302A, 0x1D167]

def _pick_range(rng, ranges):
    a, b = rng.choice(ranges)
    return chr(rng.randint(a, b))

def _category_char(rng):
    return chr(rng.choice(POOLS[rng.choice(CATEGORIES)]))

def _emoji(rng):
    kind = rng.randrange(5)
    if kind == 0:  # ZWJ sequence, maybe with skin tones and VS16
        parts = [chr(rng.choice(EMOJI)) + (chr(rng.randint(0x1F3FB, 0x1F3FF)) if rng.random() < 0.3 else "")
                 + ("\ufe0f" if rng.random() < 0.3 else "") for _ in range(rng.randint(2, 4))]
        return "\u200d".join(parts)
    if kind == 1:  # flag: two regional indicators (or a tag sequence)
        if rng.random() < 0.8:
            return chr(rng.randint(0x1F1E6, 0x1F1FF)) + chr(rng.randint(0x1F1E6, 0x1F1FF))
        return "\U0001F3F4" + "".join(chr(0xE0000 + ord(ch)) for ch in "gbsct") + "\U000E007F"
    if kind == 2:  # keycap
        return rng.choice("0123456789#*") + "\ufe0f\u20e3"
    if kind == 3:  # text / emoji presentation selectors
        return chr(rng.choice(EMOJI)) + rng.choice(["\ufe0e", "\ufe0f"])
    return chr(rng.randint(0x1F300, 0x1FAFF))

def _accented(rng):
    base = "".join(rng.choice("aeiouncAEIOUNCyz") for _ in range(rng.randint(1, 6)))
    s = "".join(ch + ("".join(chr(rng.choice(MARKS)) for _ in range(rng.randint(1, 2))) if rng.random() < 0.5 else "") for ch in base)
    return unicodedata.normalize(rng.choice(["NFC", "NFD", "NFKC", "NFKD"]), s) if rng.random() < 0.8 else s

def _long_word(rng):
    n = rng.choice([95, 99, 100, 101, 120, 250]) + rng.randint(-2, 2)
    alphabet = rng.choice(["abcdefghij", "é", "日本", "ab\u0301", "xyz!"])
    return "".join(rng.choice(alphabet) for _ in range(n))

def _piece(rng):
    r = rng.randrange(16)
    if r == 0: return _category_char(rng) * rng.randint(1, 3)
    if r == 1: return "".join(_category_char(rng) for _ in range(rng.randint(1, 6)))
    if r == 2: return chr(rng.choice(POOLS["Cn"]))
    if r == 3: return chr(rng.choice(POOLS["Co"] + POOLS["Cc"]))
    if r == 4: return chr(rng.choice(FORMAT))
    if r == 5: return "".join(chr(rng.choice(WHITESPACE)) for _ in range(rng.randint(1, 3)))
    if r == 6: return rng.choice(SPECIALS)
    if r == 7: return rng.choice(MOJIBAKE) + rng.choice(["", chr(rng.choice(POOLS["Cn"])), "\ufffd"])
    if r == 8: return _accented(rng)
    if r == 9: return "".join(_pick_range(rng, CJK) for _ in range(rng.randint(1, 5)))
    if r == 10: return "".join(_pick_range(rng, SCRIPTS) for _ in range(rng.randint(1, 8)))
    if r == 11: return _emoji(rng)
    if r == 12: return _long_word(rng)
    if r == 13: return chr(rng.choice(POOLS[rng.choice(["Mn", "Mc", "Me"])]))
    if r == 14: return rng.choice(WORDS).upper() if rng.random() < 0.3 else rng.choice(WORDS)
    return "".join(chr(rng.choice(POOLS[rng.choice(["Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So"])]))
                   for _ in range(rng.randint(1, 3)))

def messy_strings(count, seed):
    """`count` strings, the same for the same seed and Python version; none holds a newline or a surrogate."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        pieces = [_piece(rng) for _ in range(rng.randint(1, 10))]
        s = "".join(p + rng.choice(["", " ", " ", "  ", "\t", "\u00a0", ""]) for p in pieces)
        s = s.replace("\n", " ").replace("\r", " ")
        if s.strip():
            out.append(s)
    return out

if __name__ == "__main__":
    for s in messy_strings(int(sys.argv[1]) if len(sys.argv) > 1 else 10, 1):
        print(repr(s))
