#!/usr/bin/env python3
"""PyTorch + transformers side of the benchmark: one configuration per process (peak RSS per config).
    python scripts/bench_torch.py --model DIR --batch 32 --tokens 64 --mode forward|train --threads 2 --steps 5
Same work as bonsai-bench: random ids without padding, a 2-label classification head, cross-entropy,
AdamW (lr 5e-5, weight decay 0.01), dropout on in training; the first step is a warm-up."""
import argparse, json, resource, time
import torch, transformers

p = argparse.ArgumentParser()
p.add_argument("--model"); p.add_argument("--batch", type=int, default=32); p.add_argument("--tokens", type=int, default=64)
p.add_argument("--mode", default="forward"); p.add_argument("--threads", type=int, default=2); p.add_argument("--steps", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = transformers.AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=2)
g = torch.Generator().manual_seed(0)
ids = torch.randint(1000, 21000, (a.batch, a.tokens), generator=g)
mask = torch.ones_like(ids)
labels = torch.arange(a.batch) % 2
opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
times = []
for step in range(a.steps + 1):
    t0 = time.perf_counter()
    if a.mode == "forward":
        model.eval()
        with torch.inference_mode():
            model(input_ids=ids, attention_mask=mask)
    else:
        model.train()
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask)
        loss = torch.nn.functional.cross_entropy(out.logits, labels)
        loss.backward()
        opt.step()
    if step > 0:
        times.append(time.perf_counter() - t0)
med = sorted(times)[len(times) // 2]
print(json.dumps({"impl": "pytorch", "mode": a.mode, "threads": a.threads, "batch": a.batch, "tokens": a.tokens,
                  "seconds": round(med, 4), "tokens_per_s": round(a.batch * a.tokens / med),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))
