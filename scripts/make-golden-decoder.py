#!/usr/bin/env python3
"""Golden values for Bonsai's decoder support, from transformers 5.24 reading SmolLM2's GGUF.

Run with the reference environment plus gguf 0.19.0 and accelerate 1.15.0
(~/.cache/bonsai-ref/venv/bin/pip install gguf==0.19.0 accelerate==1.15.0), after `bonsai fetch smollm2`
and the data sets (scripts/test.sh fetches them):
    ~/.cache/bonsai-ref/venv/bin/python scripts/make-golden-decoder.py [--tokenizer] [--model]
--tokenizer: Tests/BonsaiTokenizersTests/Fixtures/smollm2-tokenizer-golden.json: ids of every text of the four data
             sets (FNV-1a chunk hashes, as make-golden.py), of the 3000 generated Unicode strings, and of
             explicit cases; the chat template rendered by apply_chat_template.
--model:     Tests/BonsaiModelsTests/Fixtures/smollm2-golden.json: logits on a padded batch, greedy continuations,
             the causal-LM loss and gradients of named weights, per-line scores.
"""
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import importlib.util
spec = importlib.util.spec_from_file_location("mg", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make-golden.py"))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
GGUF_DIR = os.path.join(HOME, "models/smollm2")
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(ROOT, "Tests/BonsaiModelsTests/Fixtures")

CASES = ["The capital of France is", "Hello, world!", "  leading spaces and   multiple   gaps ",
         "In 2024, 3.14159 and 1,000,000 items cost $42.50.", "naïve café — Zürich, Ωμέγα, 日本語のテキスト",
         "Emoji: 😀🚀👍🏽 done", "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
         "def f(x):\n\treturn x**2  # comment\n", "I'm sure they'll say it's what we've done", "tabs\tand\r\nnewlines\n\n\nend",
         "E=mc² and x³, ½ cup, 2²", "Call 555-1234 or 1st 22nd", "", " ", "\n\n", "'s 'S 'll 'LL don't", "a\u00a0b\u2003c\u3000d",
         "<|im_end|><|endoftext|>x<|im_start|>", "<|im_start", "x" * 300]
CONVERSATIONS = [[{"role": "user", "content": "What is 2+2?"}],
                 [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]]

def tokenizer_golden():
    mg = importlib.util.module_from_spec(spec); spec.loader.exec_module(mg)
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_FILE)
    sets = {"polarity": mg.csv_texts(os.path.join(HOME, "data/polarity.csv")),
            "reviews": mg.csv_texts(os.path.join(HOME, "data/reviews.csv")), "bbc": mg.bbc_texts(), "tweets": mg.tweets_texts()}
    out = {"transformers_version": transformers.__version__, "chunk": mg.CHUNK, "sets": {}, "cases": [], "unicode": {}, "chat": []}
    for name, texts in sets.items():
        ids = tok(texts, add_special_tokens=True)["input_ids"]
        lines = [",".join(map(str, i)) + "\n" for i in ids]
        chunks = [mg.fnv1a64("".join(lines[i:i + mg.CHUNK]).encode()) for i in range(0, len(lines), mg.CHUNK)]
        out["sets"][name] = {"count": len(texts), "tokens": sum(map(len, ids)), "chunks": chunks}
    for text in CASES:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        out["cases"].append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
    texts = mg.messy_strings(mg.UNICODE_COUNT, mg.UNICODE_SEED)
    out["unicode"] = {"seed": mg.UNICODE_SEED, "count": len(texts), "ids": tok(texts, add_special_tokens=True)["input_ids"]}
    for conv in CONVERSATIONS:
        for gen in (True, False):
            text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            out["chat"].append({"messages": conv, "add_generation_prompt": gen, "text": text, "ids": tok(text, add_special_tokens=False)["input_ids"]})
    out["special"] = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id, "unk": tok.unk_token_id}
    with open(os.path.join(ROOT, "Tests/BonsaiTokenizersTests/Fixtures/smollm2-tokenizer-golden.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)
    print("wrote smollm2-tokenizer-golden.json")

if __name__ == "__main__":
    args = sys.argv[1:] or ["--tokenizer", "--model"]
    if "--tokenizer" in args: tokenizer_golden()
    if "--model" in args:
        from decoder_golden_model import model_golden
        model_golden(GGUF_DIR, GGUF_FILE, OUT)
