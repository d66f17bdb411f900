"""PET physics: a 2D parallel-beam projector, the acquisition model, Poisson counts, thinning, OSEM.

Geometry. Each transaxial slice is projected by the same sparse system matrix (pixel-driven, linear
interpolation between the two nearest radial bins; weights are path lengths in mm, so projecting a
mu-map gives line integrals), on a circular support of radius ``support_radius_mm`` (pixels outside
are zero in the truth and in every reconstruction). Angles cover 180 degrees; radial bins have the
pixel's width. All slices are projected at once as a sparse x dense product ``(bins, pixels) @
(pixels, slices)``. This is a stack of 2D acquisitions, i.e. 3D data after single-slice rebinning.

Acquisition (expected prompts per bin), following the usual PET data model::

    ybar = eta * a * PSF(P x) + s + r

with ``x`` the activity (SUV), ``P`` the projector, ``a = exp(-P mu)`` the attenuation factors,
``PSF`` the scanner resolution, applied in projection space (a 2D isotropic Gaussian blur commutes
with the Radon transform: it is a 1D Gaussian along the radial bins, and a Gaussian along the slices
axially), ``s`` scatter (a broad blur of the attenuated trues, scatter fraction ~0.3), ``r`` randoms
(uniform, ~25 % of prompts) and ``eta`` the sensitivity that makes the expected prompts of a
full-dose scan about 3e8 (scaled by the injected dose). FD prompts are Poisson; LD prompts are a
binomial thinning of the FD prompts (what keeping a random 5 % of the list-mode events does).

Reconstruction: OSEM (Hudson & Larkin, IEEE TMI 13(4) 1994) with interleaved angular subsets, the
same forward model with the modelled PSF (resolution modelling), attenuation factors when
attenuation-corrected, and ``s + r`` (or ``r`` only for NAC) as the additive background; the
result is in the units of ``x`` (SUV) because ``eta`` is part of the model. A torch backend runs the
same algorithm with ``torch.sparse`` on a CUDA device when one is given.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass
class Subset:
    angles: np.ndarray  # indices into the projector's angles
    matrix: sp.csr_matrix  # (len(angles) * n_bins, n_pixels)
    matrix_t: sp.csr_matrix  # its transpose, stored for fast back-projection


class ParallelProjector:
    """Sparse 2D parallel-beam projector applied to every slice of a volume.

    Parameters
    ----------
    nx, ny:
        Slice size in pixels (ITK x, y).
    pixel_mm:
        Pixel size ``(dx, dy)`` in mm (the radial bin width is ``dx``).
    n_angles:
        Projection angles, evenly over [0, 180) degrees.
    support_radius_mm:
        Pixels whose centre lies farther from the slice centre are outside the support.
    n_subsets:
        Interleaved angular subsets for OSEM (subset ``k`` holds angles ``k, k + n, k + 2n ...``).

    Images are handled as ``(n_pixels, n_slices)`` arrays of the support pixels (:meth:`to_support`),
    sinograms as ``(n_angles, n_bins, n_slices)``.
    """

    def __init__(self, nx: int, ny: int, pixel_mm: Tuple[float, float], n_angles: int,
                 support_radius_mm: float, n_subsets: int = 1) -> None:
        self.nx, self.ny = int(nx), int(ny)
        self.pixel_mm = (float(pixel_mm[0]), float(pixel_mm[1]))
        self.n_angles = int(n_angles)
        self.n_subsets = int(n_subsets)
        dx, dy = self.pixel_mm
        radius = min(support_radius_mm, (nx - 1) / 2.0 * dx, (ny - 1) / 2.0 * dy)
        self.support_radius_mm = radius
        xc = (np.arange(nx) - (nx - 1) / 2.0) * dx
        yc = (np.arange(ny) - (ny - 1) / 2.0) * dy
        yy, xx = np.meshgrid(yc, xc, indexing="ij")
        inside = (xx ** 2 + yy ** 2) <= radius ** 2
        self.support = np.flatnonzero(inside.ravel())  # flat [y, x] indices
        self.bin_mm = dx
        self.n_bins = 2 * int(math.ceil(radius / dx)) + 3
        self.angles_rad = np.arange(self.n_angles) * math.pi / self.n_angles
        px, py = xx.ravel()[self.support], yy.ravel()[self.support]
        weight = dx * dy / self.bin_mm  # path length through a pixel, averaged over the bin
        self.subsets: List[Subset] = []
        for k in range(self.n_subsets):
            angles = np.arange(k, self.n_angles, self.n_subsets)
            m = self._matrix(angles, px, py, weight)
            self.subsets.append(Subset(angles, m, m.T.tocsr()))

    @property
    def n_pixels(self) -> int:
        return len(self.support)

    @property
    def nnz(self) -> int:
        return sum(s.matrix.nnz for s in self.subsets)

    def _matrix(self, angles: np.ndarray, px: np.ndarray, py: np.ndarray, weight: float) -> sp.csr_matrix:
        n_pix = len(px)
        rows, cols, vals = [], [], []
        pix = np.arange(n_pix)
        for j, a in enumerate(angles):
            s = px * math.cos(self.angles_rad[a]) + py * math.sin(self.angles_rad[a])
            u = s / self.bin_mm + (self.n_bins - 1) / 2.0
            b0 = np.floor(u).astype(np.int64)
            f = u - b0
            base = j * self.n_bins
            rows += [base + b0, base + b0 + 1]
            cols += [pix, pix]
            vals += [(1.0 - f) * weight, f * weight]
        m = sp.csr_matrix((np.concatenate(vals).astype(np.float32),
                           (np.concatenate(rows), np.concatenate(cols))),
                          shape=(len(angles) * self.n_bins, n_pix))
        m.sum_duplicates()
        return m

    # -- image <-> support vectors -------------------------------------------------------------------
    def to_support(self, volume: np.ndarray) -> np.ndarray:
        """``[z, y, x]`` volume -> ``(n_pixels, n_slices)`` float32 (C-contiguous)."""
        nz = volume.shape[0]
        return np.ascontiguousarray(volume.reshape(nz, -1)[:, self.support].T, dtype=np.float32)

    def to_volume(self, x: np.ndarray) -> np.ndarray:
        """``(n_pixels, n_slices)`` -> ``[z, y, x]`` float32 volume (zero outside the support)."""
        nz = x.shape[1]
        out = np.zeros((nz, self.ny * self.nx), np.float32)
        out[:, self.support] = np.asarray(x).T
        return out.reshape(nz, self.ny, self.nx)

    # -- projections -----------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Line integrals (mm x image units): ``(n_pixels, nz)`` -> ``(n_angles, n_bins, nz)``."""
        nz = x.shape[1]
        out = np.empty((self.n_angles, self.n_bins, nz), np.float32)
        for s in self.subsets:
            out[s.angles] = (s.matrix @ x).reshape(len(s.angles), self.n_bins, nz)
        return out

    def back(self, y: np.ndarray) -> np.ndarray:
        """The adjoint: ``(n_angles, n_bins, nz)`` -> ``(n_pixels, nz)``."""
        nz = y.shape[2]
        out = np.zeros((self.n_pixels, nz), np.float32)
        for s in self.subsets:
            out += s.matrix_t @ y[s.angles].reshape(-1, nz)
        return out


