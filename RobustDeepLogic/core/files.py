"""Files on disk: the file endings of volume formats, and atomic writes.

The engine writes its outputs through :func:`atomic_path` (or :func:`atomic_write_bytes` /
:func:`atomic_write_text`): the data go to a temporary file beside the destination, which is renamed
over it once complete, so a crash never leaves a half-written file under the final name. Reading and
writing volumes themselves is :mod:`RobustDeepLogic.io.volumes`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

from RobustDeepLogic.core.types import PathLike

#: File name endings that SimpleITK reads and writes for us, longest first.
VOLUME_SUFFIXES: Tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")

#: Formats whose header names a separate data file.
DETACHED_SUFFIXES: Tuple[str, ...] = (".nhdr", ".mhd")


def volume_suffix(path: PathLike) -> Optional[str]:
    """The volume format ending of a file name (``'.nii.gz'``, ``'.nrrd'`` ...).

    Parameters
    ----------
    path : str or pathlib.Path
        A file name or path; only its last component is looked at, case-insensitively.

    Returns
    -------
    str or None
        The matching entry of :data:`VOLUME_SUFFIXES` (lower case), or None when there is none.
    """
    name = Path(path).name.lower()
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return None


def strip_volume_suffix(path: PathLike) -> str:
    """The file name of ``path`` without its volume ending (``'FD.nii.gz'`` -> ``'FD'``).

    Parameters
    ----------
    path : str or pathlib.Path
        A file name or path.

    Returns
    -------
    str
        The last component of ``path`` without its volume ending; the whole name when it has none.
    """
    name = Path(path).name
    suffix = volume_suffix(name)
    return name[: -len(suffix)] if suffix else name


# --------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Context manager: a temporary path beside ``path``, renamed over ``path`` on success.

    The temporary file is created empty in ``path``'s folder (made if missing), hidden (its name
    starts with a dot; :data:`STALE_TEMPORARY` matches it) and with ``path``'s ending, so that
    writers that choose a format by ending work. On leaving the block it gets the usual permissions
    (``0o666`` less the umask) and replaces ``path`` in one rename. On an exception it is removed
    and ``path`` is untouched.

    Parameters
    ----------
    path : str or pathlib.Path
        The final destination.

    Yields
    ------
    pathlib.Path
        The temporary file to write to.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = volume_suffix(path) or "".join(path.suffixes[-1:])
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


#: The name of a temporary file of :func:`atomic_path` (``.FD.nii.gz.k3j_x9q2.tmp.nii.gz``), and of a
#: staging folder of ``tempfile.mkdtemp(prefix=f".{name}.")`` (``.FD.k3j_x9q2``), as a kill leaves them.
STALE_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\..*)?$")
STALE_STAGING = re.compile(r"^\..+\.[a-z0-9_]{8}$")


def remove_stale_temporaries(folder: PathLike) -> List[Path]:
    """Remove what interrupted atomic writes left under ``folder``: for resuming in a folder one owns.

    :func:`atomic_path` removes its temporary file when the block fails, but a killed process leaves
    it, and a staging folder too (:data:`STALE_TEMPORARY`, :data:`STALE_STAGING`). Call this only
    when no other process writes under ``folder``.

    Parameters
    ----------
    folder : str or pathlib.Path
        The folder, searched with its sub-folders; nothing happens when it does not exist.

    Returns
    -------
    list of pathlib.Path
        The files and staging folders removed.
    """
    removed: List[Path] = []
    for root, dirs, files in os.walk(folder):
        for name in files:
            if STALE_TEMPORARY.match(name):
                (Path(root) / name).unlink(missing_ok=True)
                removed.append(Path(root) / name)
        for name in [d for d in dirs if STALE_STAGING.match(d)]:
            shutil.rmtree(Path(root) / name, ignore_errors=True)
            removed.append(Path(root) / name)
            dirs.remove(name)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write bytes to a file atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or pathlib.Path
        The destination; its folder is made if missing.
    data : bytes
        The content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write text to a file atomically, encoded as UTF-8 (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or pathlib.Path
        The destination; its folder is made if missing.
    text : str
        The content.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """The JSON form of values ``json.dumps`` does not know: paths, NumPy scalars and arrays.

    Pass it as ``json.dumps(data, default=json_default)``.

    Parameters
    ----------
    value : object
        A value that ``json`` cannot serialise itself.

    Returns
    -------
    str, int, float, bool or list
        ``str(value)`` for a path, the Python scalar for a NumPy scalar, nested lists for an array.

    Raises
    ------
    TypeError
        For any other type (as ``json.dumps`` expects of a ``default`` function).
    """
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def safe_name(name: str) -> str:
    """``name`` as a file name on every system: letters, digits, ``-``, ``_`` and ``.`` kept, the rest ``_``.

    Parameters
    ----------
    name : str
        A patient id, task or scenario name (anything ``str()`` accepts).

    Returns
    -------
    str
        The same length as ``str(name)``; ``"P 01/a"`` becomes ``"P_01_a"``.
    """
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))

