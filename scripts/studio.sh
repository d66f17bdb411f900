#!/usr/bin/env bash
# Set up RobustDeep with its studio (the extra robustdeep[studio]: trame-slicer, slicer-core, VTK) and
# open RobustDeep Studio on the demo study. When ./demo holds no finished study yet, the demo runs first
# (scripts/demo.sh, about 15 minutes on 2 CPU cores). Then it serves http://127.0.0.1:${PORT:-8080}/
# until Ctrl-C. On a remote server: ssh -L 8080:127.0.0.1:8080 server, then open that address on the
# laptop. Extra arguments go to `robustdeep studio` (e.g. --host 0.0.0.0, which prints a token).
set -euo pipefail
cd "$(dirname "$0")/.."
export ROBUSTDEEP_EXTRAS="${ROBUSTDEEP_EXTRAS:-test,studio}"
if [ ! -f demo/evaluation/headline.md ]; then
  echo "studio: no finished demo study in ./demo yet: running the demo first (scripts/demo.sh)" >&2
  bash scripts/demo.sh
else
  bash scripts/setup.sh
fi
# shellcheck disable=SC1091
. "${ROBUSTDEEP_VENV:-.venv}/bin/activate"
exec robustdeep studio demo --port "${PORT:-8080}" "$@"
