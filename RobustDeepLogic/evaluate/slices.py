"""TODO docstring (RobustDeepLogic.evaluate)."""

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
    """The content of a ``slices/...npz`` file (see :func:`evaluate_case`) as a dict."""
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
