#!/usr/bin/env bash
# First run on a fresh machine: install system packages, build, then fine-tune MiniLM on sentence
# polarity (both fetched by name, sha256-checked, cached under $BONSAI_HOME) and print test accuracy.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build -c release --product bonsai
.build/release/bonsai finetune --model minilm --data polarity --epochs 3 --max-length 64 --output runs/minilm-polarity --overwrite
