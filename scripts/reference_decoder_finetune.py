#!/usr/bin/env python3
"""PyTorch + transformers (+ PEFT for LoRA) reference for a Bonsai decoder fine-tuning run: the run's own
config.json and split.json, the same data encoding (targets on the completion and its eos, or the assistant turns;
long prompts cut in the middle keeping their last 16 tokens), the same batches (Bonsai's length-grouped order,
ported: SplitMix64 shuffles), AdamW without decay on biases and norm weights, linear warm-up/decay, global-norm
clipping; then the test split: token-weighted loss and perplexity, greedy generations scored by rouge-score (with
stemming) and exact match. The model is read from the same GGUF file (dequantised, fp32).
    ~/.cache/bonsai-ref/venv/bin/python scripts/reference_decoder_finetune.py runs/RUN [--threads 2]
(the reference environment of shared/reference/ plus `pip install peft gguf rouge-score==0.1.2`)
Prints one JSON line with the reference's test metrics beside Bonsai's (the run's summary.json), and the
training time and peak RSS (training only; one process)."""
import json, math, os, resource, time
import torch, transformers
from rouge_score import rouge_scorer

from reference_run import load_run

a, cfg, split = load_run()
M64 = (1 << 64) - 1

class SplitMix:
    def __init__(self, seed): self.state = seed & M64
    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
    def shuffle(self, a):
        for i in range(len(a) - 1, 0, -1):
            j = self.next() % (i + 1); a[i], a[j] = a[j], a[i]

def length_grouped(indices, lengths, batch, seed, epoch):
    rng = SplitMix((seed + ((0x5EED * (epoch + 1)) & M64)) & M64)
    order = list(indices); rng.shuffle(order)
    batches = []
    for s in range(0, len(order), batch * 50):
        chunk = sorted(order[s:s + batch * 50], key=lambda i: -lengths[i])
        batches += [chunk[b:b + batch] for b in range(0, len(chunk), batch)]
    rng.shuffle(batches)
    return batches

model_path = cfg["model"]
gdir, gfile = os.path.dirname(model_path), os.path.basename(model_path)
tok = transformers.AutoTokenizer.from_pretrained(gdir, gguf_file=gfile)
model = transformers.AutoModelForCausalLM.from_pretrained(gdir, gguf_file=gfile, dtype=torch.float32)
eos = tok.eos_token_id

rows = [json.loads(l) for l in open(cfg["data"], encoding="utf-8") if l.strip()]
pf, cf = cfg.get("prompt_column") or "prompt", cfg.get("completion_column") or "completion"

def enc(text): return tok(text, add_special_tokens=False)["input_ids"]

def encode(r):
    """(ids, targets, prompt length) as Bonsai's LanguageEncoder makes them."""
    if "messages" in r:
        msgs, segs, done = r["messages"], [], ""
        while True:  # a chat whose last assistant turn cannot fit ends at an earlier one
            ctx = tok.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
            last = tok.apply_chat_template(msgs, tokenize=False)[len(ctx):].removesuffix("\n")
            if len(enc(last)) <= cfg["max_length"] - 1 or sum(m["role"] == "assistant" for m in msgs) <= 1: break
            msgs = msgs[:-2]
        for k, m in enumerate(msgs):
            if m["role"] != "assistant": continue
            ctx = tok.apply_chat_template(msgs[:k], tokenize=False, add_generation_prompt=True)
            turn = tok.apply_chat_template(msgs[:k + 1], tokenize=False)[len(ctx):]
            if turn.endswith("\n"): turn = turn[:-1]
            segs += [(ctx[len(done):], False), (turn, True)]
            done = ctx + turn
        chat = True
    elif pf in r:
        segs, chat = [(r[pf], False), (r[cf], True)], False
    else:
        segs, chat = [(r[cfg.get("text_column") or "text"], True)], False
    ids, tg, final = [], [], 0
    for n, (t, target) in enumerate(segs):
        part = enc(t)
        if n == len(segs) - 1:
            final = len(ids)
            if not chat and eos is not None: part = part + [eos]
        ids += part; tg += [target or cfg["train_on"] == "all"] * len(part)
    if tg: tg[0] = False
    L = cfg["max_length"]
    if len(ids) <= L: return ids, tg, final
    if len(segs) == 1: return ids[:L], tg[:L], 0
    end = len(ids)
    if end - final > L - 1:  # a chat's first assistant turn that cannot fit keeps its start, the context at most half
        assert chat, "a completion longer than max_length: Bonsai refuses it"
        end = final + L - min(final, L // 2)
    keep = L - (end - final); tail = min(16, keep // 2); head = keep - tail
    kept = list(range(head)) + list(range(final - tail, end))
    ids, tg = [ids[i] for i in kept], [tg[i] for i in kept]; tg[0] = False
    return ids, tg, keep

data = [encode(r) for r in rows]
references = {}  # a chat's reference is the assistant turn its encoding ends with, whole even where its end was cut
for i, r in enumerate(rows):
    if "messages" in r:
        x, _, pl = data[i]
        ends = [m["content"] for m in r["messages"] if m["role"] == "assistant"]
        ref = tok.decode(x[pl:], skip_special_tokens=True)
        references[i] = ref if ref in ends else ends[0]  # only a first assistant turn is ever cut
lengths = [len(d[0]) for d in data]

if cfg["method"] == "lora":
    import peft
    l = cfg.get("lora") or {}
    targets = l.get("targets") or ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = peft.get_peft_model(model, peft.LoraConfig(r=l.get("rank", 8), lora_alpha=l.get("alpha", 16), lora_dropout=0.0,
                                                       target_modules=targets, task_type="CAUSAL_LM"))
    # the same initial A as Bonsai's LoRAPlan (RandomSource(seed + 41), one stream per adapter in module order,
    # kaiming-uniform bound 1/sqrt(in)); B starts at 0 on both sides
    def mix64(x):
        z = (x + 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
    import numpy as np
    seed, counter = (cfg["seed"] + 41) & M64, 0
    order = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    mods = dict(model.named_modules())
    for layer in range(model.config.num_hidden_layers):
        for name in order:
            if not any(name.endswith(t) for t in targets): continue
            m = mods[f"base_model.model.model.layers.{layer}.{name}"]
            counter += 1
            key = mix64(seed ^ mix64(counter))
            A = m.lora_A["default"].weight
            i = np.arange(A.numel(), dtype=np.uint64)
            with np.errstate(over="ignore"):
                z = key + i * np.uint64(0xD1B54A32D192ED03)
                z = z + np.uint64(0x9E3779B97F4A7C15)
                z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
                z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
                z = z ^ (z >> np.uint64(31))
            u = (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)
            bound = np.float32(1) / np.float32(np.sqrt(np.float32(A.shape[1])))
            with torch.no_grad():
                A.copy_(torch.from_numpy(((u * np.float32(2) - np.float32(1)) * bound).reshape(A.shape)))
named = [(n, q) for n, q in model.named_parameters() if q.requires_grad]
decay = [q for n, q in named if not (n.endswith(".bias") or n.endswith("norm.weight"))]
nodecay = [q for n, q in named if n.endswith(".bias") or n.endswith("norm.weight")]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": nodecay, "weight_decay": 0.0}],
                        lr=cfg["learning_rate"], betas=(0.9, 0.999), eps=1e-8)
B, acc = cfg["batch_size"], cfg["gradient_accumulation_steps"]
per_epoch = math.ceil(math.ceil(len(split["train"]) / B) / acc)
total = min(per_epoch * cfg["epochs"], cfg.get("max_steps") or 10**9)
warm = math.ceil(total * cfg["warmup_ratio"])
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
pad = tok.pad_token_id if tok.pad_token_id is not None else (eos or 0)

def batch(idx):
    T = max(lengths[i] for i in idx)
    ids = torch.full((len(idx), T), pad, dtype=torch.long); mask = torch.zeros((len(idx), T), dtype=torch.long)
    labels = torch.full((len(idx), T), -100, dtype=torch.long)
    for b, i in enumerate(idx):
        x, tg, _ = data[i]
        ids[b, :len(x)] = torch.tensor(x); mask[b, :len(x)] = 1
        for t in range(1, len(x)):
            if tg[t]: labels[b, t] = x[t]
    return ids, mask, labels

def loss_of(ids, mask, labels):
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1), ignore_index=-100, reduction="sum"), int((labels[:, 1:] != -100).sum())

