"""The slices file of an evaluated case: what the case's figures and the report draw.

``OUT/slices/<task>/<scenario>/<stem>.npz`` holds three orthogonal slices (axial, coronal,
sagittal) through the centre of the head mask of the reference, the prediction, the relative-error
map and the mask (and of the input, added when the case has one), the joint histogram and its
range, the sums of the linear fit, the spacing, the centre, the scaling constant and a little
metadata; so figures are drawn without reading the volumes again. Writing it is private to
:mod:`RobustDeepLogic.evaluate.evaluation`; :func:`load_slices` reads it back. The figures are in
:mod:`RobustDeepLogic.evaluate.figures` and :mod:`RobustDeepLogic.report.figures`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from RobustDeepLogic.cohort.scaling import Scaling
from RobustDeepLogic.core.files import (
    atomic_path,
)
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.evaluate.cases import Case, EvaluationOptions
from RobustDeepLogic.evaluate.maps import (
    LinearFit,
)
from RobustDeepLogic.evaluate.reference import _Reference


def _three_slices(volume: np.ndarray, centre: Tuple[int, int, int]) -> Dict[str, np.ndarray]:
    z, y, x = centre
    return {
        "axial": np.ascontiguousarray(volume[z]),
        "coronal": np.ascontiguousarray(volume[:, y, :]),
        "sagittal": np.ascontiguousarray(volume[:, :, x]),
    }


def _write_slices(path: Path, case: Case, ref: _Reference, p_phys: np.ndarray, rel: np.ndarray,
                  hist: np.ndarray, fit: LinearFit, scaling: Scaling, options: EvaluationOptions) -> None:
    arrays: Dict[str, np.ndarray] = {}
    for name, vol in (("reference", ref.physical), ("prediction", p_phys), ("relerr", rel),
                      ("mask", ref.mask.astype(np.uint8))):
        for view, sl in _three_slices(vol, ref.centre).items():
            arrays[f"{name}_{view}"] = sl
    arrays["hist"] = hist.astype(np.float32)
    arrays["hist_range"] = np.array([0.0, options.hist_max])
    arrays["fit"] = np.array([fit.n, fit.sx, fit.sy, fit.sxx, fit.syy, fit.sxy])
    arrays["spacing"] = np.array(ref.grid.spacing)
    arrays["centre"] = np.array(ref.centre)
    arrays["scaling"] = np.array([scaling.scale, scaling.offset])
    meta = {"task": case.task, "scenario": case.scenario, "patient": case.patient, "epoch": case.epoch,
            "modality": case.modality, "unit": scaling.unit, "relative_floor": options.relative_floor}
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)


def load_slices(path: PathLike) -> Dict[str, Any]:
    """The content of a ``slices/...npz`` file as a dict.

    The files are written by :func:`RobustDeepLogic.evaluate.evaluation.evaluate_case`.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.

    Returns
    -------
    dict
        Arrays by name: ``reference_<view>``, ``prediction_<view>`` (physical units, SUV or HU),
        ``relerr_<view>`` (relative error, a fraction), ``mask_<view>`` (uint8) and, when the case has
        an input, ``input_<view>`` (physical units; MR in its own units), for each view ``axial``
        (``[y, x]``), ``coronal`` (``[z, x]``) and ``sagittal`` (``[z, y]``); ``hist`` (float32
        ``[bins, bins]`` joint histogram, scaled units), ``hist_range`` (``[0, hist_max]``), ``fit``
        (the six sums of a :class:`~RobustDeepLogic.evaluate.maps.LinearFit`, in field order),
        ``spacing`` (``(x, y, z)`` in mm), ``centre`` (``(z, y, x)`` voxel index of the slices),
        ``scaling`` (``(scale, offset)``); and ``meta``, a dict with ``task``, ``scenario``,
        ``patient``, ``epoch``, ``modality``, ``unit`` and ``relative_floor``.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    with np.load(path, allow_pickle=False) as data:
        out: Dict[str, Any] = {k: data[k] for k in data.files}
    out["meta"] = json.loads(str(out["meta"]))
    return out


def _add_input_slices(path: Path, ref: _Reference, inp_phys: np.ndarray) -> None:
    """Add the input's slices to an existing slices file (for the reference / input / prediction panel)."""
    data = dict(np.load(path, allow_pickle=False))
    for view, sl in _three_slices(inp_phys, ref.centre).items():
        data[f"input_{view}"] = sl
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **data)
