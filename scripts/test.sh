#!/usr/bin/env bash
# The test command: install system packages, fetch the real models and data (cached), build, run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/fetch-assets.sh
swift build --build-tests
swift test --skip-build
