#!/usr/bin/env python3
"""Build the golden JSON fixtures that Bonsai's parity tests compare against.

Run with the reference environment (shared/reference/setup-reference-env.sh: torch 2.13.0+cpu,
transformers 5.24.0, tokenizers 0.23.3) after `bonsai fetch` (scripts/test.sh does it):
    ~/.cache/bonsai-ref/venv/bin/python scripts/make-golden.py
Writes Tests/BonsaiTokenizersTests/Fixtures/{tokenizer,unicode}-golden.json (with --tokenizers, only these) and
Tests/BonsaiModelsTests/Fixtures/{minilm,mpnet}-golden.json; with --distill,
Tests/BonsaiDataTests/Fixtures/distill-golden.json (distillation losses and gradients); with --methods,
Tests/BonsaiDataTests/Fixtures/methods-golden.json (a SIFT step as masked dense AdamW; the DynSDPB loss).
"""
import csv, glob, io, json, math, os, sys
import numpy as np
import torch, transformers, tokenizers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unicode_strings import messy_strings

HOME = os.environ.get("BONSAI_HOME", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "bonsai"))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHUNK = 50

def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h

def csv_texts(path):  # column 2 of a headerless label,text CSV with a BOM
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [row[1] for row in csv.reader(f)]

def tweets_texts():  # the `text` column of the CrowdFlower tweets (with header; mixed-encoding tweets stored as UTF-8)
    with open(os.path.join(HOME, "data/tweets.csv"), encoding="utf-8-sig", newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]

def bbc_texts():
    files = sorted(glob.glob(os.path.join(HOME, "data/bbc/*/*.txt")))
    return [open(f, "rb").read().decode("utf-8", errors="replace") for f in files]

def tokenizer_golden():
    sets = {"polarity": csv_texts(os.path.join(HOME, "data/polarity.csv")),
            "reviews": csv_texts(os.path.join(HOME, "data/reviews.csv")),
            "bbc": bbc_texts(),
            "tweets": tweets_texts()}
    out = {"chunk": CHUNK, "tokenizers_version": tokenizers.__version__, "sets": {}, "cases": []}
    for model in ["minilm", "mpnet"]:
        tok = tokenizers.Tokenizer.from_file(os.path.join(HOME, "models", model, "tokenizer.json"))
        tok.no_truncation(); tok.no_padding()
        for name, texts in sets.items():
            ids = [e.ids for e in tok.encode_batch(texts)]
            lines = [",".join(map(str, i)) + "\n" for i in ids]
            chunks = [fnv1a64("".join(lines[i:i + CHUNK]).encode()) for i in range(0, len(lines), CHUNK)]
            out["sets"][f"{model}/{name}"] = {"count": len(texts), "tokens": sum(map(len, ids)), "chunks": chunks}
        # explicit cases: specials in text, accents, CJK, control chars, pairs with truncation
        cases = [("the movie was a delight from start to finish .", None, None),
                 ("Héllo Wörld! naïve café — “quotes” and 你好世界 🙂\u200b\tTAB", None, None),
                 ("[CLS] <s> </s> <mask> [MASK] <unk> [UNK] literal specials", None, None),
                 ("x" * 120 + " supercalifragilisticexpialidocious", None, None),
                 ("a man is playing a guitar.", "someone plays music.", None),
                 ("the first text is fairly long and keeps going on and on", "short", 12),
                 ("one two three four five six", "seven eight nine ten eleven twelve", 10),
                 ("one two three four five six seven", None, 5)]
        for a, b, m in cases:
            if m: tok.enable_truncation(m, strategy="longest_first")
            else: tok.no_truncation()
            e = tok.encode(a, b) if b is not None else tok.encode(a)
            out["cases"].append({"model": model, "text": a, "pair": b, "max_length": m, "ids": e.ids, "type_ids": e.type_ids})
    return out

UNICODE_COUNT, UNICODE_SEED = 3000, 12

