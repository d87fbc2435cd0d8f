#!/usr/bin/env bash
# The test command: install system packages (Open MPI included), build with the MPI trait (the
# data-parallel tests launch `mpirun -np 2 bonsai ...`), fetch the real models and data by name (cached
# under $BONSAI_HOME), run all tests. Tests run on the release build: the kernels under test are the ones
# users run, and the suite takes seconds instead of minutes. scripts/test-cpu.sh then builds the portable
# binary (BONSAI_TARGET_CPU=haswell, default traits: so the build without Open MPI is checked too) and
# fails if it holds AVX-512 code, and checks that a binary built for more than the CPU has stops with one
# line instead of SIGILL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --mpi
swift build -c release --traits MPI --build-tests
.build/release/bonsai fetch minilm mpnet smollm2 polarity reviews bbc tweets >/dev/null
swift test -c release --traits MPI --skip-build
scripts/test-cpu.sh
