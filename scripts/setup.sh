#!/usr/bin/env bash
# Set up RobustDeep in a virtual environment beside this script's repository, from nothing but Python:
# make .venv, install the engine with its test extras, and prepare the template assets once.
# Idempotent: a second run only checks. Environment: PYTHON (default python3), ROBUSTDEEP_VENV
# (default .venv), ROBUSTDEEP_EXTRAS (default test), ROBUSTDEEP_TORCH (the torch requirement used when
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
if ! python -c "import RobustDeepLogic, importlib.metadata as m; m.version('robustdeep')" 2>/dev/null \
   || [ pyproject.toml -nt "$VENV/.robustdeep-installed" ]; then
  echo "setup: installing robustdeep[$EXTRAS]" >&2
  python -m pip install -q -e ".[$EXTRAS]"
  touch "$VENV/.robustdeep-installed"
fi
robustdeep assets --progress none >/dev/null
echo "setup: ready ($(python -c 'import torch, SimpleITK, numpy; print(f"torch {torch.__version__}, SimpleITK {SimpleITK.Version_VersionString()}, numpy {numpy.__version__}")'))" >&2
