#!/usr/bin/env bash
# Distillation instead of pre-training (issue 18's table; shared/METHODS.md section 5). Per task: an MPNet teacher
# fine-tuned on it (seed 42, with training dynamics so that `select --strategy random` can draw the 10% subset of
# its training split), then students trained on the teacher's split (--split-seed 42) for each seed:
#   students: random4 (`bonsai init --like minilm --layers 4`: a random 4-layer BERT of width 384, MiniLM's tokenizer)
#             and minilm (pre-trained MiniLM-L6-H384, fine-tuned the ordinary way: the baseline the paper claims to match)
#   losses:   ce (finetune; with augmentation: distill --alpha-kd 0, the teacher's labels on the augmented texts),
#             kd (distill --loss kd, CE + T^2 KL at T = 4, weights 1 and 1),
#             au (distill --loss align-uniform: CE + alignment + uniformity + KD at T = 4, all weights 1)
#   settings: all (the whole training split), p10 (a random 10% of it), p10aug (the 10% and, for the teacher to label,
#             `bonsai augment --per-example 2 --edits` of it: SmolLM2 paraphrases and token edits)
# Every student trains $EPOCHS epochs at most with early stopping on dev accuracy (patience 3); runs whose summary.json
# exists are skipped, so the script resumes where it stopped. The table (scripts/experiment-distill-pretraining.py):
# test accuracy and macro-F1 (mean and spread over seeds), training wall time, tokens x parameters. Tweets: a stratified
# sample of $TWEETS (default 4000; scripts/sample-tweets.py, seed 0), labels positive / neutral / negative.
#   TASKS="polarity tweets bbc" SEEDS="1 2 3" scripts/experiment-distill-pretraining.sh      (the whole table: many hours)
#   TASKS=polarity SETTINGS=p10 SEEDS=1 EPOCHS=6 scripts/experiment-distill-pretraining.sh   (a first slice)
# Finished runs are appended to docs/results/distill-pretraining-runs.jsonl by the table script (commit it): slices run
# in different sessions add up there.
# BONSAI=path/to/bonsai runs a copy of the binary; BONSAI_COMMIT=<its commit> records where it came from.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BONSAI:-}" ]; then swift build -c release --product bonsai >/dev/null; fi
B=${BONSAI:-.build/release/bonsai}
R=${RUNS:-runs/distill-pretraining}; SEEDS=${SEEDS:-"1 2 3"}; TASKS=${TASKS:-"polarity tweets bbc"}
SETTINGS=${SETTINGS:-"all p10 p10aug"}; STUDENTS=${STUDENTS:-"random4 minilm"}; LOSSES=${LOSSES:-"ce kd au"}
EPOCHS=${EPOCHS:-10}; TEACHER_EPOCHS=${TEACHER_EPOCHS:-3}; MAXLEN=${MAXLEN:-64}; LR=${LR:-1e-4}
mkdir -p "$R"
scripts/describe-run-folder.sh "$R"  # cpu.txt and commit.txt, for the recorders
SPLIT="--split-seed 42 --max-length $MAXLEN --batch-size 32"

for task in $TASKS; do
  T=$R/$task
  mkdir -p "$T"
  D=$task  # tweets: a stratified sample of $TWEETS (38,158 tweets would take hours a run; polarity has 4,000 texts, BBC 2,225)
  if [ "$task" = tweets ]; then
    [ -f "$T/tweets-sample.csv" ] || python3 scripts/sample-tweets.py "$($B fetch tweets | python3 -c "import json,sys; print(json.load(sys.stdin)['path'])")" "$T/tweets-sample.csv" "${TWEETS:-4000}"
    D=$T/tweets-sample.csv
  fi
  [ -f "$T/teacher/summary.json" ] || $B finetune --model mpnet --data "$D" $SPLIT --seed 42 --epochs "$TEACHER_EPOCHS" --learning-rate 5e-5 \
    --record-dynamics --overwrite --output "$T/teacher" >/dev/null 2>"$T/teacher.log"
  [ -f "$T/p10.json" ] || $B select "$T/teacher" --strategy random --fraction 0.1 --seed 42 --output "$T/p10.json" >/dev/null
  if [[ " $SETTINGS " == *" p10aug "* ]] && [ ! -f "$T/aug.txt" ]; then
    $B augment --model smollm2 --data "$D" --per-example 2 --max-new-tokens 64 --edits --train-subset "$T/p10.json" --seed 42 --output "$T/aug.txt" > "$T/aug.json" 2>"$T/aug.log"
  fi
  for seed in $SEEDS; do
    [ -d "$R/random4-s$seed" ] || $B init --like minilm --layers 4 --seed "$seed" --output "$R/random4-s$seed" >/dev/null
    for setting in $SETTINGS; do
      data=(--data "$D"); [ "$setting" != all ] && data+=(--train-subset "$T/p10.json")
      for student in $STUDENTS; do
        model=$student; [ "$student" = random4 ] && model=$R/random4-s$seed
        for loss in $LOSSES; do
          out=$T/$student-$loss-$setting-s$seed
          [ -f "$out/summary.json" ] && continue
          common=("${data[@]}" $SPLIT --seed "$seed" --epochs "$EPOCHS" --patience 3 --learning-rate "$LR" --overwrite --output "$out")
          aug=(); [ "$setting" = p10aug ] && aug=(--unlabeled "$T/aug.txt")
          case $loss in
            ce) if [ "$setting" = p10aug ]; then cmd=(distill --teacher "$T/teacher/best" --student "$model" --alpha-ce 1 --alpha-kd 0 "${aug[@]}")
                else cmd=(finetune --model "$model"); fi ;;
            kd) cmd=(distill --teacher "$T/teacher/best" --student "$model" --alpha-ce 1 --alpha-kd 1 --temperature 4 "${aug[@]}") ;;
            au) cmd=(distill --teacher "$T/teacher/best" --student "$model" --loss align-uniform "${aug[@]}") ;;
          esac
          echo "$(date -u +%H:%M) $task $student $loss $setting seed $seed" >&2
          $B "${cmd[@]}" "${common[@]}" >/dev/null 2>"$out.log" || echo "  failed: see $out.log" >&2
        done
      done
    done
  done
done
python3 scripts/experiment-distill-pretraining.py "$R"
