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
--tiny:      Tests/BonsaiModelsTests/Fixtures/tiny-{llama,qwen2}/: small random checkpoints that transformers writes
             (Qwen2 with q/k/v biases; Llama with GQA, an untied head and Llama-3 rope scaling) with a small
             byte-level BPE tokenizer trained here, and tiny-decoders-golden.json (their logits and ids).
--tiny-gguf: Tests/BonsaiModelsTests/Fixtures/tiny-llama3.gguf: the tiny Llama folder written as llama.cpp's converter
             writes Llama 3 (q/k rows permuted, F32, Llama-3 rope scaling as the rope_freqs.weight divisors), no tokenizer.
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
    import transformers, tokenizers
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
    texts = texts_unicode = mg.messy_strings(mg.UNICODE_COUNT, mg.UNICODE_SEED)
    out["unicode"] = {"seed": mg.UNICODE_SEED, "count": len(texts), "ids": tok(texts, add_special_tokens=True)["input_ids"]}
    for conv in CONVERSATIONS:
        for gen in (True, False):
            text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            out["chat"].append({"messages": conv, "add_generation_prompt": gen, "text": text, "ids": tok(text, add_special_tokens=False)["input_ids"]})
    # the same vocabulary behind the Llama-3 and Qwen2 splits (transformers' GGUF_PRE_TOKENIZER_SPLITS), for the
    # hand-written versions of those regexes
    from tokenizers import Regex, pre_tokenizers
    from transformers.integrations.gguf.gguf_tokenizer_mapping import _LLAMA3_SPLIT, _QWEN2_SPLIT
    out["splits"] = {}
    for name, pattern in [("llama3", _LLAMA3_SPLIT), ("qwen2", _QWEN2_SPLIT)]:
        backend = tokenizers.Tokenizer.from_str(tok.backend_tokenizer.to_str())
        backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                                         pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        entry = {"pattern": pattern, "cases": [], "sets": {}}
        for text in CASES + ["Hello WORLD'S 'Re .dots\tTabs\r\n\r\n  x 12345678 ١٢٣ ½ 3.14", "a\n\n b \n\t\nc"]:
            entry["cases"].append({"text": text, "ids": [e for e in backend.encode(text, add_special_tokens=False).ids]})
        for set_name, texts in list(sets.items()) + [("unicode", texts_unicode)]:
            ids = [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
            lines = [",".join(map(str, i)) + "\n" for i in ids]
            entry["sets"][set_name] = {"count": len(texts), "tokens": sum(map(len, ids)),
                                       "chunks": [mg.fnv1a64("".join(lines[i:i + mg.CHUNK]).encode()) for i in range(0, len(lines), mg.CHUNK)]}
        out["splits"][name] = entry
    out["special"] = {"bos": tok.bos_token_id, "eos": tok.eos_token_id, "pad": tok.pad_token_id, "unk": tok.unk_token_id}
    with open(os.path.join(ROOT, "Tests/BonsaiTokenizersTests/Fixtures/smollm2-tokenizer-golden.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)
    print("wrote smollm2-tokenizer-golden.json")

BATCH = ["The capital of France is", "Hello, world! How are you today?", "def f(x):\n\treturn x**2"]
PROMPTS = ["The capital of France is", "Once upon a time", "The three primary colors are", "def fibonacci(n):",
           "Water boils at", "What is the capital of France?", "Write a haiku about the sea.", "List three fruits.",
           "How do I sort a list in Python?", "Tell me a joke."]
SCORE = ["The capital of France is Paris.", "Hello, world!", "colorless green ideas sleep furiously", "1 2 3 4 5 6 7 8 9 10",
         "naïve café — Zürich"]
GRAD_KEYS = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
             "model.layers.0.self_attn.v_proj.weight", "model.layers.15.mlp.down_proj.weight", "model.layers.29.post_attention_layernorm.weight",
             "model.norm.weight"]
VOCAB_STRIDE = 97

def model_golden():
    import numpy as np, torch, transformers
    torch.manual_seed(0)
    tok = transformers.AutoTokenizer.from_pretrained(GGUF_DIR, gguf_file=GGUF_FILE)
    model = transformers.AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_FILE, dtype=torch.float32).eval()
    # the same weights in float64: the reference both fp32 implementations are measured against
    model64 = transformers.AutoModelForCausalLM.from_pretrained(GGUF_DIR, gguf_file=GGUF_FILE, dtype=torch.float64).eval()
    out = {"transformers_version": transformers.__version__, "vocab_stride": VOCAB_STRIDE, "batches": [], "generate": [], "score": []}
    for side in ("right", "left"):
        tok.padding_side = side
        enc = tok(BATCH, padding=True, return_tensors="pt")
        with torch.no_grad():
            o = model(**enc, output_hidden_states=True)
            logits64 = model64(**enc).logits.numpy()
        logits = o.logits.double().numpy()
        mask = enc["attention_mask"].numpy()
        rows = []
        for b in range(logits.shape[0]):
            for t in range(logits.shape[1]):
                if mask[b, t] == 0: continue
                row = logits[b, t]
                top = np.argsort(-row)[:5]
                rows.append({"b": b, "t": t, "sampled": row[::VOCAB_STRIDE].tolist(), "top_ids": top.tolist(), "top": row[top].tolist(),
                             "sampled64": logits64[b, t, ::VOCAB_STRIDE].tolist()})
        hs = [h.double().numpy() for h in o.hidden_states]
        out["batches"].append({"padding_side": side, "ids": enc["input_ids"].tolist(), "mask": mask.tolist(), "rows": rows,
                               "hidden1_first8": hs[1][:, :, :8].tolist(), "final_first8": hs[-1][:, :, :8].tolist()})
    # loss and gradients on one sentence
    ids = torch.tensor([tok("The capital of France is Paris.")["input_ids"]])
    model.zero_grad()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    params = dict(model.named_parameters())
    grads = {}
    for k in GRAD_KEYS:
        g = params[k].grad.double().reshape(-1).numpy()
        idx = sorted(set(list(range(8)) + list(np.linspace(0, g.size - 1, 40).astype(int)) + list(np.argsort(-np.abs(g))[:8])))
        grads[k] = {"indices": [int(i) for i in idx], "values": g[idx].tolist(), "norm": float(np.linalg.norm(g))}
    loss64 = model64(input_ids=ids, labels=ids).loss
    loss64.backward()
    params64 = dict(model64.named_parameters())
    for k in GRAD_KEYS:
        g64 = params64[k].grad.reshape(-1).numpy()
        idx = grads[k]["indices"]
        grads[k]["values64"] = g64[idx].tolist()
        grads[k]["norm64"] = float(np.linalg.norm(g64))
        g32 = params[k].grad.double().reshape(-1).numpy()
        grads[k]["torch32_relative_error"] = float(np.linalg.norm(g32 - g64) / np.linalg.norm(g64))
    del model64
    out["loss"] = {"ids": ids[0].tolist(), "loss": float(loss), "loss64": float(loss64), "grads": grads}
    # greedy continuations, plain and with the chat template
    tok.padding_side = "left"
    for n, prompt in enumerate(PROMPTS):
        chat = n >= 5
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True) if chat else prompt
        p_ids = tok(text, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            g = model.generate(**p_ids, max_new_tokens=64, do_sample=False)
        new = g[0, p_ids["input_ids"].shape[1]:].tolist()
        out["generate"].append({"prompt": prompt, "chat": chat, "prompt_ids": p_ids["input_ids"][0].tolist(), "new_ids": new,
                                "text": tok.decode(new, skip_special_tokens=True)})
    for line in SCORE:
        ids = torch.tensor([tok(line)["input_ids"]])
        with torch.no_grad():
            l = model(input_ids=ids, labels=ids).loss
        n = ids.shape[1]
        out["score"].append({"text": line, "tokens": n, "nll": float(l) * (n - 1)})
    with open(os.path.join(OUT, "smollm2-golden.json"), "w") as f:
        json.dump(out, f)
    print("wrote smollm2-golden.json")

def tiny_golden():
    import numpy as np, torch, transformers
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    corpus = ["The capital of France is Paris.", "Hello, world! How are you today?", "def f(x):\n\treturn x**2",
              "naïve café — Zürich, 日本語", "Emoji: 😀🚀 done", "1,000,000 items cost $42.50."] * 20
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                                unk_token="<|endoftext|>", pad_token="<|im_end|>")
    texts = ["The capital of France is", "Hello, world! How are you today?", "naïve café — Zürich, 日本語 😀"]
    golden = {}
    for name in ["llama", "qwen2"]:
        torch.manual_seed(1 if name == "llama" else 2)
        if name == "llama":
            config = transformers.LlamaConfig(vocab_size=fast.vocab_size + 0, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                              num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=8192, tie_word_embeddings=False,
                                              rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                            "original_max_position_embeddings": 8192}, rms_norm_eps=1e-5)
            model = transformers.LlamaForCausalLM(config)
        else:
            config = transformers.Qwen2Config(vocab_size=fast.vocab_size, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                              num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True, rms_norm_eps=1e-6)
            model = transformers.Qwen2ForCausalLM(config)
        model = model.eval()
        folder = os.path.join(OUT, "tiny-" + name)
        model.save_pretrained(folder)
        fast.save_pretrained(folder)
        enc = fast(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits.double().numpy()
        golden[name] = {"ids": enc["input_ids"].tolist(), "mask": enc["attention_mask"].tolist(), "logits": logits.round(7).tolist(),
                        "texts": texts, "text_ids": [fast(t)["input_ids"] for t in texts]}
    with open(os.path.join(OUT, "tiny-decoders-golden.json"), "w") as f:
        json.dump(golden, f)
    print("wrote tiny decoders")

def tiny_gguf():
    """The conversion follows convert_hf_to_gguf.py's LlamaModel (permute, generate_extra_tensors)."""
    import math, numpy as np, gguf
    from safetensors.numpy import load_file
    folder = os.path.join(OUT, "tiny-llama")
    c = json.load(open(os.path.join(folder, "config.json")))
    w = load_file(os.path.join(folder, "model.safetensors"))
    heads, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    def permute(x, n):
        return x.reshape(n, 2, x.shape[0] // n // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)
    rope = c["rope_parameters"]
    writer = gguf.GGUFWriter(os.path.join(OUT, "tiny-llama3.gguf"), "llama")
    writer.add_block_count(c["num_hidden_layers"]); writer.add_context_length(c["max_position_embeddings"])
    writer.add_embedding_length(c["hidden_size"]); writer.add_feed_forward_length(c["intermediate_size"])
    writer.add_head_count(heads); writer.add_head_count_kv(kv); writer.add_key_length(d); writer.add_value_length(d)
    writer.add_rope_dimension_count(d); writer.add_rope_freq_base(rope["rope_theta"])
    writer.add_layer_norm_rms_eps(c["rms_norm_eps"]); writer.add_vocab_size(c["vocab_size"])
    names = {"input_layernorm.weight": "attn_norm", "post_attention_layernorm.weight": "ffn_norm", "self_attn.q_proj.weight": "attn_q",
             "self_attn.k_proj.weight": "attn_k", "self_attn.v_proj.weight": "attn_v", "self_attn.o_proj.weight": "attn_output",
             "mlp.gate_proj.weight": "ffn_gate", "mlp.up_proj.weight": "ffn_up", "mlp.down_proj.weight": "ffn_down"}
    base, freqs = rope["rope_theta"], None
    freqs = 1.0 / (base ** (np.arange(0, d, 2, dtype=np.float32) / d))
    factor, low, high, old = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"], rope["original_max_position_embeddings"]
    factors = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < old / high: factors.append(1)
        elif wavelen > old / low: factors.append(factor)
        else:
            smooth = (old / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    writer.add_tensor("rope_freqs.weight", np.array(factors, dtype=np.float32))
    writer.add_tensor("token_embd.weight", w["model.embed_tokens.weight"])
    for l in range(c["num_hidden_layers"]):
        for key, name in names.items():
            x = w[f"model.layers.{l}.{key}"]
            if name == "attn_q": x = permute(x, heads)
            if name == "attn_k": x = permute(x, kv)
            writer.add_tensor(f"blk.{l}.{name}.weight", np.ascontiguousarray(x))
    writer.add_tensor("output_norm.weight", w["model.norm.weight"]); writer.add_tensor("output.weight", w["lm_head.weight"])
    writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
    print("wrote tiny-llama3.gguf, rope_freqs", factors)

if __name__ == "__main__":
    args = sys.argv[1:] or ["--tokenizer", "--model", "--tiny", "--tiny-gguf"]
    if "--tokenizer" in args: tokenizer_golden()
    if "--model" in args: model_golden()
    if "--tiny" in args: tiny_golden()
    if "--tiny-gguf" in args: tiny_gguf()
