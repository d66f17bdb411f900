"""TODO docstring (RobustDeepLogic.train)."""

from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np

from RobustDeepLogic.network.inference import predict_array


# --------------------------------------------------------------------------------------------------
# Validation metrics (method.md §8; the evaluation stage has the full set)
# --------------------------------------------------------------------------------------------------
def head_metrics(reference: np.ndarray, predicted: np.ndarray, head: np.ndarray) -> Dict[str, float]:
    """RMSE, PSNR and the paper's global SSIM of two scaled volumes over the head voxels.

    RMSE = sqrt(mean((R - P)^2)); PSNR = 20 log10(max(max R, max P) / RMSE); SSIM (global, as the
    paper writes it) = (2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2)) with
    c1 = 0.01, c2 = 0.02 (method.md §8). Inputs ``[z, y, x]``; ``head`` bool.
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
