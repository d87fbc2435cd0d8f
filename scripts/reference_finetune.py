#!/usr/bin/env python3
"""PyTorch + transformers reference for a Bonsai fine-tuning run: same data, same split (the run's
split.json), same hyperparameters (the run's config.json), the same recipe (AdamW without decay on
biases and LayerNorm weights, linear warm-up/decay per optimizer step, global-norm clipping, dropout on,
best dev checkpoint by accuracy evaluated at the same steps). Prints both test accuracies.
    ~/.cache/bonsai-ref/venv/bin/python scripts/reference_finetune.py runs/minilm-polarity [--threads 2]
Supports headerless label,text CSV files (the Pang & Lee sets) and CSV/TSV/JSONL with named columns."""
import copy, csv, json, math, os, random, time
import numpy as np, torch, transformers

from reference_run import load_run

a, cfg, split = load_run()
random.seed(cfg["seed"]); np.random.seed(cfg["seed"] % 2**32)

def load(path):
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jsonl", ".json"):
        rows = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    else:
        with open(path, encoding="utf-8-sig", newline="") as f:
            recs = list(csv.reader(f, delimiter="\t" if ext == ".tsv" else ","))
        head = recs[0]
        if all(not h.replace(".", "").lstrip("-").isdigit() and len(h) <= 40 and " " not in h and h for h in head):
            rows = [dict(zip(head, r)) for r in recs[1:]]
        else:
            rows = [dict(zip([str(i) for i in range(len(head))], r)) for r in recs]
    headerless = "0" in rows[0] and len(rows[0]) == 2
    tc = cfg.get("text_column") or ("1" if headerless else "text")
    lc = cfg.get("label_column") or ("0" if headerless else "label")
    return [r[tc] for r in rows], [str(r[lc]).strip() for r in rows]

texts, labels = load(cfg["data"])
names = sorted(set(labels), key=float) if all(l.lstrip("-").replace(".", "").isdigit() for l in labels) else sorted(set(labels))
y = [names.index(l) for l in labels]
tok = transformers.AutoTokenizer.from_pretrained(cfg["model"])
model = transformers.AutoModelForSequenceClassification.from_pretrained(cfg["model"], num_labels=len(names))
decay = [p for n, p in model.named_parameters() if not (n.endswith(".bias") or "LayerNorm" in n)]
no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias") or "LayerNorm" in n]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg["learning_rate"])
bs, accum = cfg["batch_size"], cfg["gradient_accumulation_steps"]
batches_per_epoch = math.ceil(len(split["train"]) / bs)
steps_per_epoch = math.ceil(batches_per_epoch / accum)
total = min(steps_per_epoch * cfg["epochs"], cfg.get("max_steps") or 10**12)
warm = math.ceil(total * cfg["warmup_ratio"])
sched = transformers.get_linear_schedule_with_warmup(opt, warm, total)

def enc(idx):
    return tok([texts[i] for i in idx], truncation=True, max_length=cfg["max_length"], padding=True, return_tensors="pt")

def evaluate(m, idx):
    m.eval(); correct = 0
    with torch.no_grad():
        for s in range(0, len(idx), 64):
            b = idx[s:s + 64]
            pred = m(**enc(b)).logits.argmax(-1).tolist()
            correct += sum(int(p == y[i]) for p, i in zip(pred, b))
    m.train(); return correct / max(1, len(idx))

step, best, best_state, t0 = 0, -1.0, None, time.time()
model.train()
for epoch in range(cfg["epochs"]):
    order = list(split["train"]); random.Random(cfg["seed"] + epoch).shuffle(order)
    batches = [order[s:s + bs] for s in range(0, len(order), bs)]
    for bi, b in enumerate(batches):
        out = model(**enc(b))
        loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([y[i] for i in b])) / accum
        loss.backward()
        if (bi + 1) % accum and bi + 1 != len(batches): continue
        if cfg["max_grad_norm"] > 0: torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["max_grad_norm"])
        opt.step(); sched.step(); opt.zero_grad(set_to_none=True); step += 1
        end_of_epoch = bi + 1 == len(batches)
        if (cfg["eval_every"] > 0 and step % cfg["eval_every"] == 0) or (cfg["eval_every"] == 0 and end_of_epoch) or step >= total:
            acc = evaluate(model, split["dev"])
            print(f"step {step}: dev accuracy {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)
            if acc > best: best, best_state = acc, copy.deepcopy(model.state_dict())
        if step >= total: break
    if step >= total: break
train_seconds = time.time() - t0
model.load_state_dict(best_state)
ref = evaluate(model, split["test"])
summary = json.load(open(os.path.join(a.run, "summary.json")))
bonsai = summary["test"]["accuracy"]
print(json.dumps({"pytorch_test_accuracy": round(ref, 4), "bonsai_test_accuracy": round(bonsai, 4), "difference_points": round(100 * (bonsai - ref), 2),
                  "pytorch_train_seconds": round(train_seconds, 1), "bonsai_train_seconds": round(summary["train_seconds"], 1)}))
