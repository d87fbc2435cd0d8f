#!/usr/bin/env bash
# describe-run-folder.sh DIR: what the experiment recorders (scripts/results_log.py) read from a run folder, written once
# when an experiment script starts: cpu.txt (the CPU, named as every benchmark figure needs) and commit.txt (the code
# the runs came from: $BONSAI_COMMIT for a copied binary, else the checkout's HEAD). Prints the CPU line.
set -euo pipefail
R=$1
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs), AVX-512: $(grep -qm1 avx512f /proc/cpuinfo && echo yes || echo no)"
echo "$cpu" > "$R/cpu.txt"
[ -f "$R/commit.txt" ] || echo "${BONSAI_COMMIT:-$(git -C "$(dirname "$0")" rev-parse --short HEAD)}" > "$R/commit.txt"
echo "CPU: $cpu"
