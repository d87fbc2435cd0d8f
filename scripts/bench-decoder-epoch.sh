#!/usr/bin/env bash
# Decoder fine-tuning on real batches, Bonsai then PyTorch on the same run folder (the same split and batches,
# scripts/reference_decoder_finetune.py): bbc-headlines at --max-length 160, batch 4, full (learning rate 5e-5) and
# LoRA r=16 (5e-4), clipping at 1 (finetune's default), the first STEPS optimizer steps of an epoch (default: the
# whole epoch, 529 steps), no generation. Prints each side's training-loop time, tokens/s and peak RSS (Bonsai:
# summary.json's training_loop_*; PyTorch: its training loop, one process).
# FULL_FLAGS and LORA_FLAGS add Bonsai options to one method's run (the reference reads the run's config, so e.g.
# --max-grad-norm 0 turns clipping off on both sides; --gradient-checkpointing or --quantized-base are Bonsai's alone).
#   [STEPS=100] [OUT=dir] [METHODS="full lora"] [FULL_FLAGS=...] [LORA_FLAGS=...] scripts/bench-decoder-epoch.sh
#   (needs the reference environment, plus peft, gguf and rouge-score==0.1.2 in it)
set -euo pipefail
source "$(dirname "$0")/decoder-bench-setup.sh"
swift build -c release --product bonsai ${SWIFT_BUILD_FLAGS:-} >/dev/null
OUT=${OUT:-$(mktemp -d)}; mkdir -p "$OUT"
METHODS=${METHODS:-full lora}
for method in $METHODS; do
  args=(--model smollm2 --data bbc-headlines --max-length 160 --batch-size 4 --epochs 1 --dev-fraction 0.02 --test-fraction 0.03
        --generation-tokens 0 --eval-every 0 --threads 2 --seed 42 --method "$method" --output "$OUT/$method" --overwrite)
  [ -n "${STEPS:-}" ] && args+=(--max-steps "$STEPS")
  if [ "$method" = lora ]; then args+=(--rank 16 --alpha 32 --learning-rate 5e-4 ${LORA_FLAGS:-})
  else args+=(--learning-rate 5e-5 ${FULL_FLAGS:-}); fi
  .build/release/bonsai finetune "${args[@]}" > "$OUT/$method.out" 2> "$OUT/$method.log"
  "$PY" scripts/reference_decoder_finetune.py "$OUT/$method" --threads 2 > "$OUT/$method.ref" 2> "$OUT/$method.ref.log"
done
python3 - "$OUT" $METHODS <<'PY'
import json, os, sys
out = sys.argv[1]
print("| method | steps | tokens | Bonsai s | PyTorch s | Bonsai tokens/s | PyTorch tokens/s | speed ratio | Bonsai peak RSS MiB | PyTorch peak RSS MiB | RSS ratio | test perplexity Bonsai / PyTorch |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for method in sys.argv[2:]:
    s = json.load(open(os.path.join(out, method, "summary.json")))
    r = json.loads(open(os.path.join(out, method + ".ref")).read().strip().splitlines()[-1])
    tokens = s["train_tokens_processed"]
    bs, ps = s["training_loop_seconds"], r["reference_train_seconds"]
    br, pr = s["training_loop_peak_rss_bytes"] / 2**20, r["reference_train_peak_rss_mib"]
    print(f"| {method} | {s['steps']} | {tokens} | {bs:.0f} | {ps:.0f} | {tokens / bs:.1f} | {tokens / ps:.1f} | {ps / bs:.2f}x | {br:.0f} | {pr:.0f} | {br / pr:.2f} "
          f"| {s['test']['perplexity']:.4f} / {r['reference']['perplexity']:.4f} |")
PY
