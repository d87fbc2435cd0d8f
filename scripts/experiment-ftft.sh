#!/usr/bin/env bash
# FTFT vs ERM (issue 6's table): sentence polarity, one split (--split-seed 42, 70/10/20), seed $SEED.
#  - ERM: MPNet-12 fine-tuned on the whole training split for $ERM_EPOCHS epochs.
#  - FTFT: a reference (MiniLM-6, or MiniLM-3 shrunk from the pretrained MiniLM-6) trained $REF_EPOCHS
#    epochs with dynamics; the 33% most ambiguous examples; MPNet-12 on them for one full-data epoch's
#    worth of steps, dev every quarter of it, best checkpoint kept, patience 2.
#  - control (RANDOM_CONTROL=1): the same budget on a random 33%.
# Out of distribution: the movie reviews (same labels; their first 64 tokens, as in training) and 2000
# positive/negative tweets (neutral left out). Besides wall time, the table gives training compute as
# tokens processed x parameters, relative to ERM (the runs share the machine, so wall times are noisy).
# Writes runs/ftft/table.md and copies the MiniLM-6 data map to docs/datamap-polarity-minilm6.svg.
#   scripts/experiment-ftft.sh     (about 45 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BONSAI:-}" ]; then swift build -c release --product bonsai >/dev/null; fi
B=${BONSAI:-.build/release/bonsai}; R=${RUNS:-runs/ftft}; SEED=${SEED:-1}; T=${THREADS:-2}
ERM_EPOCHS=${ERM_EPOCHS:-2}; REF_EPOCHS=${REF_EPOCHS:-3}
COMMON="--data polarity --max-length 64 --batch-size 32 --split-seed 42 --seed $SEED --threads $T"
mkdir -p $R
MINILM=$($B fetch minilm | python3 -c "import json,sys; print(json.load(sys.stdin)['path'])")
[ -d $R/minilm3-base ] || $B shrink --teacher "$MINILM" --num-layers 3 --output $R/minilm3-base >/dev/null
# out-of-distribution sets
TWEETS=$($B fetch tweets | python3 -c "import json,sys; print(json.load(sys.stdin)['path'])")
python3 scripts/sample-tweets.py "$TWEETS" $R/tweets-ood.csv 2000 --binary
timed() { local out=$1; shift; local t0=$(date +%s.%N); "$@" > $out.json; python3 -c "print($(date +%s.%N) - $t0)" > $out.seconds; }
[ -f $R/erm/summary.json ] || timed $R/erm-cmd $B finetune --model mpnet $COMMON --epochs $ERM_EPOCHS --overwrite --output $R/erm
[ -f $R/ftft-minilm6/ftft.json ] || timed $R/ftft-minilm6-cmd $B ftft --reference minilm --main mpnet $COMMON --epochs $REF_EPOCHS --overwrite --output $R/ftft-minilm6
[ -f $R/ftft-minilm3/ftft.json ] || timed $R/ftft-minilm3-cmd $B ftft --reference $R/minilm3-base --main mpnet $COMMON --epochs $REF_EPOCHS --overwrite --output $R/ftft-minilm3
[ "${RANDOM_CONTROL:-0}" = 0 ] || [ -f $R/random/ftft.json ] || timed $R/random-cmd $B ftft --reference minilm --main mpnet $COMMON --epochs $REF_EPOCHS --strategy random --overwrite --output $R/random
for run in erm ftft-minilm6/main ftft-minilm3/main random/main; do
  m=$R/$run/best
  [ -d $m ] || continue
  [ -f $m/ood-reviews.json ] || $B eval --model $m --data reviews --max-length 64 --threads $T > $m/ood-reviews.json
  [ -f $m/ood-tweets.json ] || $B eval --model $m --data $R/tweets-ood.csv --max-length 64 --threads $T > $m/ood-tweets.json
done
mkdir -p docs
cp $R/ftft-minilm6/datamap.svg docs/datamap-polarity-minilm6.svg
python3 - "$R" <<'PY' | tee $R/table.md
import json, sys
R = sys.argv[1]
def j(p): return json.load(open(p))
def ood(run): return j(f"{R}/{run}/best/ood-reviews.json")["accuracy"], j(f"{R}/{run}/best/ood-tweets.json")["accuracy"]
import os
def compute(s): return s["train_tokens_processed"] * s["parameters"]
print("| path | reference (its test accuracy) | main trains on | main steps (best) | test accuracy (ID) | reviews (OOD) | tweets (OOD) | reference time | main time | total time | training compute vs ERM |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
erm = j(f"{R}/erm/summary.json"); rv, tw = ood("erm"); erm_s = float(open(f"{R}/erm-cmd.seconds").read())
print(f"| ERM | - | all {erm['train_examples']} | {erm['steps']} ({erm['best_step']}) | {erm['test']['accuracy']:.4f} | {rv:.4f} | {tw:.4f} | - | {erm_s:.0f} s | {erm_s:.0f} s | 1.00 |")
for name, label in [("ftft-minilm6", "MiniLM-6"), ("ftft-minilm3", "MiniLM-3 (layers 0,2,5 of pretrained MiniLM-6)"), ("random", "MiniLM-6 (not used: random 33%)")]:
    if not os.path.exists(f"{R}/{name}/ftft.json"): continue
    f = j(f"{R}/{name}/ftft.json"); m = j(f"{R}/{name}/main/summary.json"); rv, tw = ood(f"{name}/main")
    ref = f["reference"]; rs = j(f"{R}/{name}/reference/summary.json")
    c = (compute(m) + (compute(rs) if name != "random" else 0)) / compute(erm)
    print(f"| {'FTFT' if name != 'random' else 'random subset'} | {label} ({ref['test_accuracy']:.4f}) | {f['selection']['strategy']} {f['selection']['examples']} | {m['steps']} ({m['best_step']}) | {m['test']['accuracy']:.4f} | {rv:.4f} | {tw:.4f} | {ref['seconds']:.0f} s | {f['main']['seconds']:.0f} s | {f['total_seconds']:.0f} s | {c:.2f} (main {compute(m) / compute(erm):.2f}) |")
PY
