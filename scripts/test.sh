#!/usr/bin/env bash
# The test command: install system packages, fetch the real models and data (cached under
# $BONSAI_HOME), build, run all tests. Tests run on the release build: the kernels under test are the
# ones users run, and the suite takes seconds instead of minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-assets.sh
swift build -c release --build-tests
swift test -c release --skip-build
