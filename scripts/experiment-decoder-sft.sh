#!/usr/bin/env bash
# Shrink and Fine-Tune for decoders (issue 17's table, the DistilBART table redone on a small LLaMA). The teacher is
# SmolLM2-135M-Instruct fine-tuned on bbc-headlines ($TEACHER_STEPS optimizer steps); the students keep 15, 10 and 6
# of its 30 layers by the spread rule and 15 and 10 by block influence (shrink --select similarity on 64 training
# examples), and each is trained with the same budget ($STEPS optimizer steps of batch 4, lr $LR) on the teacher's
# split (--split-seed 42) with: SFT, logit KD (CE 0.2 + KD 0.8, T = 2, top-32 cache), hidden-state KD (the same + MSE
# 3 on the copied-layer map, states normalised) and pseudo-labels (the teacher's greedy continuations, CE only). The
# 15-layer rows (the students in $MULTI_SEED, default "s15 bi15") run with each of $SEEDS, the others with the first;
# DynSDPB (--self-distill dynamic) against plain SFT for the 15-layer spread student (each of $SEEDS, and once with twice
# the steps, which gives it as many distinct examples as SFT since it repeats half of each batch); a random-init
# 15-layer student as the floor. Every run is skipped when its
# summary.json exists, so the script resumes where it stopped; the teacher's top-k cache and its greedy continuations
# (pseudo-labels) are made once and copied.
#   scripts/experiment-decoder-sft.sh    (the README's table: 200 teacher steps, one epoch of 390 steps at lr 2e-4 for
#                                         each student, seeds 1-3; about 13 h on 2 cores, so run it a slice at a time)
#   STUDENTS="s10 bi10 s6" SEEDS=1 VARIANTS="logit-kd hidden-kd" scripts/experiment-decoder-sft.sh    (one slice)
# Columns: test ROUGE-1/2/L (20 greedy tokens), dev perplexity, parameters, generation tokens/s (batch 1, 64 new tokens
# after a 128-token prompt) and prompt tokens/s (1 x 128) from bonsai-bench on 2 threads (measured once per depth on the
# teacher and the spread students' folders, into $R/speeds/; the block-influence and random students share the shapes), training wall time (the fastest
# of a row's runs: a run that shared the machine only takes longer) and tokens.
# VARIANTS (default "sft logit-kd hidden-kd pseudo dynsdpb random") runs only those rows' trainings.
# Finished runs are appended to docs/results/decoder-sft-runs.jsonl (scripts/record-decoder-sft.py; commit it).
# BONSAI=path/to/bonsai runs a copy of the binary (so rebuilding during the experiment does not disturb it). BONSAI_COMMIT=<its commit> records where it came from.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BONSAI:-}" ]; then for p in bonsai bonsai-bench; do swift build -c release --product $p >/dev/null; done; fi  # one product per call: swift build keeps only the last --product
B=${BONSAI:-.build/release/bonsai}; BENCH=${BONSAI_BENCH:-.build/release/bonsai-bench}
R=${RUNS:-runs/decoder-sft}; SEEDS=${SEEDS:-"1 2 3"}; MULTI_SEED=${MULTI_SEED:-"s15 bi15"}; STEPS=${STEPS:-390}; LR=${LR:-2e-4}; STUDENTS=${STUDENTS:-"s15 s10 s6 bi15 bi10"}
VARIANTS=${VARIANTS:-"sft logit-kd hidden-kd pseudo dynsdpb random"}
COMMON="--data bbc-headlines --max-length 160 --batch-size 4 --split-seed 42 --generation-tokens 20"
mkdir -p $R/students
scripts/describe-run-folder.sh $R  # cpu.txt and commit.txt, for the recorders
[ -f $R/teacher/summary.json ] || $B finetune --model smollm2 $COMMON --seed 42 --learning-rate 5e-5 --max-steps ${TEACHER_STEPS:-200} --overwrite --output $R/teacher >/dev/null
T=$R/teacher/best
for n in 15 10 6; do [ -d $R/students/s$n ] || $B shrink --teacher $T --num-layers $n --output $R/students/s$n > $R/students/s$n.json; done
for n in 15 10; do
  [ -d $R/students/bi$n ] || $B shrink --teacher $T --num-layers $n --select similarity --data bbc-headlines --output $R/students/bi$n > $R/students/bi$n.json
