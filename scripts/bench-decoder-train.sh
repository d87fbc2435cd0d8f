#!/usr/bin/env bash
# Decoder fine-tuning speed and memory, side by side in one run (one configuration per process, Bonsai and
# PyTorch alternating): a whole optimizer step (forward, backward, AdamW without clipping) on batch 4 x 128 random
# tokens of SmolLM2-135M-Instruct, full fine-tuning and LoRA (r=16, alpha 32, every attention and MLP projection;
# PEFT on the PyTorch side), each also with gradient checkpointing on both sides (+selective: the products' outputs kept,
# the rest recomputed: Bonsai's --selective-checkpointing, PyTorch's selective activation checkpointing policy;
# +checkpointing: whole layers recomputed, transformers' gradient_checkpointing_enable(); +selective+whole15: Bonsai's
# --selective-checkpointing --whole-layers 15, against PyTorch's selective), and Bonsai's LoRA over the base
# kept in the fetched GGUF's Q4_1/Q8_0 blocks (QLoRA's idea; PyTorch has no CPU counterpart). Bonsai computes the
# step as finetune does with --max-grad-norm 0 (each tensor updated when its gradient is complete, the head's
# cross-entropy a block of rows at a time). Median of STEPS (default 4) steps after a warm-up, the same on both sides;
# peak RSS is the process's VmHWM.
# ROUNDS=N runs only issue 16's headline comparison instead, N rounds alternating Bonsai's full fine-tuning with
# --selective-checkpointing, PyTorch's plain full step and PyTorch's selective one (2 threads), and prints each round's
# ratios and their median: on a machine whose speed drifts by 10-20% within minutes, one run of each says little.
# Each round also measures the floor of Bonsai's step (bonsai-bench --step-floor: its matrix products, attention and
# AdamW, each timed alone), the most a step without any other work could do.
#   [THREADS="1 2"] [STEPS=4] [ROUNDS=N] scripts/bench-decoder-train.sh        (needs the reference environment: shared/reference/, + gguf, peft)
set -euo pipefail
source "$(dirname "$0")/decoder-bench-setup.sh"
OUT=$(mktemp)
export STEPS=${STEPS:-4}
bonsai() { .build/release/bonsai-bench --decoder "$GGUF" --mode step --batch 4 --tokens 128 --new 0 --steps $STEPS "$@"; }
label() { sed "s/\"method\": \"\([a-z]*\)\"/\"method\": \"\1$1\"/"; }
if [ -n "${ROUNDS:-}" ]; then
  for r in $(seq "$ROUNDS"); do
    bonsai --method full --threads 2 --fp32 --selective | label +selective | sed "s/^{/{\"round\": $r, /" | tee -a "$OUT"
    .build/release/bonsai-bench --step-floor --threads 2 | sed "s/^{/{\"round\": $r, \"impl\": \"floor\", /" | tee -a "$OUT"
    for m in full full+selective; do "$PY" scripts/bench_decoder_torch.py step 2 4 128 0 $m 2>/dev/null | sed "s/^{/{\"round\": $r, /" | tee -a "$OUT"; done
  done
  python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("\n| round | Bonsai full + selective tokens/s | its floor (bonsai-bench --step-floor) | PyTorch full | PyTorch full + selective | speed / PyTorch's full | / its selective | floor / PyTorch's full | Bonsai peak RSS MiB | PyTorch full's | RSS ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
ratios = []
for r in sorted({x["round"] for x in rows}):
    b, f, s = (next(x for x in rows if x["round"] == r and x["impl"] == i and x.get("method") == m)
               for i, m in [("bonsai", "full+selective"), ("transformers", "full"), ("transformers", "full+selective")])
    floor = next(x for x in rows if x["round"] == r and x["impl"] == "floor")
    ratios.append((b["tokens_per_s"] / f["tokens_per_s"], b["tokens_per_s"] / s["tokens_per_s"], floor["tokens_per_s"] / f["tokens_per_s"],
                   b["peak_rss_mib"] / f["peak_rss_mib"]))
    print(f"| {r} | {b['tokens_per_s']:.1f} | {floor['tokens_per_s']:.1f} | {f['tokens_per_s']:.1f} | {s['tokens_per_s']:.1f} | {ratios[-1][0]:.2f}x | {ratios[-1][1]:.2f}x "
          f"| {ratios[-1][2]:.2f}x | {b['peak_rss_mib']:.0f} | {f['peak_rss_mib']:.0f} | {ratios[-1][3]:.3f} |")
med = [statistics.median(c) for c in zip(*ratios)]
print(f"| median | | | | | {med[0]:.2f}x | {med[1]:.2f}x | {med[2]:.2f}x | | | {med[3]:.3f} |")
PY
  exit 0
fi
for threads in ${THREADS:-2}; do
  for method in full lora; do
    bonsai --method $method --threads $threads --fp32 | tee -a "$OUT"
    "$PY" scripts/bench_decoder_torch.py step $threads 4 128 0 $method 2>/dev/null | tee -a "$OUT"
    for ckpt in selective checkpointing; do
      bonsai --method $method --threads $threads --fp32 --$ckpt | label +$ckpt | tee -a "$OUT"
      "$PY" scripts/bench_decoder_torch.py step $threads 4 128 0 $method+$ckpt 2>/dev/null | tee -a "$OUT"
    done
  done
  # the dial between the two: the first 15 of 30 layers recomputed whole, the rest selectively
  bonsai --method full --threads $threads --fp32 --selective --whole-layers 15 | label +selective+whole15 | tee -a "$OUT"
  bonsai --method lora --threads $threads | label +quantized-base | tee -a "$OUT"
  for ckpt in selective checkpointing; do
    bonsai --method lora --threads $threads --$ckpt | label +quantized-base+$ckpt | tee -a "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def get(impl, method, t): return next((r for r in rows if r["impl"] == impl and r["method"] == method and r["threads"] == t), None)
print("\n| threads | method | Bonsai tokens/s | PyTorch tokens/s (same method) | speed ratio | Bonsai peak RSS MiB | PyTorch peak RSS MiB | RSS ratio | RSS / PyTorch's full |")
print("|---|---|---|---|---|---|---|---|---|")
for t in sorted({r["threads"] for r in rows}):
    full_t = get("transformers", "full", t)
    for method in [m + c for m in ["full", "lora", "lora+quantized-base"] for c in ["", "+selective", "+checkpointing"]] + ["full+selective+whole15"]:
        b = get("bonsai", method, t)
        p = get("transformers", method.replace("+quantized-base", "").replace("+whole15", ""), t)
        if not b or not p or not full_t: continue
        print(f"| {t} | {method} | {b['tokens_per_s']:.1f} | {p['tokens_per_s']:.1f} | {b['tokens_per_s'] / p['tokens_per_s']:.2f}x | {b['peak_rss_mib']:.0f} | {p['peak_rss_mib']:.0f} "
              f"| {b['peak_rss_mib'] / p['peak_rss_mib']:.2f} | {b['peak_rss_mib'] / full_t['peak_rss_mib']:.2f} |")
    print(f"| {t} | (PyTorch full, for the last column) | | {full_t['tokens_per_s']:.1f} | | | {full_t['peak_rss_mib']:.0f} | | |")
PY
