"""Reconstruction of the simulated PET: OSEM (Hudson & Larkin, IEEE TMI 13(4) 1994).

Interleaved angular subsets of the projector of :mod:`.pet_physics`, the same forward model with the
modelled PSF (resolution modelling), attenuation factors when attenuation-corrected, and ``s + r``
(or ``r`` only for NAC) as the additive background; the result is in the units of the activity (SUV)
because the sensitivity ``eta`` is part of the model. A torch backend runs the same algorithm with
``torch.sparse`` on a CUDA device when one is given.
"""

from __future__ import annotations

import warnings
from typing import Optional, Tuple

import numpy as np

from RobustDeepLogic.simulate.pet_physics import ParallelProjector, blur_sinogram


# --------------------------------------------------------------------------------------------------
# OSEM
# --------------------------------------------------------------------------------------------------
def osem(
    projector: ParallelProjector,
    prompts: np.ndarray,
    *,
    eta: float,
    attenuation: Optional[np.ndarray],
    background: np.ndarray,
    iterations: int,
    psf_sigmas_bins: Tuple[float, float],
    device: Optional[str] = None,
) -> np.ndarray:
    """OSEM reconstruction (Hudson & Larkin 1994) with resolution modelling.

    The forward model is ``eta * a * PSF(P x) + background``. The image starts uniform, scaled so
    that its expected counts match the measured counts less the background.

    Parameters
    ----------
    projector : ParallelProjector
        The projector; its subsets are the OSEM subsets.
    prompts : numpy.ndarray
        Measured counts, ``(n_angles, n_bins, nz)``.
    eta : float
        Counts per (image unit x mm of path): the sensitivity that ties the image to SUV.
    attenuation : numpy.ndarray or None
        Attenuation factors ``exp(-P mu)`` in ``(0, 1]``, ``(n_angles, n_bins, nz)``, or None (no
        attenuation correction).
    background : numpy.ndarray
        Expected additive counts (scatter + randoms, or randoms only), ``(n_angles, n_bins, nz)``.
    iterations : int
        Full passes over the subsets of ``projector``.
    psf_sigmas_bins : tuple of 2 float
        Modelled PSF as Gaussian sigmas (radial bins, slices), :func:`psf_sigmas`.
    device : str, optional
        None or ``'cpu'`` (default None): numpy/scipy. Any other value, a torch device such as
        ``'cuda'``: the same algorithm in torch (sparse CSR) on that device.

    Returns
    -------
    numpy.ndarray
        ``(n_pixels, nz)`` float32 activity in the units of the forward model (SUV);
        :meth:`ParallelProjector.to_volume` makes it a volume.

    References
    ----------
    .. [1] Hudson HM, Larkin RS, "Accelerated image reconstruction using ordered subsets of
       projection data", IEEE Trans Med Imaging 13(4):601-609, 1994.
    """
    if device not in (None, "cpu"):
        return _osem_torch(projector, prompts, eta=eta, attenuation=attenuation,
                           background=background, iterations=iterations,
                           psf_sigmas_bins=psf_sigmas_bins, device=device)
    nz = prompts.shape[2]
    nb = projector.n_bins
    # Per subset, once: measured counts, eta x attenuation, background, and 1 / sensitivity.
    parts = []
    for s in projector.subsets:
        shape_k = (len(s.angles), nb, nz)
        gain = np.full(shape_k, eta, np.float32) if attenuation is None \
            else (eta * attenuation[s.angles]).astype(np.float32)
        sens = s.matrix_t @ blur_sinogram(gain, psf_sigmas_bins).reshape(-1, nz)
        inv_sens = np.zeros_like(sens)
        np.divide(1.0, sens, out=inv_sens, where=sens > 1e-9 * max(float(sens.max()), 1e-30))
        parts.append((s, shape_k, np.ascontiguousarray(prompts[s.angles], np.float32), gain,
                      np.ascontiguousarray(background[s.angles], np.float32), inv_sens))
    # Start from a uniform image whose expected counts match the net measured counts.
    x = np.ones((projector.n_pixels, nz), np.float32)
    expected = sum(float((gain * (s.matrix @ x).reshape(shape_k)).sum())
                   for s, shape_k, _, gain, _, _ in parts)
    x *= max(float(prompts.sum() - background.sum()), 1.0) / max(expected, 1e-12)
    for _ in range(iterations):
        for s, shape_k, y_k, gain, bg_k, inv_sens in parts:
            fwd = blur_sinogram((s.matrix @ x).reshape(shape_k), psf_sigmas_bins)
            fwd *= gain
            fwd += bg_k
            np.maximum(fwd, 1e-6, out=fwd)
            ratio = np.divide(y_k, fwd, out=fwd)
            ratio *= gain
            x *= (s.matrix_t @ blur_sinogram(ratio, psf_sigmas_bins).reshape(-1, nz)) * inv_sens
    return x


