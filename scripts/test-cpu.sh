#!/usr/bin/env bash
# CPU portability checks, run by scripts/test.sh (x86-64 only; skipped elsewhere):
#  1. the portable build (BONSAI_TARGET_CPU=haswell) holds no AVX-512 instruction: its disassembly has no
#     zmm register, no xmm/ymm16-31 and no opmask, so it runs on every AVX2 CPU even when built on a Zen 4/5;
#  2. the start-up check stops a binary compiled for more than the CPU has with one line, never SIGILL
#     (a probe built for x86-64-v4 around the same two C files Bonsai links).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(uname -m)" = x86_64 ] || { echo "test-cpu: not x86-64, nothing to check"; exit 0; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
AVX512='%zmm[0-9]|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|\{%k[1-7]\}'

# The detector must see AVX-512 where there is some, or a clean result would prove nothing.
printf 'void f(float *a) { for (int i = 0; i < 64; i++) a[i] *= 2.0f; }\n' > "$work/wide.c"
clang -O2 -mavx512f -mprefer-vector-width=512 -c "$work/wide.c" -o "$work/wide.o"
objdump -d --no-show-raw-insn "$work/wide.o" | grep -qE "$AVX512" || { echo "test-cpu: the AVX-512 detector found nothing in AVX-512 code"; exit 1; }

echo "test-cpu: building the portable binary (BONSAI_TARGET_CPU=haswell, .build-portable)"
BONSAI_TARGET_CPU=haswell swift build -c release --product bonsai --scratch-path .build-portable >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
bin=.build-portable/release/bonsai
hits=$(objdump -d --no-show-raw-insn "$bin" | grep -cE "$AVX512" || true)
if [ "$hits" != 0 ]; then
  echo "test-cpu: FAIL: the portable build has $hits AVX-512 instructions, e.g.:"
  objdump -d --no-show-raw-insn "$bin" | grep -E "$AVX512" | head -5
  exit 1
fi
# SIMD16 kernels on AVX2 are pairs of 8-wide ymm operations; scalar code would show none.
ymm=$(objdump -d --no-show-raw-insn "$bin" | grep -cE 'v(add|sub|mul|div|max|min)ps\s.*%ymm' || true)
[ "$ymm" -gt 200 ] || { echo "test-cpu: FAIL: the portable build has only $ymm 8-wide float operations: the kernels did not vectorise"; exit 1; }
"$bin" --help >/dev/null
echo "test-cpu: portable build: 0 AVX-512 instructions, $ymm 8-wide float operations, runs"

# A probe compiled for x86-64-v4 (AVX-512) that executes a zmm instruction in main.
cat > "$work/main.c" <<'C'
#include <stdio.h>
int main(void) { __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0" ::: "xmm0"); puts("ran"); return 0; }
C
clang -O2 -march=x86-64-v4 -DBONSAI_TARGET_CPU_NAME=x86-64-v4 -ISources/CBonsaiBuildTarget/include -c Sources/CBonsaiBuildTarget/build_target.c -o "$work/target.o"
clang -O2 -ISources/CBonsaiBuildTarget/include -ISources/CBonsaiCPUCheck/include -c Sources/CBonsaiCPUCheck/cpu_check.c -o "$work/check.o"
clang -O2 -march=x86-64-v4 -c "$work/main.c" -o "$work/main.o"
clang "$work/main.o" "$work/target.o" "$work/check.o" -o "$work/probe"
set +e; "$work/probe" >"$work/out" 2>"$work/err"; status=$?; set -e
if grep -qw avx512f /proc/cpuinfo; then
  [ "$status" = 0 ] && grep -q ran "$work/out" || { echo "test-cpu: FAIL: an AVX-512 CPU refused the x86-64-v4 probe (status $status): $(cat "$work/err")"; exit 1; }
  echo "test-cpu: this CPU has AVX-512: the x86-64-v4 probe ran"
else
  if [ "$status" != 1 ] || grep -q ran "$work/out" || ! grep -q 'needs .*avx512f' "$work/err" || ! grep -q 'BONSAI_TARGET_CPU=haswell' "$work/err" \
     || [ "$(wc -l <"$work/err")" != 1 ]; then
    echo "test-cpu: FAIL: the x86-64-v4 probe on a CPU without AVX-512 ended with status $status (132 = SIGILL), stderr: $(cat "$work/err")"; exit 1
  fi
  echo "test-cpu: this CPU lacks AVX-512: the x86-64-v4 probe stopped with: $(cat "$work/err")"
fi
