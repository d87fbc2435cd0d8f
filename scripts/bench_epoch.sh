#!/usr/bin/env bash
# One full epoch of MiniLM on sentence polarity (2800 train examples, batch 32, max length 64), Bonsai
# then PyTorch + transformers on the same split and options; wall time and peak RSS of each whole process
# (model load, tokenisation, training, dev and test evaluation included).
#   scripts/bench_epoch.sh     (needs the reference venv: shared/reference/setup-reference-env.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$HOME/.cache/bonsai-ref/venv/bin/python}
swift build -c release --product bonsai >/dev/null
RUN=$(mktemp -d)/epoch
/usr/bin/time -f "bonsai wall %e s peak RSS %M KiB" .build/release/bonsai finetune --model minilm --data polarity --epochs 1 \
  --max-length 64 --batch-size 32 --output "$RUN" 2>&1 >/dev/null | grep -E "wall|test" || true
/usr/bin/time -f "pytorch wall %e s peak RSS %M KiB" "$PY" scripts/reference_finetune.py "$RUN" 2>&1 | grep -E "wall|accuracy\"" || true
