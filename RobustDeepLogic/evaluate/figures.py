"""Figures of one evaluated case, drawn with matplotlib on an Agg canvas (no global pyplot state).

The relative-error (bias) map of three orthogonal slices on a +-10 % colour scale, and the joint
histogram of reference against predicted voxels with the identity and the least-squares line
(docs/method.md §8). They are drawn from a case's slices file
(:func:`RobustDeepLogic.evaluate.slices.load_slices`), not from the volumes. The helpers that make
a figure, write it as PNG and show a slice with its aspect are shared with the report's figures of
several scenarios (:mod:`RobustDeepLogic.report.figures`). matplotlib is imported only when a
figure is made.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from RobustDeepLogic.core.files import (
    atomic_write_bytes,
)
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.evaluate.maps import (
    LinearFit,
)

# --------------------------------------------------------------------------------------------------
# Figures of one case (matplotlib, Agg canvas: no global pyplot state)
# --------------------------------------------------------------------------------------------------
#: Colour window of relative-error figures: +-10 % (docs/method.md §8).
BIAS_WINDOW = 0.10

#: The three orthogonal slices of a case, in the order they are drawn.
VIEWS = ("axial", "coronal", "sagittal")


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas (safe in threads, never opens a window).

    Parameters
    ----------
    width, height : float
        Size in inches (at 100 dpi).

    Returns
    -------
    matplotlib.figure.Figure
        An empty figure.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def figure_png_bytes(fig) -> bytes:
    """A figure as PNG bytes, at the figure's dpi, cropped to its content (0.1 inch margin).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, e.g. from :func:`new_figure`.

    Returns
    -------
    bytes
        The PNG file's content.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=0.1)
    return buf.getvalue()


