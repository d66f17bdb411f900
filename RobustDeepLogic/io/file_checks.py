"""Checks of a volume file's bytes that ITK's readers do not make, run before ITK reads it.

ITK reads a gzip stream cut short, or a NIfTI file shorter than its header says, without complaint and
fills the missing voxels with zeros; and it reads a NIfTI voxel spacing (``pixdim``) of zero, below
zero or not finite as 1 mm (its metadata shows the substituted value, so the header is read here).
:func:`check_volume_file` refuses such files with an :class:`~RobustDeepLogic.core.errors.InputError`
naming the file. It reads the header of an uncompressed file; a compressed NIfTI file whose gzip
trailer gives the size its header needs costs only its header's decompression (a stream cut short
ends in other bytes but for a chance of 2^-32); any other is streamed through :mod:`gzip` to its end
in chunks (memory stays at one chunk), which finds a stream cut short or corrupt.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Optional, Tuple

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike

#: Bytes decompressed at a time when a gzip stream is checked.
CHUNK_BYTES = 1 << 20


def _header_and_size(f: BinaryIO, path: Path, compressed: bool,
                     patient: Optional[str]) -> Tuple[bytes, int]:
    """The first 540 bytes of the (decompressed) content and the content's size in bytes."""
    if compressed:  # without the gzip magic ITK reads a ``.gz`` file as it is: so do we
        compressed = f.read(2) == b"\x1f\x8b"
        f.seek(0)
    if not compressed:
        return f.read(540), os.fstat(f.fileno()).st_size
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            head = stream.read(540)
        geometry = nifti_header_geometry(head)
        needed = _nifti_bytes(geometry) if geometry is not None else None
        f.seek(-4, os.SEEK_END)  # the trailer's ISIZE: the content's size modulo 2^32
        if needed is not None and struct.unpack("<I", f.read(4))[0] == needed % (1 << 32):
            return head, needed  # the usual case, at the cost of the header's decompression
        f.seek(0)
        size = 0
        with gzip.GzipFile(fileobj=f, mode="rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                size += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"truncated or corrupt gzip stream ({exc})", file=path, patient=patient,
                         hint="copy or export the file again; the data it lacks cannot be recovered "
                         "from it") from None
    return head, size


def nifti_header_geometry(head: bytes) -> Optional[Tuple[Tuple[int, ...], Tuple[float, ...], int, int]]:
    """Dimensions, ``pixdim``, voxel data offset and bits per voxel from a NIfTI-1 or -2 header.

    Parameters
    ----------
    head : bytes
        The first 348 (NIfTI-1) or 540 (NIfTI-2) bytes of the file, decompressed; either byte order.

    Returns
    -------
    tuple or None
        ``(dims, pixdim, vox_offset, bitpix)``: ``dims`` the sizes of the ``dim[0]`` axes (x first),
        ``pixdim`` their spacings as stored (mm for the spatial axes), ``vox_offset`` in bytes;
        None when ``head`` is not a NIfTI header this reads.
    """
    for endian in "<>":
        if len(head) >= 348 and struct.unpack(f"{endian}i", head[:4])[0] == 348:
            dim = struct.unpack(f"{endian}8h", head[40:56])
            bitpix = struct.unpack(f"{endian}h", head[72:74])[0]
            pixdim = struct.unpack(f"{endian}8f", head[76:108])
            offset = struct.unpack(f"{endian}f", head[108:112])[0]
            break
        if len(head) >= 540 and struct.unpack(f"{endian}i", head[:4])[0] == 540:
            bitpix = struct.unpack(f"{endian}h", head[14:16])[0]
            dim = struct.unpack(f"{endian}8q", head[16:80])
            pixdim = struct.unpack(f"{endian}8d", head[104:168])
            offset = struct.unpack(f"{endian}q", head[168:176])[0]
            break
    else:
        return None
    n = dim[0]
    if not 1 <= n <= 7 or not math.isfinite(offset) or bitpix <= 0:
        return None
    return tuple(int(d) for d in dim[1 : n + 1]), tuple(float(p) for p in pixdim[1 : n + 1]), int(offset), \
        int(bitpix)


def _nifti_bytes(geometry: Tuple[Tuple[int, ...], Tuple[float, ...], int, int]) -> Optional[int]:
    """Header and voxel bytes of a NIfTI file (None for a dimension below 1)."""
    dims, _, offset, bitpix = geometry
    return offset + math.prod(dims) * bitpix // 8 if all(d > 0 for d in dims) else None


def check_volume_file(path: PathLike, *, patient: Optional[str] = None) -> None:
    """Refuse a volume file that cannot be read, is cut short, or (NIfTI) has no valid voxel spacing.

    Parameters
    ----------
    path : str or pathlib.Path
        A volume file (any format of :data:`RobustDeepLogic.core.files.VOLUME_SUFFIXES`; the NIfTI
        checks apply to ``.nii`` and ``.nii.gz``, the gzip check to every name ending in ``.gz`` whose
        content starts with the gzip magic bytes).
    patient : str, optional
        Named in error messages.

    Raises
    ------
    InputError
        The file does not exist, cannot be read (permission denied), is a gzip stream that is
        truncated or corrupt, is a NIfTI file shorter than its header says, or is a NIfTI file whose
        spatial ``pixdim`` is zero, below zero or not finite.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise InputError("file not found", file=path, patient=patient) from None
    except PermissionError:
        raise InputError("cannot be read: permission denied", file=path, patient=patient,
                         hint="give your user read permission on the file (chmod u+r)") from None
    except OSError as exc:
        raise InputError(f"cannot be read: {exc.strerror or exc}", file=path, patient=patient) from None
    with f:
        head, size = _header_and_size(f, path, name.endswith(".gz"), patient)
    if not name.endswith((".nii", ".nii.gz")):
        return
    geometry = nifti_header_geometry(head)
    if geometry is None:
        return  # not a header this reads: ITK decides
    dims, pixdim = geometry[:2]
    spacing = pixdim[: min(3, len(dims))]
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"voxel spacing (pixdim) {', '.join(f'{s:g}' for s in spacing)} mm: each must "
                         "be a positive number (ITK would silently read it as 1 mm)", file=path,
                         patient=patient, hint="write the file again with its true voxel size")
    needed = _nifti_bytes(geometry)
    if needed is not None and size < needed:
        raise InputError(f"truncated: {size} bytes of header and voxels, the header needs {needed} "
                         "(ITK would silently read the missing voxels as 0)", file=path,
                         patient=patient, hint="copy or export the file again")
