"""The ``robustdeep`` command line (entry point :func:`main`)."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from .cliframe import run_command


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(argv)


if __name__ == "__main__":  # python -m RobustDeepLogic.cli
    sys.exit(main())