def unicode_golden():
    """Ids of generated messy strings (scripts/unicode_strings.py) for the differential test."""
    texts = messy_strings(UNICODE_COUNT, UNICODE_SEED)
    out = {"tokenizers_version": tokenizers.__version__, "unicode_version": __import__("unicodedata").unidata_version,
           "seed": UNICODE_SEED, "texts": texts, "ids": {}}
    for model in ["minilm", "mpnet"]:
        tok = tokenizers.Tokenizer.from_file(os.path.join(HOME, "models", model, "tokenizer.json"))
        tok.no_truncation(); tok.no_padding()
        out["ids"][model] = [e.ids for e in tok.encode_batch(texts)]
    return out

BATCH = ["the movie was a delight from start to finish .", "a dull, lifeless mess.",
         "Héllo Wörld! CJK 你好 and unusual input… with several more words to make it the longest"]
PAIRS = [("a man is playing a guitar.", "someone plays music."),
         ("the cat sat", "on the mat, purring loudly while the dog slept nearby")]
LABELS = [0, 2, 1]

def pattern(n, amplitude, phase):
    return (amplitude * np.sin(0.37 * np.arange(n, dtype=np.float64) + phase)).astype(np.float32)

def sample(t):
    flat = t.detach().reshape(-1).double().numpy()
    idx = sorted(set(list(range(min(16, flat.size))) + list(np.linspace(0, flat.size - 1, 48).astype(int))))
    return {"indices": [int(i) for i in idx], "values": [float(flat[i]) for i in idx],
            "norm": float(np.linalg.norm(flat)), "shape": list(t.shape)}

def hidden_summary(h, mask):
    h = h.detach().double().numpy()
    return {"shape": list(h.shape), "first16": h[:, :, :16].round(7).tolist(),
            "row_sum": h.sum(-1).tolist(), "row_sumsq": (h * h).sum(-1).tolist()}

