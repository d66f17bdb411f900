"""Validation during training: head-region metrics of a network on whole validation volumes.

After every epoch the training loop (:mod:`RobustDeepLogic.training.loop`) predicts the fold's
validation patients with :func:`validate` and scores them with :func:`head_metrics`: RMSE, PSNR and the
paper's global SSIM over the head voxels, in scaled units (docs/method.md §8). These serve model
selection; the evaluation stage (:mod:`RobustDeepLogic.evaluate.metrics`) has the full set of metrics.
The head voxels are those of the evaluation's default head mask: a validation volume's ``head`` is
:func:`RobustDeepLogic.io.headmask.head_mask` of its scaled target
(:func:`RobustDeepLogic.data.windows.validation_volumes`), exactly the region of the reported metrics.
"""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from RobustDeepLogic.network.inference import predict_array


# --------------------------------------------------------------------------------------------------
# Validation metrics (docs/method.md §8; the evaluation stage has the full set)
# --------------------------------------------------------------------------------------------------
def head_metrics(reference: np.ndarray, predicted: np.ndarray, head: np.ndarray) -> Dict[str, float]:
    """RMSE, PSNR and the paper's global SSIM of two scaled volumes over the head voxels.

    RMSE = sqrt(mean((R - P)^2)); PSNR = 20 log10(max(max R, max P) / RMSE); SSIM (global, as the
    paper writes it) = (2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2)) with
    population variances and covariance and c1 = 0.01, c2 = 0.02. Computed in float64.

    Parameters
    ----------
    reference : numpy.ndarray
        ``[z, y, x]`` reference R in scaled units.
    predicted : numpy.ndarray
        ``[z, y, x]`` prediction P in scaled units, on the same grid.
    head : numpy.ndarray
        Boolean ``[z, y, x]`` mask of the voxels scored.

    Returns
    -------
    dict of str to float
        ``{"rmse", "psnr", "ssim"}`` (RMSE in scaled units, PSNR in dB). All NaN when ``head`` is
        empty; PSNR is infinite when the RMSE is 0 or the peak is not positive.

    References
    ----------
    docs/method.md §8.
    """
    r = reference[head].astype(np.float64)
    p = predicted[head].astype(np.float64)
    if r.size == 0:
        return {"rmse": float("nan"), "psnr": float("nan"), "ssim": float("nan")}
    mse = float(np.mean((r - p) ** 2))
    rmse = math.sqrt(mse)
    peak = max(float(r.max()), float(p.max()))
    psnr = 20 * math.log10(peak / rmse) if rmse > 0 and peak > 0 else float("inf")
    mr, mp = r.mean(), p.mean()
    sr, sp = r.var(), p.var()
    srp = float(np.mean((r - mr) * (p - mp)))
    c1, c2 = 0.01, 0.02
    ssim = (2 * mr * mp + c1) * (2 * srp + c2) / ((mr ** 2 + mp ** 2 + c1) * (sr + sp + c2))
    return {"rmse": rmse, "psnr": psnr, "ssim": float(ssim)}


def validate(model, volumes, *, device, amp: str = "auto", channels_last: bool = True,
             batch_size: int = 8, max_slices: Optional[int] = None) -> Dict[str, float]:
    """Mean head-region metrics over validation volumes (head slices, each batch in its head box).

    ``max_slices`` limits each volume to that many head slices, evenly spaced from the first to the
    last (reduced CPU profiles); the metrics are then over the head voxels of those slices.

    Parameters
    ----------
    model : torch.nn.Module
        The network (unwrapped, already on ``device``); left in eval mode.
    volumes : sequence of RobustDeepLogic.data.windows.ValidationVolume
        The validation subjects, scaled.
    device : torch.device or str
        Where the network runs.
    amp : str, optional
        Mixed precision (:func:`~RobustDeepLogic.network.inference.autocast_dtype`; default
        ``'auto'``).
    channels_last : bool, optional
        Channels-last memory format (default True).
    batch_size : int, optional
        Axial slices per forward pass (default 8).
    max_slices : int, optional
        At most this many head slices per volume; None (default): all.

    Returns
    -------
    dict of str to float
        ``{"rmse", "psnr", "ssim"}``: the mean over the volumes of :func:`head_metrics` (volumes
        without head voxels are skipped); all NaN when no volume is scored.
    """
    rows = []
    for vol in volumes:
        zs = np.flatnonzero(vol.head.any(axis=(1, 2)))
        if max_slices is not None and zs.size > int(max_slices):
            zs = zs[np.unique(np.linspace(0, zs.size - 1, int(max_slices)).round().astype(int))]
        if zs.size == 0:
            continue
        pred = predict_array(model, vol.inputs, batch_size=batch_size, device=device, amp=amp,
                             channels_last=channels_last, slices=zs, head=vol.head)
        rows.append(head_metrics(vol.target[zs], pred[zs], vol.head[zs]))
    if not rows:
        return {"rmse": float("nan"), "psnr": float("nan"), "ssim": float("nan")}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
