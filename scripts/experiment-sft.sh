#!/usr/bin/env bash
# Shrink and Fine-Tune vs. knowledge distillation on sentence polarity (issue 5's table), all on the same
# split (seed 42, 70/10/20) with the same options. Writes runs/sft/table.md.
#   EPOCHS=1 scripts/experiment-sft.sh        (about 15 min at 1 epoch on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bonsai --product bonsai-bench >/dev/null
B=.build/release/bonsai; R=runs/sft; E=${EPOCHS:-1}
COMMON="--data polarity --epochs $E --max-length 64 --batch-size 32 --seed ${SEED:-42} --overwrite"
mkdir -p $R
$B finetune --model mpnet $COMMON --output $R/mpnet12-teacher >/dev/null
T=$R/mpnet12-teacher/best
$B shrink --teacher $T --num-layers 3 --output $R/students/mpnet3 >/dev/null
$B shrink --teacher $T --num-layers 6 --output $R/students/mpnet6 >/dev/null
$B shrink --teacher $T --num-layers 3 --random-init --output $R/students/random3 >/dev/null
$B finetune --model $R/students/mpnet3 $COMMON --output $R/mpnet3-sft >/dev/null
$B finetune --model $R/students/mpnet6 $COMMON --output $R/mpnet6-sft >/dev/null
$B distill --teacher $T --student $R/students/mpnet3 $COMMON --alpha-ce 0.2 --alpha-kd 0.8 --output $R/mpnet3-logit-kd >/dev/null
$B distill --teacher $T --student $R/students/mpnet3 $COMMON --alpha-ce 0.2 --alpha-kd 0.8 --alpha-hidden 3 --output $R/mpnet3-hidden-kd >/dev/null
$B distill --teacher $T --student $R/students/mpnet3 $COMMON --alpha-ce 1 --alpha-kd 0 --pseudo-labels --output $R/mpnet3-pseudo >/dev/null
$B finetune --model $R/students/random3 $COMMON --output $R/random3-sft >/dev/null
$B finetune --model minilm $COMMON --output $R/minilm6 >/dev/null
$B shrink --teacher $R/minilm6/best --num-layers 3 --output $R/students/minilm3 >/dev/null
$B finetune --model $R/students/minilm3 $COMMON --output $R/minilm3-sft >/dev/null
{
  echo "| model | init | training | test accuracy | best dev accuracy | parameters | inference tokens/s (32x64, 2 threads) | training wall time |"
  echo "|---|---|---|---|---|---|---|---|"
  for run in mpnet12-teacher mpnet6-sft mpnet3-sft mpnet3-logit-kd mpnet3-hidden-kd mpnet3-pseudo random3-sft minilm6 minilm3-sft; do
    tps=$(.build/release/bonsai-bench --model $R/$run/best --mode forward --steps 3 | python3 -c "import json,sys; print(json.load(sys.stdin)['tokens_per_s'])")
    python3 - "$R/$run" "$run" "$tps" <<'PY'
import json, sys
d, name, tps = sys.argv[1], sys.argv[2], sys.argv[3]
s = json.load(open(d + "/summary.json")); c = json.load(open(d + "/config.json"))
init = {"mpnet12-teacher": "MPNet-12 pretrained", "mpnet6-sft": "teacher layers 0,2,4,7,9,11", "random3-sft": "random"}.get(name,
       "teacher layers 0,6,11" if name.startswith("mpnet3") else ("MiniLM-6 pretrained" if name == "minilm6" else "MiniLM-6 fine-tuned, layers 0,2,5"))
how = "fine-tune" if not c.get("distill") else ("pseudo-labels" if c["distill"]["pseudo_labels"] else
      ("CE 0.2 + logit KD 0.8 (T=2) + hidden MSE 3" if c["distill"]["alpha_hidden"] > 0 else "CE 0.2 + logit KD 0.8 (T=2)"))
print(f"| {name} | {init} | {how} | {s['test']['accuracy']:.4f} | {s['best_dev_accuracy']:.4f} | {s['parameters']/1e6:.1f} M | {tps} | {s['train_seconds']:.0f} s |")
PY
  done
} > $R/table.md
cat $R/table.md
