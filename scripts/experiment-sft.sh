#!/usr/bin/env bash
# Shrink and Fine-Tune vs. knowledge distillation on sentence polarity (issue 5's table). One split for all
# runs (--split-seed 42, 70/10/20); the teacher is trained once (seed 42), every student with each of
# $SEEDS (init of new heads, dropout, data order); the table gives the median test accuracy and the range.
#   SEEDS="1 2 3" EPOCHS=1 scripts/experiment-sft.sh     (about 45 min on 2 cores)
# BONSAI=path/to/bonsai runs a copy of the binary (so rebuilding during the experiment does not disturb it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BONSAI:-}" ]; then for p in bonsai bonsai-bench; do swift build -c release --product $p >/dev/null; done; fi  # one product per call: swift build keeps only the last --product
B=${BONSAI:-.build/release/bonsai}; BENCH=${BONSAI_BENCH:-.build/release/bonsai-bench}
R=${RUNS:-runs/sft}; E=${EPOCHS:-1}; SEEDS=${SEEDS:-"1 2 3"}
COMMON="--data polarity --epochs $E --max-length 64 --batch-size 32 --split-seed 42 --overwrite"
mkdir -p $R
[ -f $R/mpnet12-teacher/summary.json ] || $B finetune --model mpnet $COMMON --seed 42 --output $R/mpnet12-teacher >/dev/null
T=$R/mpnet12-teacher/best
$B shrink --teacher $T --num-layers 3 --output $R/students/mpnet3 >/dev/null
$B shrink --teacher $T --num-layers 6 --output $R/students/mpnet6 >/dev/null
$B shrink --teacher $T --num-layers 3 --random-init --output $R/students/random3 >/dev/null
for s in $SEEDS; do
  C="$COMMON --seed $s"
  [ -f $R/mpnet3-sft-s$s/summary.json ] || $B finetune --model $R/students/mpnet3 $C --output $R/mpnet3-sft-s$s >/dev/null
  [ -f $R/mpnet6-sft-s$s/summary.json ] || $B finetune --model $R/students/mpnet6 $C --output $R/mpnet6-sft-s$s >/dev/null
  [ -f $R/mpnet3-logit-kd-s$s/summary.json ] || $B distill --teacher $T --student $R/students/mpnet3 $C --alpha-ce 0.2 --alpha-kd 0.8 --output $R/mpnet3-logit-kd-s$s >/dev/null
  [ -f $R/mpnet3-hidden-kd-s$s/summary.json ] || $B distill --teacher $T --student $R/students/mpnet3 $C --alpha-ce 0.2 --alpha-kd 0.8 --alpha-hidden 3 --output $R/mpnet3-hidden-kd-s$s >/dev/null
  [ -f $R/mpnet3-pseudo-s$s/summary.json ] || $B distill --teacher $T --student $R/students/mpnet3 $C --alpha-ce 1 --alpha-kd 0 --pseudo-labels --output $R/mpnet3-pseudo-s$s >/dev/null
  [ -f $R/random3-sft-s$s/summary.json ] || $B finetune --model $R/students/random3 $C --output $R/random3-sft-s$s >/dev/null
  [ -f $R/minilm6-s$s/summary.json ] || $B finetune --model minilm $C --output $R/minilm6-s$s >/dev/null
  [ -f $R/minilm6-kd-from-mpnet-s$s/summary.json ] || $B distill --teacher $T --student minilm $C --alpha-ce 0.2 --alpha-kd 0.8 --output $R/minilm6-kd-from-mpnet-s$s >/dev/null
  $B shrink --teacher $R/minilm6-s$s/best --num-layers 3 --output $R/students/minilm3-s$s >/dev/null
  [ -f $R/minilm3-sft-s$s/summary.json ] || $B finetune --model $R/students/minilm3-s$s $C --output $R/minilm3-sft-s$s >/dev/null
done
# accuracy of each initial student on the whole data set, before any training (the "starts > 10 points below" rule)
for st in mpnet3 mpnet6 random3; do $B eval --model $R/students/$st --data polarity --max-length 64 > $R/students/$st.eval.json; done
$B eval --model $T --data polarity --max-length 64 > $R/students/teacher.eval.json
for run in mpnet12-teacher mpnet3-sft-s1 mpnet6-sft-s1 minilm6-s1 minilm3-sft-s1; do
  [ -f $R/$run/tps ] || $BENCH --model $R/$run/best --mode forward --steps 3 | python3 -c "import json,sys; print(json.load(sys.stdin)['tokens_per_s'])" > $R/$run/tps
done
python3 - "$R" "$SEEDS" <<'PY' | tee $R/table.md
import json, statistics, sys
R, seeds = sys.argv[1], sys.argv[2].split()
def load(run): return json.load(open(f"{R}/{run}/summary.json"))
def tps(run): return open(f"{R}/{run}/tps").read().strip()
def acc(name): return json.load(open(f"{R}/students/{name}.eval.json"))["accuracy"]
rows = [
  ("mpnet12-teacher", "MPNet-12 pretrained", "fine-tune", "mpnet12-teacher", None),
  ("mpnet6-sft", "teacher layers 0,2,4,7,9,11", "fine-tune (SFT)", "mpnet6-sft-s1", "mpnet6"),
  ("mpnet3-sft", "teacher layers 0,6,11", "fine-tune (SFT)", "mpnet3-sft-s1", "mpnet3"),
  ("mpnet3-logit-kd", "teacher layers 0,6,11", "CE 0.2 + logit KD 0.8 (T=2)", "mpnet3-sft-s1", "mpnet3"),
  ("mpnet3-hidden-kd", "teacher layers 0,6,11", "CE 0.2 + logit KD 0.8 + hidden MSE 3", "mpnet3-sft-s1", "mpnet3"),
  ("mpnet3-pseudo", "teacher layers 0,6,11", "teacher's labels (pseudo-labels)", "mpnet3-sft-s1", "mpnet3"),
  ("random3-sft", "random", "fine-tune", "mpnet3-sft-s1", "random3"),
  ("minilm6", "MiniLM-6 pretrained", "fine-tune", "minilm6-s1", None),
  ("minilm6-kd-from-mpnet", "MiniLM-6 pretrained", "CE 0.2 + logit KD 0.8 from MPNet-12 (other tokenizer)", "minilm6-s1", None),
  ("minilm3-sft", "fine-tuned MiniLM-6, layers 0,2,5", "fine-tune (SFT)", "minilm3-sft-s1", None),
]
teacher = load("mpnet12-teacher")
print(f"| model | init | training | test accuracy, median of {len(seeds)} (min-max) | accuracy at init (whole data set) | parameters | inference tokens/s (32x64, 2 threads) | training wall time (median) |")
print("|---|---|---|---|---|---|---|---|")
for name, init, how, speedRun, student in rows:
  runs = [name] if name == "mpnet12-teacher" else [f"{name}-s{s}" for s in seeds]
  s = [load(r) for r in runs]
  a = sorted(x["test"]["accuracy"] for x in s)
  wall = statistics.median(x["train_seconds"] for x in s)
  start = f"{acc(student):.4f}" if student else (f"{acc('teacher'):.4f} (fine-tuned)" if name == "mpnet12-teacher" else "-")
  spread = f"{statistics.median(a):.4f} ({a[0]:.4f}-{a[-1]:.4f})" if len(a) > 1 else f"{a[0]:.4f}"
  print(f"| {name} | {init} | {how} | {spread} | {start} | {s[0]['parameters']/1e6:.1f} M | {tps(speedRun)} | {wall:.0f} s |")
PY