def save_figure(fig, path: PathLike) -> Path:
    """Write ``fig`` as a PNG atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        The PNG file; its folder is created if needed.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return atomic_write_bytes(path, figure_png_bytes(fig))


def view_aspect(spacing: Sequence[float], view: str) -> float:
    """imshow aspect (row spacing / column spacing) of a slice of a ``[z, y, x]`` volume.

    Parameters
    ----------
    spacing : sequence of float
        Voxel spacing ``(x, y, z)`` in mm, in ITK's order.
    view : {'axial', 'coronal', 'sagittal'}
        The slice: axial ``[y, x]``, coronal ``[z, x]`` or sagittal ``[z, y]``.

    Returns
    -------
    float
        The aspect to pass to ``imshow``.

    Raises
    ------
    KeyError
        For another ``view``.
    """
    sx, sy, sz = spacing
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def show_slice(ax, image: np.ndarray, view: str, spacing: Sequence[float], **kwargs):
    """Show a slice in radiological habit, with its physical aspect and no ticks.

    Axial slices are shown as stored (anterior up for LPS grids), coronal and sagittal slices flipped
    so that superior is up.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw in.
    image : numpy.ndarray
        The 2D slice of a ``[z, y, x]`` volume: axial ``[y, x]``, coronal ``[z, x]`` or sagittal
        ``[z, y]``.
    view : {'axial', 'coronal', 'sagittal'}
        Which slice ``image`` is.
    spacing : sequence of float
        Voxel spacing ``(x, y, z)`` in mm.
    **kwargs
        Passed to ``ax.imshow`` (``cmap``, ``vmin``, ``vmax`` ...).

    Returns
    -------
    matplotlib.image.AxesImage
        The image artist (for a colour bar).
    """
    shown = image if view == "axial" else image[::-1]
    artist = ax.imshow(shown, aspect=view_aspect(spacing, view), interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    return artist


def draw_bias(ax, data: Mapping[str, Any], view: str, window: float = BIAS_WINDOW):
    """The relative error slice (fraction) on a symmetric colour scale of +-``window``.

    Voxels outside the head mask are left blank.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw in.
    data : mapping
        The content of a slices file (:func:`RobustDeepLogic.evaluate.slices.load_slices`);
        uses ``relerr_<view>``, ``mask_<view>`` and ``spacing``.
    view : {'axial', 'coronal', 'sagittal'}
        The slice to show.
    window : float, optional
        Half-width of the colour scale, as a fraction (default :data:`BIAS_WINDOW`, 0.10 = 10 %).

    Returns
    -------
    matplotlib.image.AxesImage
        The image artist (for a colour bar).
    """
    rel = np.where(data[f"mask_{view}"] > 0, data[f"relerr_{view}"], np.nan)
    return show_slice(ax, rel, view, data["spacing"], cmap="RdBu_r", vmin=-window, vmax=window)


def figure_bias(data: Mapping[str, Any], title: str = "", window: float = BIAS_WINDOW):
    """Three orthogonal relative-error slices of one case with a colour bar of +-``window``.

    Parameters
    ----------
    data : mapping
        The content of a slices file (:func:`RobustDeepLogic.evaluate.slices.load_slices`).
    title : str, optional
        Figure title after ``"relative error: "``; empty (default) for none.
    window : float, optional
        Half-width of the colour scale, as a fraction (default :data:`BIAS_WINDOW`, +-10 %).

    Returns
    -------
    matplotlib.figure.Figure
        The figure (axial, coronal, sagittal).

    References
    ----------
    .. [1] docs/method.md §8 (bias maps in a window of +-10 %).
    """
    fig = new_figure(9.0, 3.4)
    axes = fig.subplots(1, 3)
    artist = None
    for ax, view in zip(axes, VIEWS):
        artist = draw_bias(ax, data, view, window)
        ax.set_title(view, fontsize=9)
    bar = fig.colorbar(artist, ax=list(axes), shrink=0.8)
    bar.set_label("(P - R) / R")
    bar.set_ticks([-window, -window / 2, 0, window / 2, window])
    bar.set_ticklabels([f"{100 * t:+.0f} %" for t in (-window, -window / 2, 0, window / 2, window)])
    if title:
        fig.suptitle(f"relative error: {title}", fontsize=10)
    return fig


def hist_extent(hist: np.ndarray, hist_range: Sequence[float], quantile: float = 0.999) -> float:
    """Upper edge (scaled units) that holds ``quantile`` of the counts along both axes.

    The edge is two bins above the bin where the cumulative count of each marginal reaches
    ``quantile``, the larger of the two, and at most the upper end of the range.

    Parameters
    ----------
    hist : numpy.ndarray
        Square ``[bins, bins]`` joint histogram (:func:`RobustDeepLogic.evaluate.maps.joint_histogram`).
    hist_range : sequence of float
        ``(low, high)`` of its bins, in scaled units.
    quantile : float, optional
        Fraction of the counts to keep (default 0.999).

    Returns
    -------
    float
        A bin edge in scaled units; ``high`` for an empty histogram.
    """
    lo, hi = float(hist_range[0]), float(hist_range[1])
    edges = np.linspace(lo, hi, hist.shape[0] + 1)
    total = hist.sum()
    if total <= 0:
        return hi
    top = 0
    for marginal in (hist.sum(axis=1), hist.sum(axis=0)):
        cum = np.cumsum(marginal) / total
        top = max(top, int(np.searchsorted(cum, quantile)) + 2)
    return float(edges[min(top, hist.shape[0])])


def draw_joint_histogram(ax, hist: np.ndarray, hist_range: Sequence[float], fit: LinearFit,
                         scaling: Sequence[float], unit: str, label: str = ""):
    """A log-count joint histogram in physical units, with the identity and the least-squares line.

    The reference is on x, the prediction on y; the axes stop at :func:`hist_extent`. Slope and R^2 of
    the (scaled-unit) fit are given in the legend; the line is drawn in physical units, and left out
    when the slope is undefined.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        The axes to draw in.
    hist : numpy.ndarray
        ``[bins, bins]`` counts ``[i_reference, i_prediction]`` in scaled units
        (:func:`RobustDeepLogic.evaluate.maps.joint_histogram`; sums of several are fine).
    hist_range : sequence of float
        ``(low, high)`` of the bins, in scaled units.
    fit : LinearFit
        The fit of the same voxels, in scaled units.
    scaling : sequence of float
        ``(scale, offset)`` of the modality: physical = scaled * scale + offset.
    unit : str
        Physical unit for the axis labels (``'SUV'``, ``'HU'``; may be empty).
    label : str, optional
        Name of the y axis (default ``'prediction'``), e.g. the scenario.
    """
    from matplotlib.colors import LogNorm

    scale, offset = float(scaling[0]), float(scaling[1])
    lo, hi = float(hist_range[0]), float(hist_range[1])
    top = hist_extent(hist, hist_range)
    ext = [lo * scale + offset, hi * scale + offset] * 2
    counts = np.ma.masked_less_equal(hist.T, 0)
    if counts.count():
        ax.imshow(counts, origin="lower", extent=ext, aspect="auto", cmap="viridis",
                  norm=LogNorm(vmin=1, vmax=max(2.0, float(counts.max()))), interpolation="nearest")
    p0, p1 = lo * scale + offset, top * scale + offset
    ax.plot([p0, p1], [p0, p1], color="0.6", lw=0.8, ls="--", label="identity")
    slope, icpt = fit.slope, fit.intercept * scale + offset * (1 - fit.slope)
    if math.isfinite(slope):
        ax.plot([p0, p1], [slope * p0 + icpt, slope * p1 + icpt], color="red", lw=1.0,
                label=f"fit: slope {slope:.3f}, R$^2$ {fit.r2:.3f}")
    ax.set_xlim(p0, p1)
    ax.set_ylim(p0, p1)
    ax.set_xlabel(f"reference ({unit})", fontsize=8)
    ax.set_ylabel(f"{label or 'prediction'} ({unit})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")


def figure_joint_histogram(data: Mapping[str, Any], title: str = ""):
    """The joint histogram of one case with its linear fit.

    Parameters
    ----------
    data : mapping
        The content of a slices file (:func:`RobustDeepLogic.evaluate.slices.load_slices`);
        uses ``hist``, ``hist_range``, ``fit``, ``scaling`` and ``meta``.
    title : str, optional
        Axes title; empty (default) for none.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.

    References
    ----------
    .. [1] docs/method.md §8 (joint histograms with the linear fit).
    """
    fig = new_figure(4.2, 4.0)
    ax = fig.subplots(1, 1)
    fit = LinearFit(*[float(v) for v in data["fit"]])
    draw_joint_histogram(ax, data["hist"], data["hist_range"], fit, data["scaling"],
                         data["meta"].get("unit") or "", data["meta"].get("scenario", ""))
    if title:
        ax.set_title(title, fontsize=9)
    return fig
