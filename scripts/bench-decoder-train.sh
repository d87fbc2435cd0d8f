#!/usr/bin/env bash
# Decoder fine-tuning speed and memory, side by side in one run (one configuration per process, Bonsai and
# PyTorch alternating): a whole optimizer step (forward, backward, AdamW) on batch 4 x 128 random tokens of
# SmolLM2-135M-Instruct, full fine-tuning and LoRA (r=16, alpha 32, every attention and MLP projection; PEFT on
# the PyTorch side), and Bonsai's LoRA over the base kept in the fetched GGUF's Q4_1/Q8_0 blocks (QLoRA's idea;
# PyTorch has no CPU counterpart). Median of 2 steps after a warm-up; peak RSS is the process's VmHWM.
#   [THREADS="1 2"] scripts/bench-decoder-train.sh        (needs the reference environment: shared/reference/, + gguf, peft)
set -euo pipefail
source "$(dirname "$0")/decoder-bench-setup.sh"
OUT=$(mktemp)
for threads in ${THREADS:-2}; do
  for method in full lora; do
    .build/release/bonsai-bench --decoder "$GGUF" --mode step --method $method --batch 4 --tokens 128 --new 0 --threads $threads --steps 2 --fp32 | tee -a "$OUT"
    "$PY" scripts/bench_decoder_torch.py step $threads 4 128 0 $method 2>/dev/null | tee -a "$OUT"
  done
  .build/release/bonsai-bench --decoder "$GGUF" --mode step --method lora --batch 4 --tokens 128 --new 0 --threads $threads --steps 2 \
    | sed 's/"impl": "bonsai"/"impl": "bonsai-quantized-base"/' | tee -a "$OUT"
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def get(impl, method, t): return next((r for r in rows if r["impl"] == impl and r["method"] == method and r["threads"] == t), None)
print("\n| threads | method | Bonsai tokens/s | PyTorch tokens/s | speed ratio | Bonsai peak RSS MiB | PyTorch peak RSS MiB | RSS ratio |")
print("|---|---|---|---|---|---|---|---|")
for t in sorted({r["threads"] for r in rows}):
    full_t = get("transformers", "full", t)
    for impl, method, label in [("bonsai", "full", "full"), ("bonsai", "lora", "LoRA r=16"), ("bonsai-quantized-base", "lora", "LoRA r=16 over the Q4_1 base")]:
        b, p = get(impl, method, t), get("transformers", method, t)
        if not b or not p: continue
        print(f"| {t} | {label} | {b['tokens_per_s']:.1f} | {p['tokens_per_s']:.1f} | {b['tokens_per_s'] / p['tokens_per_s']:.2f}x | {b['peak_rss_mib']:.0f} | {p['peak_rss_mib']:.0f} | {b['peak_rss_mib'] / p['peak_rss_mib']:.2f}"
              + (f" ({b['peak_rss_mib'] / full_t['peak_rss_mib']:.2f} of PyTorch's full)" if impl != "bonsai" or method != "full" else "") + " |")
PY
