"""Type aliases shared by the whole engine.

This is the one definition of :data:`PathLike` (a rule that ``Testing/test_layout.py`` checks); other
modules import it from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

#: A file or folder given as a string or a :class:`pathlib.Path`.
PathLike = Union[str, Path]