done
[ -d $R/students/random15 ] || $B shrink --teacher $T --num-layers 15 --random-init --output $R/students/random15 >/dev/null

# run NAME STUDENT SEED COMMAND...: one run, skipped when done; distillation runs get the shared teacher cache first
run() {
  local name=$1 student=$2 seed=$3; shift 3
  local out=$R/$name-s$seed
  [ -f $out/summary.json ] && return 0
  rm -rf $out; mkdir -p $out
  for c in teacher_topk.safetensors teacher_generations.jsonl; do [ -f $R/$c ] && cp $R/$c $out/; done
  "$@" --student $R/students/$student $COMMON --seed $seed --learning-rate $LR --max-steps ${RUN_STEPS:-$STEPS} --output $out >/dev/null 2>$out/log.txt
  for c in teacher_topk.safetensors teacher_generations.jsonl; do [ -f $R/$c ] || { [ -f $out/$c ] && cp $out/$c $R/; } || true; done
}
finetune() {  # run() passes --student; finetune reads it as --model
  local args=("$@"); for i in "${!args[@]}"; do [ "${args[$i]}" = "--student" ] && args[$i]="--model"; done; $B finetune "${args[@]}"; }
distill() { $B distill --teacher $T "$@"; }
has() { [[ " $VARIANTS " == *" $1 "* ]]; }
variants() {  # variants STUDENT SEED
  has sft && run $1-sft $1 $2 finetune
  has logit-kd && run $1-logit-kd $1 $2 distill --alpha-ce 0.2 --alpha-kd 0.8 --temperature 2 --top-k 32
  has hidden-kd && run $1-hidden-kd $1 $2 distill --alpha-ce 0.2 --alpha-kd 0.8 --temperature 2 --top-k 32 --alpha-hidden 3 --normalize-hidden
  has pseudo && run $1-pseudo $1 $2 distill --alpha-ce 1 --alpha-kd 0 --pseudo-labels
  return 0
}
first=${SEEDS%% *}
for st in $STUDENTS; do
  if [ $st = s15 ]; then
    for s in $SEEDS; do variants s15 $s; has dynsdpb && run s15-dynsdpb s15 $s finetune --self-distill dynamic; done
    # DynSDPB repeats half of each batch, so at equal steps it sees half the examples: once more with as many distinct ones
    has dynsdpb && RUN_STEPS=$((2 * STEPS)) run s15-dynsdpb-equal s15 $first finetune --self-distill dynamic
    has random && run random15-sft random15 $first finetune
  elif [[ " $MULTI_SEED " == *" $st "* ]]; then
    for s in $SEEDS; do variants $st $s; done
  else
    variants $st $first
  fi
done

# speed of each depth (fp32 HF folders, 2 threads, alone): generation and prompt tokens/s, one file per depth
mkdir -p $R/speeds
for m in teacher:teacher/best s15:students/s15 s10:students/s10 s6:students/s6; do
  n=${m%%:*} d=$R/${m#*:}
  [ -f $R/speeds/$n.json ] || [ ! -d $d ] && continue
  g=$($BENCH --decoder $d --mode generate --batch 1 --tokens 128 --new 64 --threads 2 --steps 3)
  p=$($BENCH --decoder $d --mode prefill --batch 1 --tokens 128 --new 0 --threads 2 --steps 3)
  echo "{\"model\": \"$n\", \"generate\": $g, \"prefill\": $p}" > $R/speeds/$n.json
done

# every finished run goes into docs/results/decoder-sft-runs.jsonl and the speeds into decoder-sft-speed.jsonl (with the
# CPU and the teacher's checksum), so slices of the grid run in different sessions add up; the table printed is that
# of every recorded run, the README's
python3 scripts/record-decoder-sft.py "$R" | tee $R/table.md
