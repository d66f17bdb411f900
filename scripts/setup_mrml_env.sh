#!/usr/bin/env bash
# Make .venv-mrml/: an environment of its own for the MRML glue tests (Testing/MRML/).
#
# It holds the `slicer-core` wheel (real vtkMRMLScene, volume, segmentation, table and plot nodes,
# without Qt) and the engine installed without its heavy dependencies (no torch). It must stay apart
# from .venv/: slicer-core's `slicer` package collides with an unrelated PyPI package of that name.
#
# slicer-core is held to the range RobustDeep Studio uses (trame-slicer 2.0 needs
# slicer-core>=5.11.0.6,<5.12), so that the MRML glue (RobustDeep/RobustDeepLib/mrml_*.py), which the
# studio imports too, is tested on the MRML it runs on. SLICER_CORE overrides the requirement.
#
# Usage:  bash scripts/setup_mrml_env.sh            (PYTHON=python3.11 to choose the interpreter)
# Then:   .venv-mrml/bin/python -m pytest Testing/MRML -q -p no:cacheprovider
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MRML_VENV:-$ROOT/.venv-mrml}"
PYTHON="${PYTHON:-python3}"
SLICER_CORE="${SLICER_CORE:-slicer-core>=5.11.0.6,<5.12}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
elif [ ! "$ROOT/pyproject.toml" -nt "$VENV/.robustdeep-installed" ] \
     && "$VENV/bin/python" - "$SLICER_CORE" 2>/dev/null <<'PY'
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
from slicer import vtkMRMLScene  # noqa: F401
import RobustDeepLogic  # noqa: F401
requirement = Requirement(sys.argv[1])
sys.exit(0 if requirement.specifier.contains(version(requirement.name), prereleases=True) else 1)
PY
then
  echo "MRML environment ready (kept): $VENV"
  exit 0
fi
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
# slicer-core: MRML classes; the rest: the engine's dependencies other than torch (all of them: a job
# lacking one is refused before it starts, RobustDeepLib.dependencies) and the test runner.
"$VENV/bin/python" -m pip install --disable-pip-version-check -q \
  "$SLICER_CORE" "packaging" "SimpleITK>=2.2" "numpy>=1.22" "scipy>=1.8" "pyyaml>=5.4" "tqdm>=4.60" "pydicom>=2.3" "matplotlib>=3.5" "pytest>=7"
# The engine, without torch and the other heavy dependencies (the MRML glue never needs them).
"$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps -e "$ROOT"
touch "$VENV/.robustdeep-installed"
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
from slicer import vtkMRMLScene
import SimpleITK, RobustDeepLogic
print("MRML environment ready:", vtkMRMLScene.__module__, "slicer-core", version("slicer-core"),
      "SimpleITK", SimpleITK.Version_VersionString(), "robustdeep", RobustDeepLogic.__version__)
PY
