#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the default test suite; then the MRML glue tests (Testing/MRML) in
# their own environment .venv-mrml (scripts/setup_mrml_env.sh: the slicer-core wheel, whose `slicer`
# package must not share an environment with the registry's unrelated `slicer`). Extra arguments go to
# both pytest runs, e.g. scripts/test.sh -q, scripts/test.sh --run-slow.
# RD_SKIP_MRML=1 skips the MRML tests; RD_REQUIRE_MRML=1 (CI) makes a failed MRML set-up an error
# instead of a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
# The studio's browser tests (Testing/test_studio_browser.py) need the studio extra, Playwright (the
# test extra; it drives a browser, and downloads none) and the system's Chromium. As root, Chromium is
# installed from the Debian packages; otherwise those tests skip with the reason (RD_REQUIRE_STUDIO=1,
# as in CI, turns the skip into an error).
export ROBUSTDEEP_EXTRAS="${ROBUSTDEEP_EXTRAS:-test,studio}"
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && [ -z "${RD_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing Chromium (Debian package chromium) for the studio's browser tests" >&2
    apt-get install -y -q chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
      || echo "test: WARNING: could not install Chromium; the studio's browser tests will skip" >&2
  else
    echo "test: no Chromium here (apt-get install chromium, or RD_CHROMIUM=/path/to/chrome):" \
         "the studio's browser tests will skip" >&2
  fi
fi
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${ROBUSTDEEP_VENV:-.venv}/bin/activate"
export RD_REQUIRE_ASSETS="${RD_REQUIRE_ASSETS:-1}"
python -m pytest "$@"
deactivate
if [ "${RD_SKIP_MRML:-0}" = "1" ]; then
  echo "test: MRML glue tests skipped (RD_SKIP_MRML=1)" >&2
  exit 0
fi
if ! bash scripts/setup_mrml_env.sh >&2; then
  if [ "${RD_REQUIRE_MRML:-0}" = "1" ]; then
    echo "test: could not set up .venv-mrml (slicer-core)" >&2
    exit 1
  fi
  echo "test: WARNING: no slicer-core environment here; the MRML glue tests did not run" >&2
  exit 0
fi
MRML_VENV="${MRML_VENV:-.venv-mrml}"
"$MRML_VENV/bin/python" -m pytest Testing/MRML -p no:cacheprovider "$@"
