#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the default test suite. Extra arguments go to pytest,
# e.g. scripts/test.sh --run-slow, or scripts/test.sh Testing/test_blending.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ROBUSTDEEP_VENV:-.venv}/bin/activate"
export RD_REQUIRE_ASSETS="${RD_REQUIRE_ASSETS:-1}"
python -m pytest "$@"
