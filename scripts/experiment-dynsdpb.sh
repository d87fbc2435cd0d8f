#!/usr/bin/env bash
# Plain fine-tuning vs static self-distillation (DLB) vs DynSDPB (issue 8's table): MiniLM-6 on sentence
# polarity, on the tweets (3 classes, a stratified sample of $TWEETS examples) and on 10% of the polarity
# training split (low data). Seeds $SEEDS; one split (--split-seed 42). Same number of examples seen and
# optimizer steps for all: plain trains E epochs of full batches; self-distillation E/2 epochs of batches
# that are half repeated (each example twice in a row). Batch 32, max length 64, lr 5e-5.
#   scripts/experiment-dynsdpb.sh     (about 30 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BONSAI:-}" ]; then swift build -c release --product bonsai >/dev/null; fi
B=${BONSAI:-.build/release/bonsai}; R=${RUNS:-runs/dynsdpb}; SEEDS=${SEEDS:-"1 2 3"}; T=${THREADS:-2}; N=${TWEETS:-4000}
mkdir -p $R
TW=$($B fetch tweets | python3 -c "import json,sys; print(json.load(sys.stdin)['path'])")
python3 scripts/sample-tweets.py "$TW" $R/tweets-sample.csv "$N"
for s in $SEEDS; do
  for setting in polarity tweets low; do
    D=polarity; E=2; EXTRA=""
    [ $setting = tweets ] && D=$R/tweets-sample.csv
    if [ $setting = low ]; then
      E=6
      # 10% of the polarity training split, chosen at random once (from seed 1's plain run, which records dynamics)
      [ -f $R/low-10pct.json ] || $B select $R/polarity-plain-s1 --strategy random --fraction 0.1 --seed 7 --output $R/low-10pct.json >/dev/null
      EXTRA="--train-subset $R/low-10pct.json"
    fi
    C="--model minilm --data $D --max-length 64 --batch-size 32 --split-seed 42 --seed $s --threads $T --overwrite $EXTRA"
    [ -f $R/$setting-plain-s$s/summary.json ] || $B finetune $C --epochs $E --record-dynamics --output $R/$setting-plain-s$s >/dev/null
    [ -f $R/$setting-dlb-s$s/summary.json ] || $B finetune $C --epochs $((E / 2)) --method dlb --output $R/$setting-dlb-s$s >/dev/null
    [ -f $R/$setting-dynsdpb-s$s/summary.json ] || $B finetune $C --epochs $((E / 2)) --method dynsdpb --output $R/$setting-dynsdpb-s$s >/dev/null
  done
done
mkdir -p docs
cp $R/polarity-dynsdpb-s1/learning-curve.svg docs/dynsdpb-polarity-curve.svg
python3 - "$R" "$SEEDS" <<'PY' | tee $R/table.md
import json, statistics, sys
R, seeds = sys.argv[1], sys.argv[2].split()
print(f"| setting | training | test accuracy, mean ± sd over {len(seeds)} seeds | min-max | macro-F1 (mean) | steps | examples seen | wall time (mean) |")
print("|---|---|---|---|---|---|---|---|")
names = {"plain": "plain fine-tuning", "dlb": "static self-distillation (DLB: alpha 1, T 3)", "dynsdpb": "DynSDPB (alpha0 1, T 1..4, dynamic)"}
for setting, label in [("polarity", "polarity (2800 train)"), ("tweets", "tweets sample (3 classes)"), ("low", "polarity, 10% of train")]:
    for v in ["plain", "dlb", "dynsdpb"]:
        s = [json.load(open(f"{R}/{setting}-{v}-s{x}/summary.json")) for x in seeds]
        a = [x["test"]["accuracy"] for x in s]
        sd = statistics.stdev(a) if len(a) > 1 else 0
        print(f"| {label} | {names[v]} | {statistics.mean(a):.4f} ± {sd:.4f} | {min(a):.4f}-{max(a):.4f} | {statistics.mean(x['test']['macro_f1'] for x in s):.4f} "
              f"| {s[0]['steps']} | {s[0]['train_examples_processed']} | {statistics.mean(x['train_seconds'] for x in s):.0f} s |")
PY