def model_golden(name, head):
    folder = os.path.join(HOME, "models", name)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    base = transformers.AutoModel.from_pretrained(folder, add_pooling_layer=False).eval()
    clf_cls = transformers.BertForSequenceClassification if name == "minilm" else transformers.MPNetForSequenceClassification
    clf = clf_cls.from_pretrained(folder, num_labels=3).eval()
    with torch.no_grad():
        for i, (key, shape) in enumerate(head):
            p = dict(clf.named_parameters())[key]
            amp = 0.05 if key.endswith("weight") else 0.01
            p.copy_(torch.from_numpy(pattern(p.numel(), amp, 0.1 * (i + 1))).reshape(p.shape))
    out = {"model": name, "torch": torch.__version__, "transformers": transformers.__version__, "batches": []}
    for kind, texts in [("single", BATCH), ("pair", PAIRS)]:
        enc = tok([t[0] for t in texts], [t[1] for t in texts], padding=True, return_tensors="pt") if kind == "pair" \
            else tok(texts, padding=True, return_tensors="pt")
        entry = {"kind": kind, "texts": texts, "input_ids": enc["input_ids"].tolist(),
                 "attention_mask": enc["attention_mask"].tolist(),
                 "token_type_ids": enc["token_type_ids"].tolist() if "token_type_ids" in enc else None}
        with torch.no_grad():
            h = base(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        entry["hidden"] = hidden_summary(h, enc["attention_mask"])
        entry["mean_pooled"] = pooled.double().numpy().tolist()
        clf.zero_grad()
        logits = clf(**enc).logits
        labels = torch.tensor(LABELS[:logits.shape[0]])
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        entry["labels"] = labels.tolist()
        entry["logits"] = logits.detach().double().numpy().tolist()
        entry["loss"] = float(loss)
        grads = {}
        for key, p in clf.named_parameters():
            if key in GRAD_KEYS[name]:
                grads[key] = sample(p.grad)
        entry["grads"] = grads
        out["batches"].append(entry)
    return out

GRAD_KEYS = {
    "minilm": ["classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
               "bert.encoder.layer.5.output.dense.weight", "bert.encoder.layer.3.intermediate.dense.bias",
               "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.value.bias",
               "bert.embeddings.LayerNorm.weight", "bert.embeddings.position_embeddings.weight",
               "bert.embeddings.token_type_embeddings.weight", "bert.embeddings.word_embeddings.weight"],
    "mpnet": ["classifier.out_proj.weight", "classifier.dense.weight", "mpnet.encoder.layer.11.output.dense.weight",
              "mpnet.encoder.layer.0.attention.attn.q.weight", "mpnet.encoder.layer.0.attention.attn.k.weight",
              "mpnet.encoder.layer.6.attention.LayerNorm.weight", "mpnet.encoder.relative_attention_bias.weight",
              "mpnet.embeddings.position_embeddings.weight", "mpnet.embeddings.word_embeddings.weight"],
}
HEADS = {"minilm": [("classifier.weight", None), ("classifier.bias", None)],
         "mpnet": [("classifier.dense.weight", None), ("classifier.dense.bias", None),
                   ("classifier.out_proj.weight", None), ("classifier.out_proj.bias", None)]}

def write(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, separators=(",", ":"), ensure_ascii=False)
    print("wrote", path, os.path.getsize(path), "bytes")

if __name__ == "__main__" and "--distill" not in sys.argv and "--methods" not in sys.argv:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    write(os.path.join(ROOT, "Tests/BonsaiTokenizersTests/Fixtures/tokenizer-golden.json"), tokenizer_golden())
    write(os.path.join(ROOT, "Tests/BonsaiTokenizersTests/Fixtures/unicode-golden.json"), unicode_golden())
    for name in (["minilm", "mpnet"] if "--tokenizers" not in sys.argv else []):
        write(os.path.join(ROOT, f"Tests/BonsaiModelsTests/Fixtures/{name}-golden.json"), model_golden(name, HEADS[name]))

def distill_golden():
    """Distillation losses and their gradients on fixed inputs (scripts/make-golden.py --distill)."""
    s = torch.tensor(pattern(12, 2.0, 0.3).reshape(3, 4).astype(np.float64), requires_grad=True)
    t = torch.tensor(pattern(12, 3.0, 1.1).reshape(3, 4).astype(np.float64))
    T = 2.0
    kd = T * T * torch.nn.functional.kl_div(torch.log_softmax(s / T, -1), torch.softmax(t / T, -1), reduction="batchmean")
    kd.backward()
    hs = torch.tensor(pattern(30, 1.0, 0.7).reshape(5, 6).astype(np.float64), requires_grad=True)
    ht = torch.tensor(pattern(30, 1.5, 2.0).reshape(5, 6).astype(np.float64))
    mse = torch.nn.functional.mse_loss(hs, ht)
    mse.backward()
    hn = torch.tensor(pattern(30, 1.0, 0.7).reshape(5, 6).astype(np.float64), requires_grad=True)
    ln = torch.nn.functional.layer_norm
    mse_norm = torch.nn.functional.mse_loss(ln(hn, (6,), eps=1e-5), ln(ht, (6,), eps=1e-5))
    mse_norm.backward()
    return {"student": s.detach().tolist(), "teacher": t.tolist(), "temperature": T, "kd": float(kd), "kd_grad": s.grad.tolist(),
            "hidden_student": hs.detach().tolist(), "hidden_teacher": ht.tolist(), "mse": float(mse), "mse_grad": hs.grad.tolist(),
            "mse_norm": float(mse_norm), "mse_norm_grad": hn.grad.tolist()}

if __name__ == "__main__" and "--distill" in sys.argv:
    write(os.path.join(ROOT, "Tests/BonsaiDataTests/Fixtures/distill-golden.json"), distill_golden())

def sift_golden():
    """SIFT = dense torch.optim.AdamW on the masked gradient, kept only at the mask (float32)."""
    w0 = torch.tensor(pattern(30, 0.5, 0.2).reshape(6, 5))
    g_select = torch.tensor(pattern(30, 1.0, 1.3).reshape(6, 5)) * torch.tensor(pattern(30, 1.0, 0.1).reshape(6, 5))
    grads = [torch.tensor(pattern(30, 0.3, 2.0 + i).reshape(6, 5)) for i in range(3)]
    rate, lr, wd = 0.2, 0.01, 0.1
    k = min(int(rate * 30) + 1, 30)
    flat = g_select.abs().reshape(-1)
    order = sorted(range(30), key=lambda i: (-float(flat[i]), i))
    idx = sorted(order[:k])
    mask = torch.zeros(30, dtype=torch.bool); mask[idx] = True; mask = mask.reshape(6, 5)
    p = torch.nn.Parameter(w0.clone())
    opt = torch.optim.AdamW([p], lr=lr, weight_decay=wd)
    for g in grads:
        p.grad = torch.where(mask, g, torch.zeros_like(g)); opt.step()
    expected = torch.where(mask, p.detach(), w0)
    return {"weight": w0.tolist(), "select_grad": g_select.tolist(), "grads": [g.tolist() for g in grads], "rate": rate, "lr": lr,
            "weight_decay": wd, "indices": idx, "expected": expected.tolist()}

def dynsdpb_golden():
    """CE(all) + sum_i alpha_i T_i^2 KL(softmax(z_prev_i/T_i) || softmax(z_i/T_i)) / n_repeated (float64), with
    Bonsai's dynamic rule (shared/METHODS.md): u = H(p_prev)/log C, d = p_prev[y] - max_{c!=y} p_prev[c],
    alpha_i = alpha0 (1-u)(1+d)/2, T_i = Tmin + (Tmax-Tmin)(1-u); and the static rule alpha_i = alpha0, T_i = T."""
    C = 3
    z = torch.tensor(pattern(18, 2.0, 0.4).reshape(6, C).astype(np.float64), requires_grad=True)
    prev = torch.tensor(pattern(12, 2.5, 1.7).reshape(4, C).astype(np.float64))  # the repeated half: rows 0..3 of z
    y = torch.tensor([0, 2, 1, 1, 0, 2])
    alpha0, tmin, tmax, tstatic = 0.8, 1.0, 4.0, 2.0
    pp = torch.softmax(prev, -1)
    u = -(pp * pp.log()).sum(-1) / math.log(C)
    gold = pp.gather(1, y[:4, None]).squeeze(1)
    others = pp.masked_fill(torch.nn.functional.one_hot(y[:4], C).bool(), -1.0).max(-1).values
    d = gold - others
    alpha = alpha0 * (1 - u) * (1 + d) / 2
    temp = tmin + (tmax - tmin) * (1 - u)
    def loss_with(a, t):
        zz = z.detach().clone().requires_grad_(True)
        ce = torch.nn.functional.cross_entropy(zz, y)
        q = torch.softmax(prev / t[:, None], -1)
        logp = torch.log_softmax(zz[:4] / t[:, None], -1)
        kl = (q * (q.log() - logp)).sum(-1)
        loss = ce + (a * t * t * kl).sum() / 4
        loss.backward()
        return float(loss), zz.grad.tolist()
    dyn_loss, dyn_grad = loss_with(alpha, temp)
    st_loss, st_grad = loss_with(torch.full((4,), alpha0, dtype=torch.float64), torch.full((4,), tstatic, dtype=torch.float64))
    return {"logits": z.detach().tolist(), "previous": prev.tolist(), "labels": y.tolist(), "alpha0": alpha0, "t_min": tmin, "t_max": tmax,
            "t_static": tstatic, "uncertainty": u.tolist(), "discrimination": d.tolist(), "alpha": alpha.tolist(), "temperature": temp.tolist(),
            "dynamic_loss": dyn_loss, "dynamic_grad": dyn_grad, "static_loss": st_loss, "static_grad": st_grad}

if __name__ == "__main__" and "--methods" in sys.argv:
    write(os.path.join(ROOT, "Tests/BonsaiDataTests/Fixtures/methods-golden.json"), {"sift": sift_golden(), "dynsdpb": dynsdpb_golden()})
