#!/usr/bin/env bash
# Set up RobustDeep in a virtual environment beside this script's repository, from nothing but Python:
# make .venv, install the engine with its test extras, and prepare the template assets once.
# Idempotent: a second run only checks. Environment: PYTHON (default python3), ROBUSTDEEP_VENV
# (default .venv), ROBUSTDEEP_EXTRAS (default test; scripts/test.sh asks for test,studio), ROBUSTDEEP_TORCH (the torch requirement used when
# torch is missing; default: a release range this project is tested with, whose CPU build is found
# first on machines that carry one).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${ROBUSTDEEP_VENV:-.venv}"
EXTRAS="${ROBUSTDEEP_EXTRAS:-test}"
TORCH="${ROBUSTDEEP_TORCH:-torch>=2.1,<2.14}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if ! python -c "import torch" 2>/dev/null; then
  echo "setup: installing $TORCH" >&2
  python -m pip install -q "$TORCH"
fi
# Reinstall when the package is missing, pyproject.toml changed, or an extra not installed yet is asked
# for (the marker file holds the extras installed so far; the new install keeps them all).
MARKER="$VENV/.robustdeep-installed"
ALL_EXTRAS="$(python - "$EXTRAS" "$(cat "$MARKER" 2>/dev/null || true)" <<'PY'
import sys
asked = [e for e in sys.argv[1].split(",") if e]
had = [e for e in sys.argv[2].split(",") if e]
print(",".join(dict.fromkeys(had + asked)))
PY
)"
if ! python -c "import RobustDeepLogic, importlib.metadata as m; m.version('robustdeep')" 2>/dev/null \
   || [ pyproject.toml -nt "$MARKER" ] || [ "$(cat "$MARKER" 2>/dev/null || true)" != "$ALL_EXTRAS" ]; then
  echo "setup: installing robustdeep[$ALL_EXTRAS]" >&2
  python -m pip install -q -e ".[$ALL_EXTRAS]"
  printf '%s' "$ALL_EXTRAS" > "$MARKER"
fi
robustdeep assets --progress none >/dev/null
echo "setup: ready ($(python -c 'import torch, SimpleITK, numpy; print(f"torch {torch.__version__}, SimpleITK {SimpleITK.Version_VersionString()}, numpy {numpy.__version__}")'))" >&2
