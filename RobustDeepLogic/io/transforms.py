"""ITK transform files: the one reader and writer of ``.tfm`` / ``.h5`` files in the engine.

Registration writes a patient's transforms here and prediction reads them back to return to native
space. The files are ITK's own (LPS, the fixed-to-moving convention of ITK registration), which
3D Slicer loads as they are (it converts to RAS on load).
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_path
from RobustDeepLogic.core.types import PathLike


def write_transform(tx: sitk.Transform, path: PathLike) -> Path:
    """Write an ITK transform file (``.tfm`` text or ``.h5``) atomically.

    Parameters
    ----------
    tx : SimpleITK.Transform
        The transform to write.
    path : str or pathlib.Path
        The file; its ending chooses the format (``.tfm`` / ``.txt`` text, ``.h5`` HDF5, ``.mat``).

    Returns
    -------
    pathlib.Path
        ``path``, once complete on disk (written to a temporary name first, then renamed).

    Raises
    ------
    InputError
        The file ending is not an ITK transform format.
    """
    path = Path(path)
    if path.suffix not in (".tfm", ".h5", ".txt", ".mat"):
        raise InputError("unknown transform file type", file=path, hint="use .tfm or .h5")
    with atomic_path(path) as tmp:
        sitk.WriteTransform(tx, str(tmp))
    return path


def read_transform(path: PathLike) -> sitk.Transform:
    """Read an ITK transform file; a single-transform composite is unwrapped.

    Parameters
    ----------
    path : str or pathlib.Path
        An ITK transform file (``.tfm``, ``.txt``, ``.h5``, ``.mat``), as the registration stage writes.

    Returns
    -------
    SimpleITK.Transform
        The transform; a composite holding a single transform is returned as that transform.

    Raises
    ------
    InputError
        The file does not exist or ITK cannot read it (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("transform file not found", file=path)
    try:
        tx = sitk.ReadTransform(str(path))
    except RuntimeError as exc:
        raise InputError(f"cannot read this transform ({str(exc).strip().splitlines()[-1][:160]})",
                         file=path, hint="give an ITK transform file as the registration stage writes") from None
    if tx.GetName() == "CompositeTransform":
        comp = sitk.CompositeTransform(tx)
        if comp.GetNumberOfTransforms() == 1:
            tx = comp.GetNthTransform(0)
    return tx
