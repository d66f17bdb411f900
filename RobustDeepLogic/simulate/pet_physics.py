"""PET physics: a 2D parallel-beam projector, resolution, scatter and count thinning.

Geometry. Each transaxial slice is projected by the same sparse system matrix (pixel-driven, linear
interpolation between the two nearest radial bins; weights are path lengths in mm, so projecting a
mu-map gives line integrals), on a circular support of radius ``support_radius_mm`` (pixels outside
are zero in the truth and in every reconstruction). Angles cover 180 degrees; radial bins have the
pixel's width. All slices are projected at once as a sparse x dense product ``(bins, pixels) @
(pixels, slices)``. This is a stack of 2D acquisitions, i.e. 3D data after single-slice rebinning.

Acquisition (expected prompts per bin), following the usual PET data model, assembled by
:func:`~RobustDeepLogic.simulate.pet.simulate_pet` from the pieces here::

    ybar = eta * a * PSF(P x) + s + r

with ``x`` the activity (SUV), ``P`` the projector, ``a = exp(-P mu)`` the attenuation factors,
``PSF`` the scanner resolution, applied in projection space (a 2D isotropic Gaussian blur commutes
with the Radon transform: it is a 1D Gaussian along the radial bins, and a Gaussian along the slices
axially), ``s`` scatter (a broad blur of the attenuated trues, scatter fraction ~0.3), ``r`` randoms
(uniform, ~25 % of prompts) and ``eta`` the sensitivity that makes the expected prompts of a
full-dose scan about 3e8 (scaled by the injected dose). FD prompts are Poisson; LD prompts are a
binomial thinning of the FD prompts (what keeping a random 5 % of the list-mode events does).

Reconstruction (OSEM with this forward model) is in :mod:`.osem`.

The activity model, the dose and count levels and the FD / LD / NAC / MAC chain are in :mod:`.pet`.
See ``docs/simulation.md`` §4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

#: A Gaussian's sigma per unit of FWHM (about 0.4247).
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


@dataclass
class Subset:
    """One OSEM subset of a :class:`ParallelProjector`: some of its angles and their system matrix.

    Attributes
    ----------
    angles : numpy.ndarray
        Indices into the projector's angles (``k, k + n, k + 2n ...`` for subset ``k`` of ``n``).
    matrix : scipy.sparse.csr_matrix
        float32 system matrix, ``(len(angles) * n_bins, n_pixels)``; rows angle-major.
    matrix_t : scipy.sparse.csr_matrix
        Its transpose, stored for fast back-projection.
    """

    angles: np.ndarray  # indices into the projector's angles
    matrix: sp.csr_matrix  # (len(angles) * n_bins, n_pixels)
    matrix_t: sp.csr_matrix  # its transpose, stored for fast back-projection


class ParallelProjector:
    """Sparse 2D parallel-beam projector applied to every slice of a volume.

    Images are handled as ``(n_pixels, n_slices)`` arrays of the support pixels (:meth:`to_support`),
    sinograms as ``(n_angles, n_bins, n_slices)``. The system matrix is built at construction, one
    :class:`Subset` at a time.

    Parameters
    ----------
    nx, ny : int
        Slice size in pixels (ITK x, y).
    pixel_mm : tuple of 2 float
        Pixel size ``(dx, dy)`` in mm (the radial bin width is ``dx``).
    n_angles : int
        Projection angles, evenly over [0, 180) degrees.
    support_radius_mm : float
        Pixels whose centre lies farther from the slice centre are outside the support. Clipped to
        the largest circle inside the slice (the :attr:`support_radius_mm` attribute holds the
        value used).
    n_subsets : int, optional
        Interleaved angular subsets for OSEM (subset ``k`` holds angles ``k, k + n, k + 2n ...``);
        default 1.

    Attributes
    ----------
    support : numpy.ndarray
        Flat ``[y, x]`` indices of the support pixels.
    bin_mm : float
        Radial bin width in mm (``dx``).
    n_bins : int
        Radial bins per angle, ``2 ceil(radius / dx) + 3``.
    angles_rad : numpy.ndarray
        The projection angles in radians.
    subsets : list of Subset
        The OSEM subsets, whose matrices together are the system matrix.
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
        """Number of support pixels of a slice."""
        return len(self.support)

    @property
    def nnz(self) -> int:
        """Non-zero entries of the system matrix (all subsets)."""
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
        """``[z, y, x]`` volume -> ``(n_pixels, n_slices)`` float32 (C-contiguous).

        Parameters
        ----------
        volume : numpy.ndarray
            ``(nz, ny, nx)`` volume on the projector's slice grid.

        Returns
        -------
        numpy.ndarray
            ``(n_pixels, nz)`` float32 values of the support pixels; pixels outside are dropped.
        """
        nz = volume.shape[0]
        return np.ascontiguousarray(volume.reshape(nz, -1)[:, self.support].T, dtype=np.float32)

    def to_volume(self, x: np.ndarray) -> np.ndarray:
        """``(n_pixels, n_slices)`` -> ``[z, y, x]`` float32 volume (zero outside the support).

        Parameters
        ----------
        x : numpy.ndarray
            ``(n_pixels, nz)`` values of the support pixels.

        Returns
        -------
        numpy.ndarray
            ``(nz, ny, nx)`` float32 volume, 0 outside the support.
        """
        nz = x.shape[1]
        out = np.zeros((nz, self.ny * self.nx), np.float32)
        out[:, self.support] = np.asarray(x).T
        return out.reshape(nz, self.ny, self.nx)

    # -- projections -----------------------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Line integrals (mm x image units): ``(n_pixels, nz)`` -> ``(n_angles, n_bins, nz)``.

        Parameters
        ----------
        x : numpy.ndarray
            ``(n_pixels, nz)`` image (:meth:`to_support`).

        Returns
        -------
        numpy.ndarray
            ``(n_angles, n_bins, nz)`` float32 sinogram (for a mu-map in 1/mm, the dimensionless
            ``P mu`` of the attenuation factors ``exp(-P mu)``).
        """
        nz = x.shape[1]
        out = np.empty((self.n_angles, self.n_bins, nz), np.float32)
        for s in self.subsets:
            out[s.angles] = (s.matrix @ x).reshape(len(s.angles), self.n_bins, nz)
        return out

    def back(self, y: np.ndarray) -> np.ndarray:
        """Back-projection, the adjoint of :meth:`forward`: ``(n_angles, n_bins, nz)`` -> ``(n_pixels, nz)``.

        Parameters
        ----------
        y : numpy.ndarray
            ``(n_angles, n_bins, nz)`` sinogram.

        Returns
        -------
        numpy.ndarray
            ``(n_pixels, nz)`` float32 back-projection.
        """
        nz = y.shape[2]
        out = np.zeros((self.n_pixels, nz), np.float32)
        for s in self.subsets:
            out += s.matrix_t @ y[s.angles].reshape(-1, nz)
        return out


# --------------------------------------------------------------------------------------------------
# Resolution, scatter, randoms
# --------------------------------------------------------------------------------------------------
def psf_sigmas(fwhm_mm: Tuple[float, float], bin_mm: float, slice_mm: float) -> Tuple[float, float]:
    """Gaussian sigmas in (bins, slices) for a (transaxial, axial) FWHM in mm.

    Parameters
    ----------
    fwhm_mm : tuple of 2 float
        PSF FWHM, (transaxial, axial), in mm.
    bin_mm : float
        Radial bin width in mm.
    slice_mm : float
        Slice thickness (z spacing) in mm.

    Returns
    -------
    tuple of 2 float
        Sigmas in radial bins and in slices, for :func:`blur_sinogram`.
    """
    return fwhm_mm[0] * FWHM_TO_SIGMA / bin_mm, fwhm_mm[1] * FWHM_TO_SIGMA / slice_mm


def blur_sinogram(y: np.ndarray, sigmas: Tuple[float, float]) -> np.ndarray:
    """Projection-space PSF: Gaussian along the radial bins (axis 1) and the slices (axis 2).

    Zero outside the sinogram, kernels truncated at 2.5 sigma.

    Parameters
    ----------
    y : numpy.ndarray
        ``(n_angles, n_bins, nz)`` sinogram.
    sigmas : tuple of 2 float
        Sigmas in radial bins and in slices (:func:`psf_sigmas`); an axis whose sigma is <= 0 is
        left as it is.

    Returns
    -------
    numpy.ndarray
        The blurred sinogram, the shape and dtype of ``y`` (``y`` itself when both sigmas are <= 0).
    """
    out = y
    if sigmas[0] > 0:
        out = ndimage.gaussian_filter1d(out, sigmas[0], axis=1, mode="constant", truncate=2.5)
    if sigmas[1] > 0:
        out = ndimage.gaussian_filter1d(out, sigmas[1], axis=2, mode="constant", truncate=2.5)
    return out


def scatter_shape(attenuated_trues: np.ndarray, bin_mm: float, slice_mm: float) -> np.ndarray:
    """A smooth scatter distribution (sums to 1): the attenuated trues blurred by ~60 mm FWHM.

    Gaussian blur of 60 mm FWHM along the radial bins, 42 mm (0.7 times that) along the slices and a
    sigma of 3 angles along the angles (wrapping round).

    Parameters
    ----------
    attenuated_trues : numpy.ndarray
        ``(n_angles, n_bins, nz)`` expected trues, attenuated and blurred by the PSF.
    bin_mm : float
        Radial bin width in mm.
    slice_mm : float
        Slice thickness in mm.

    Returns
    -------
    numpy.ndarray
        Non-negative array of the input's shape that sums to 1; times the number of scattered
        counts it is the expected scatter ``s``.
    """
    sig = 60.0 * FWHM_TO_SIGMA
    s = ndimage.gaussian_filter(attenuated_trues, (3.0, sig / bin_mm, 0.7 * sig / slice_mm),
                                mode=("wrap", "constant", "nearest"))
    s = np.clip(s, 0.0, None)
    return s / max(float(s.sum()), 1e-12)


def thin_counts(counts: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Binomial thinning: keep each count with probability ``fraction`` (list-mode subsampling).

    Parameters
    ----------
    counts : numpy.ndarray
        Non-negative whole counts (any dtype; cast to int64).
    fraction : float
        Probability of keeping each count, in [0, 1] (:data:`~RobustDeepLogic.simulate.pet.LD_FRACTION`
        for LD).
    rng : numpy.random.Generator
        The random stream.

    Returns
    -------
    numpy.ndarray
        float32 counts, the shape of ``counts``.
    """
    return rng.binomial(counts.astype(np.int64), fraction).astype(np.float32)



