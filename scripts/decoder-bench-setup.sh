# Sourced by the decoder benchmarks (bench-decoder.sh, bench-decoder-train.sh): from the repo root, without the
# environment's OpenBLAS settings, bonsai-bench built, the reference Python in $PY, the fetched SmolLM2 GGUF in
# $GGUF, and the CPU named on stderr.
cd "$(dirname "$0")/.."
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
swift build -c release --product bonsai-bench ${SWIFT_BUILD_FLAGS:-} >/dev/null  # e.g. SWIFT_BUILD_FLAGS='--traits MPI' to keep a test build
PY=${PY:-$HOME/.cache/bonsai-ref/venv/bin/python}
GGUF=${BONSAI_HOME:-$HOME/.cache/bonsai}/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$GGUF" ] || .build/release/bonsai fetch smollm2 >/dev/null
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs); fam=$(grep -m1 "cpu family" /proc/cpuinfo | cut -d: -f2 | xargs)
mod=$(grep -m1 "^model\s" /proc/cpuinfo | cut -d: -f2 | xargs); avx512=$(grep -qm1 avx512f /proc/cpuinfo && echo yes || echo no)
echo "CPU: $cpu family $fam model $mod, AVX-512: $avx512" >&2