model.train()
step, t0, losses = 0, time.time(), []
for epoch in range(cfg["epochs"]):
    bs = length_grouped(split["train"], lengths, B, cfg["seed"], epoch)
    for s in range(0, len(bs), acc):
        if step >= total: break
        micro = bs[s:s + acc]
        for mb in micro:
            l, n = loss_of(*batch(mb))
            (l / max(n, 1) / len(micro)).backward()
        if cfg["max_grad_norm"] > 0: torch.nn.utils.clip_grad_norm_([q for _, q in named], cfg["max_grad_norm"])
        opt.step(); sched.step(); opt.zero_grad(); step += 1
        losses.append(float(l) / max(n, 1))
        if step % 10 == 0: print(f"step {step}/{total} loss {losses[-1]:.4f} {time.time() - t0:.0f}s", flush=True)
train_seconds, train_rss = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

model.eval()
test = split["test"]
nll, ntok = 0.0, 0
with torch.no_grad():
    for s in range(0, len(test), 8):
        l, n = loss_of(*batch(test[s:s + 8])); nll += float(l); ntok += n
scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
out = {"loss": nll / ntok, "perplexity": math.exp(nll / ntok), "tokens": ntok, "examples": len(test)}
G = cfg.get("generation_tokens", 32)
if G > 0 and "text" not in rows[0]:
    base = model.merge_and_unload() if cfg["method"] == "lora" else model
    r1 = r2 = rl = em = 0.0
    with torch.no_grad():
        for i in test:
            x, _, pl = data[i]
            ref = rows[i][cf] if pf in rows[i] else references[i]
            g = base.generate(torch.tensor([x[:pl]]), attention_mask=torch.ones(1, pl, dtype=torch.long), max_new_tokens=G, do_sample=False,
                              eos_token_id=eos, pad_token_id=pad)
            pred = tok.decode(g[0, pl:], skip_special_tokens=True).strip()
            sc = scorer.score(ref, pred)
            r1 += sc["rouge1"].fmeasure; r2 += sc["rouge2"].fmeasure; rl += sc["rougeL"].fmeasure; em += pred == ref.strip()
    n = len(test)
    out.update(rouge1=r1 / n, rouge2=r2 / n, rougeL=rl / n, exact_match=em / n)
summary = json.load(open(os.path.join(a.run, "summary.json")))
print(json.dumps({"run": a.run, "method": cfg["method"], "steps": step, "reference": out, "bonsai": summary.get("test"),
                  "reference_train_seconds": train_seconds, "reference_train_peak_rss_mib": train_rss,
                  "reference_first_last_loss": [losses[0], losses[-1]] if losses else None}))
