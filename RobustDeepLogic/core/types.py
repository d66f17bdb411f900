"""TODO docstring (RobustDeepLogic.errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

PathLike = Union[str, Path]
