"""Whole-volume inference with a 2D network: axial slices in batches, mixed precision on CUDA.

:func:`predict_array` applies a network to a scaled ``[C, z, y, x]`` array, a batch of axial slices at
a time, optionally only in the head's bounding box (plus the receptive radius, so the head voxels get
what full slices give them). :func:`autocast_dtype` chooses the mixed-precision dtype. The network is
in :mod:`RobustDeepLogic.network.model`; loading a run's fold networks and predicting volumes in
physical units is :mod:`RobustDeepLogic.predict`.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from RobustDeepLogic.network.model import RECEPTIVE_RADIUS


def autocast_dtype(device: torch.device, amp: str = "auto") -> "torch.dtype | None":
    """The mixed-precision dtype for ``amp`` (``auto``/``bf16``/``fp16``/``off``) on ``device``.

    ``auto``: bfloat16 on a CUDA device that supports it, else float16 on CUDA, and none on the CPU
    (bf16 gains nothing on CPUs without AMX; docs/network.md, docs/baselines.md).

    Parameters
    ----------
    device : torch.device
        The device the network runs on; only CUDA devices get mixed precision.
    amp : str, optional
        Case-insensitive. ``'off'`` (or ``'false'``, ``'none'``, ``'no'``): full precision;
        ``'fp16'``: float16; ``'bf16'``: bfloat16 (not checked for support); anything else, as
        ``'auto'`` (default): bfloat16 where the CUDA device supports it, else float16.

    Returns
    -------
    torch.dtype or None
        The autocast dtype, or None for float32 (always None on a non-CUDA device).
    """
    amp = str(amp).lower()
    if device.type != "cuda" or amp in ("off", "false", "none", "no"):
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@torch.inference_mode()
def predict_array(
    model: nn.Module,
    inputs: np.ndarray,
    *,
    batch_size: int = 4,
    device: "torch.device | str" = "cpu",
    amp: str = "auto",
    channels_last: bool = True,
    slices: "Sequence[int] | None" = None,
    box: "Tuple[int, int, int, int] | None" = None,
    head: "np.ndarray | None" = None,
    margin: int = RECEPTIVE_RADIUS,
) -> np.ndarray:
    """Apply a 2D network to a volume slice by slice, ``batch_size`` axial slices at a time.

    Runs under ``torch.inference_mode`` and puts ``model`` in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        A 2D network mapping ``[N, C, H, W]`` to ``[N, K, H, W]`` (any ``H, W``); channel 0 of its
        output is kept. It must already be on ``device``.
    inputs : numpy.ndarray
        float32 ``[C, z, y, x]`` in scaled units.
    batch_size : int, optional
        Axial slices per forward pass (default 4).
    device : torch.device or str, optional
        Where the batches are sent (default ``'cpu'``).
    amp : str, optional
        Mixed precision, as :func:`autocast_dtype` reads it (default ``'auto'``: none on the CPU).
    channels_last : bool, optional
        Send the batches in channels-last memory format (default True).
    slices : sequence of int, optional
        Axial slices to predict (default all, or the head's slices with ``head``); the others are 0.
    box : tuple of int, optional
        ``(y0, y1, x0, x1)`` (exclusive ends): predict only this in-plane box (the rest stays 0); a
        crop around the head saves time (the network is fully convolutional).
    head : numpy.ndarray, optional
        bool ``[z, y, x]``: predict each batch of slices only in the bounding box of their head voxels
        plus ``margin`` pixels, within ``box`` if given (the rest stays 0; a batch without head voxels
        is skipped). With ``margin >= RECEPTIVE_RADIUS`` the head voxels get exactly the values a
        full-slice prediction gives them, at a fraction of the cost (small heads near the vertex and
        the base cost little).
    margin : int, optional
        Pixels added around the head's bounding box; default
        :data:`~RobustDeepLogic.network.model.RECEPTIVE_RADIUS` (45).

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` in the target's scaled units; 0 where nothing was predicted.
    """

    device = torch.device(device)
    model.eval()
    c, nz, ny, nx = inputs.shape
    full = box if box is not None else (0, ny, 0, nx)
    out = np.zeros((nz, ny, nx), np.float32)
    if slices is not None:
        zs = [int(z) for z in slices]
    elif head is not None:
        zs = [int(z) for z in np.flatnonzero(head.any(axis=(1, 2)))]
    else:
        zs = list(range(nz))
    dtype = autocast_dtype(device, amp)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for b in range(0, len(zs), max(1, int(batch_size))):
        chunk = zs[b:b + batch_size]
        y0, y1, x0, x1 = full
        if head is not None:
            rows = np.flatnonzero(head[chunk].any(axis=(0, 2)))
            cols = np.flatnonzero(head[chunk].any(axis=(0, 1)))
            if rows.size == 0:
                continue
            y0, y1 = max(y0, rows[0] - margin), min(y1, rows[-1] + 1 + margin)
            x0, x1 = max(x0, cols[0] - margin), min(x1, cols[-1] + 1 + margin)
        x = torch.from_numpy(np.ascontiguousarray(
            inputs[:, chunk, y0:y1, x0:x1].transpose(1, 0, 2, 3), dtype=np.float32))
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            y = model(x)
        out[chunk, y0:y1, x0:x1] = y[:, 0].float().cpu().numpy()
    return out