def _osem_torch(projector, prompts, *, eta, attenuation, background, iterations, psf_sigmas_bins,
                device):
    """The torch version of :func:`osem` (same algorithm; sparse CSR matmul on ``device``)."""
    import torch

    dev = torch.device(device)
    nz = prompts.shape[2]
    nb = projector.n_bins

    def kernel(sigma):
        if sigma <= 0:
            return None
        r = int(2.5 * sigma + 0.5)  # as scipy.ndimage (truncate 2.5)
        t = torch.arange(-r, r + 1, dtype=torch.float32, device=dev)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        return (k / k.sum()).view(1, 1, -1)

    kb, kz = kernel(psf_sigmas_bins[0]), kernel(psf_sigmas_bins[1])

    def blur(y):  # y: (A, B, Z)
        a, b, z = y.shape
        if kb is not None:
            t = y.permute(0, 2, 1).reshape(-1, 1, b)
            t = torch.nn.functional.conv1d(t, kb, padding=kb.shape[-1] // 2)
            y = t.view(a, z, b).permute(0, 2, 1)
        if kz is not None:
            t = y.reshape(-1, 1, z)
            t = torch.nn.functional.conv1d(t, kz, padding=kz.shape[-1] // 2)
            y = t.view(a, b, z)
        return y.contiguous()

    def csr(m):
        return torch.sparse_csr_tensor(torch.from_numpy(m.indptr.astype(np.int64)),
                                       torch.from_numpy(m.indices.astype(np.int64)),
                                       torch.from_numpy(m.data), size=m.shape, device=dev)


    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        mats = [(torch.from_numpy(s.angles).to(dev), csr(s.matrix), csr(s.matrix_t))
                for s in projector.subsets]
    y = torch.from_numpy(np.ascontiguousarray(prompts, np.float32)).to(dev)
    bg = torch.from_numpy(np.ascontiguousarray(background, np.float32)).to(dev)
    att = None if attenuation is None else torch.from_numpy(
        np.ascontiguousarray(attenuation, np.float32)).to(dev)
    x = torch.ones((projector.n_pixels, nz), dtype=torch.float32, device=dev)
    proj1 = torch.cat([(m @ x).view(len(a), nb, nz) for a, m, _ in mats])
    order = torch.cat([a for a, _, _ in mats])
    mult = proj1 if att is None else proj1 * att[order]
    x *= max(float(y.sum() - bg.sum()), 1.0) / max(float(eta * mult.sum()), 1e-12)
    sens = []
    for a, m, mt in mats:
        a_k = torch.ones((len(a), nb, nz), device=dev) if att is None else att[a]
        sens.append(eta * (mt @ blur(a_k).view(-1, nz)))
    for _ in range(iterations):
        for k, (a, m, mt) in enumerate(mats):
            fwd = blur((m @ x).view(len(a), nb, nz)) * eta
            if att is not None:
                fwd = fwd * att[a]
            fwd = fwd + bg[a]
            ratio = y[a] / torch.clamp(fwd, min=1e-6)
            if att is not None:
                ratio = ratio * att[a]
            back = eta * (mt @ blur(ratio).reshape(-1, nz))
            x = x * torch.where(sens[k] > 1e-9, back / torch.clamp(sens[k], min=1e-9),
                                torch.zeros_like(back))
    return x.cpu().numpy().astype(np.float32)
