#!/usr/bin/env bash
# SIFT vs LoRA vs full fine-tuning vs head only (issue 7's table): MiniLM-6 on sentence polarity and on
# the tweets (3 classes; a stratified sample of $TWEETS (default 4000) examples, so the table runs in about half an hour).
# One split (--split-seed 42), seed $SEED, $EPOCHS epochs, batch 32, max length 64. Learning rates: full
# 5e-5 (the default), SIFT and LoRA 5e-4, head 1e-3 (sparse and low-rank updates want larger steps).
#   scripts/experiment-sparse.sh      (about 30 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BONSAI:-}" ]; then swift build -c release --product bonsai >/dev/null; fi
B=${BONSAI:-.build/release/bonsai}; R=${RUNS:-runs/sparse}; SEED=${SEED:-1}; E=${EPOCHS:-2}; T=${THREADS:-2}; N=${TWEETS:-4000}
mkdir -p $R
TW=$($B fetch tweets | python3 -c "import json,sys; print(json.load(sys.stdin)['path'])")
python3 scripts/sample-tweets.py "$TW" $R/tweets-sample.csv "$N"
for data in polarity tweets; do
  D=$([ $data = tweets ] && echo $R/tweets-sample.csv || echo polarity)
  C="--model minilm --data $D --epochs $E --max-length 64 --batch-size 32 --split-seed 42 --seed $SEED --threads $T --overwrite"
  run() { local name=$1; shift; [ -f $R/$data-$name/summary.json ] || $B finetune $C "$@" --output $R/$data-$name >/dev/null; }
  run full
  run sift-0.5 --method sift --sparsity 0.005 --learning-rate 5e-4
  run sift-1 --method sift --sparsity 0.01 --learning-rate 5e-4
  run sift-5 --method sift --sparsity 0.05 --learning-rate 5e-4
  run lora-8 --method lora --rank 8 --alpha 16 --learning-rate 5e-4
  run lora-16 --method lora --rank 16 --alpha 32 --learning-rate 5e-4
  run head --method head --learning-rate 1e-3
done
python3 - "$R" <<'PY' | tee $R/table.md
import json, os, sys
R = sys.argv[1]
print("| data | method | test accuracy | macro-F1 | trainable parameters | gradient memory | optimizer state | peak RSS | training wall time | delta file |")
print("|---|---|---|---|---|---|---|---|---|---|")
for data in ["polarity", "tweets"]:
    full = json.load(open(f"{R}/{data}-full/summary.json"))
    for name in ["full", "sift-0.5", "sift-1", "sift-5", "lora-8", "lora-16", "head"]:
        s = json.load(open(f"{R}/{data}-{name}/summary.json"))
        delta = next((f"{os.path.getsize(f'{R}/{data}-{name}/best/{f}') / 2**20:.1f} MiB" for f in ["sift_delta.safetensors", "adapter_model.safetensors"]
                      if os.path.exists(f"{R}/{data}-{name}/best/{f}")), "-")
        ratio = s["optimizer_state_bytes"] / full["optimizer_state_bytes"]
        print(f"| {data} | {name} | {s['test']['accuracy']:.4f} | {s['test']['macro_f1']:.4f} | {s['trainable_parameters']:,} ({100 * s['trainable_parameters'] / s['parameters']:.2f}%) "
              f"| {s['gradient_bytes'] / 2**20:.1f} MiB | {s['optimizer_state_bytes'] / 2**20:.1f} MiB ({100 * ratio:.1f}%) | {s['peak_rss_bytes'] / 2**20:.0f} MiB "
              f"| {s['train_seconds']:.0f} s | {delta} |")
PY
