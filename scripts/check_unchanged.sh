#!/usr/bin/env bash
# Proof that a refactoring changed no result: the tiny study (robustdeep reproduce --profile tiny) run
# with the engine of git revision REV (default: main) and with the working tree, then the two study
# folders compared file by file by scripts/compare_study.py (times, paths, DICOM UIDs and logs masked).
# Usage: bash scripts/check_unchanged.sh [REV]     (about 3 minutes on 2 cores; exit 0 when identical)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
REV="${1:-main}"
PY="$REPO/${ROBUSTDEEP_VENV:-.venv}/bin/python"
WORK="$(mktemp -d)"
cleanup() { git -C "$REPO" worktree remove --force "$WORK/engine" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
git worktree add --quiet --detach "$WORK/engine" "$REV"
cd "$WORK"  # not the repository: each run imports the engine from its PYTHONPATH only
echo "check: the tiny study with the engine of $REV" >&2
PYTHONPATH="$WORK/engine" "$PY" -m RobustDeepLogic reproduce --profile tiny --out "$WORK/before" --progress none >/dev/null
echo "check: the tiny study with the working tree" >&2
PYTHONPATH="$REPO" "$PY" -m RobustDeepLogic reproduce --profile tiny --out "$WORK/after" --progress none >/dev/null
"$PY" "$REPO/scripts/compare_study.py" "$WORK/before" "$WORK/after"