# --------------------------------------------------------------------------------------------------
# Resolution, scatter, randoms
# --------------------------------------------------------------------------------------------------
def psf_sigmas(fwhm_mm: Tuple[float, float], bin_mm: float, slice_mm: float) -> Tuple[float, float]:
    """Gaussian sigmas in (bins, slices) for a (transaxial, axial) FWHM in mm."""
    return fwhm_mm[0] * FWHM_TO_SIGMA / bin_mm, fwhm_mm[1] * FWHM_TO_SIGMA / slice_mm


def blur_sinogram(y: np.ndarray, sigmas: Tuple[float, float]) -> np.ndarray:
    """Projection-space PSF: Gaussian along the radial bins (axis 1) and the slices (axis 2)."""
    out = y
    if sigmas[0] > 0:
        out = ndimage.gaussian_filter1d(out, sigmas[0], axis=1, mode="constant", truncate=2.5)
    if sigmas[1] > 0:
        out = ndimage.gaussian_filter1d(out, sigmas[1], axis=2, mode="constant", truncate=2.5)
    return out


def scatter_shape(attenuated_trues: np.ndarray, bin_mm: float, slice_mm: float) -> np.ndarray:
    """A smooth scatter distribution (sums to 1): the attenuated trues blurred by ~60 mm FWHM."""
    sig = 60.0 * FWHM_TO_SIGMA
    s = ndimage.gaussian_filter(attenuated_trues, (3.0, sig / bin_mm, 0.7 * sig / slice_mm),
                                mode=("wrap", "constant", "nearest"))
    s = np.clip(s, 0.0, None)
    return s / max(float(s.sum()), 1e-12)


def thin_counts(counts: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Binomial thinning: keep each count with probability ``fraction`` (list-mode subsampling)."""
    return rng.binomial(counts.astype(np.int64), fraction).astype(np.float32)


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

    Parameters
    ----------
    prompts:
        Measured counts, ``(n_angles, n_bins, nz)``.
    eta:
        Counts per (image unit x mm of path): the sensitivity that ties the image to SUV.
    attenuation:
        Attenuation factors ``exp(-P mu)`` in ``(0, 1]``, or None (no attenuation correction).
    background:
        Expected additive counts (scatter + randoms, or randoms only).
    iterations:
        Full passes over the subsets of ``projector``.
    psf_sigmas_bins:
        Modelled PSF as Gaussian sigmas (radial bins, slices).
    device:
        None or ``'cpu'``: numpy/scipy. ``'cuda'``: the same algorithm in torch (sparse CSR).

    Returns
    -------
    ``(n_pixels, nz)`` float32 activity in the units of the forward model (SUV).
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
