#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run the README's main job: `robustdeep demo`, the quick study on the
# bundled digital cohort (about 20 minutes on 2 cores; run it again to resume). Extra arguments go to
# `robustdeep demo`, e.g. scripts/demo.sh --out /tmp/demo --device cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ROBUSTDEEP_VENV:-.venv}/bin/activate"
robustdeep demo "$@"
