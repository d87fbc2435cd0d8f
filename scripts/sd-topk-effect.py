#!/usr/bin/env python3
"""How much of self-distillation's signal the top-k rows keep (issue 16): for the target tokens of some examples,
the KL divergence between two models' distributions (a 'previous' and a 'current' one: e.g. the base and a
fine-tuned SmolLM2, as consecutive steps differ but larger) at the dynamic rule's temperature, in full and as
Bonsai's coarse KL (top-k tokens of the previous distribution + one bucket for the rest), for several k; and the
bytes a kept token takes.
    [T=1] ~/.cache/bonsai-ref/venv/bin/python scripts/sd-topk-effect.py PREVIOUS_GGUF_OR_DIR CURRENT_DIR DATA.jsonl [N]"""
import json, math, os, sys
import torch, transformers
prev_path, cur_path, data_path = sys.argv[1], sys.argv[2], sys.argv[3]
N = int(sys.argv[4]) if len(sys.argv) > 4 else 24
FIXED_T = float(os.environ["T"]) if os.environ.get("T") else None  # a static temperature instead of the dynamic rule's
torch.set_num_threads(2)
def load(p):
    if p.endswith(".gguf"):
        d, f = os.path.dirname(p), os.path.basename(p)
        return transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval(), transformers.AutoTokenizer.from_pretrained(d, gguf_file=f)
    return transformers.AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32).eval(), transformers.AutoTokenizer.from_pretrained(p)
prev, tok = load(prev_path)
cur, _ = load(cur_path)
rows = [json.loads(l) for l in open(data_path) if l.strip()][:N]
KS = [1, 4, 8, 16, 32, 64, 128, 1024]
full_sum, coarse_sum, tail_sum, n = 0.0, {k: 0.0 for k in KS}, {k: 0.0 for k in KS}, 0
for r in rows:
    p_ids = tok(r["prompt"], add_special_tokens=False)["input_ids"][-96:]
    c_ids = tok(r["completion"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        zp, zc = prev(ids).logits[0, len(p_ids) - 1:-1], cur(ids).logits[0, len(p_ids) - 1:-1]
    for i in range(zp.shape[0]):
        lp = torch.log_softmax(zp[i].double(), -1); pp = lp.exp()
        u = float(-(pp * lp).sum() / math.log(zp.shape[1])); T = FIXED_T or 1 + 3 * (1 - u)  # the dynamic rule's T, T_min 1, T_max 4
        q = torch.softmax(zp[i].double() / T, -1); logq = torch.log_softmax(zp[i].double() / T, -1)
        logp = torch.log_softmax(zc[i].double() / T, -1)
        full_sum += float((q * (logq - logp)).sum())
        order = torch.argsort(zp[i], descending=True)
        for k in KS:
            top = order[:k]; qk = q[top]; r_ = float(1 - qk.sum()); pk = logp[top].exp(); p_rest = float(1 - pk.sum())
            kl = float((qk * (qk.log() - logp[top])).sum()) + (r_ * math.log(r_ / max(p_rest, 1e-300)) if r_ > 0 else 0)
            coarse_sum[k] += kl; tail_sum[k] += r_
        n += 1
print(json.dumps({"tokens": n, "full_kl": full_sum / n, "temperature": FIXED_T or "dynamic (1..4)"}))
print("\n| k | bytes kept per token | mean tail mass r | coarse KL / full KL |\n|---|---|---|---|")
for k in KS:
    print(f"| {k} | {8 * k + 12} | {tail_sum[k] / n:.3f} | {coarse_sum[k] / full_sum:.3f} |")
print(f"| full row ({zp.shape[1]}) | {4 * zp.shape[1]} | 0 | 1 |")
