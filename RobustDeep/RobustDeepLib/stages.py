"""The engine calls behind the module's quick previews, in one place.

The module never re-implements the engine: a blend preview calls ``RobustDeepLogic.blending``, a
mask preset ``RobustDeepLogic.masks``, the review ``RobustDeepLogic.evaluate``. This file adapts their
array APIs to the SimpleITK images that the MRML glue produces (resampling a mask onto an image grid is
glue, not method). Everything long goes through the command line instead, in a separate process
(:mod:`RobustDeepLib.engine`, :mod:`RobustDeepLib.process`). The engine's modules are imported when a
function needs them; :class:`EngineStageMissing` says that the engine in use lacks one.

Free of Qt and of Slicer: tested with plain pytest.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import SimpleITK as sitk

#: The engine's package name.
ENGINE = "RobustDeepLogic"


class EngineStageMissing(RuntimeError):
    """The engine in use does not have the stage (module or function) that a panel needs.

    Parameters
    ----------
    what : str
        What is missing, e.g. ``"'masks' module"``; the message asks to update the engine.
    """

    def __init__(self, what: str) -> None:
        super().__init__(f"this RobustDeep engine has no {what} yet: update the engine (RobustDeepLogic)")


def _stage(name: str) -> Any:
    try:
        return importlib.import_module(f"{ENGINE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{ENGINE}.{name}", ENGINE):
            raise EngineStageMissing(f"'{name}' module") from None
        raise


def _same_grid(a: sitk.Image, b: sitk.Image, tol: float = 1e-4) -> bool:
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=tol)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * min(a.GetSpacing()))
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol))


def mask_on_grid(mask: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """``mask`` as a float32 ``[z, y, x]`` array in [0, 1] on ``reference``'s grid.

    The mask is resampled (linear) when the grids differ, so a binary mask stays a valid weight.

    Parameters
    ----------
    mask : SimpleITK.Image
        A 3D mask, binary or soft (values are clipped to [0, 1]).
    reference : SimpleITK.Image
        The image whose grid the mask goes onto.

    Returns
    -------
    numpy.ndarray
        float32 ``[z, y, x]`` in [0, 1], of ``reference``'s size.
    """
    if not _same_grid(mask, reference):
        mask = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), reference, sitk.Transform(),
                             sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(mask).astype(np.float32)
    return np.clip(array, 0.0, 1.0)


# --------------------------------------------------------------------------------------------------
# Blending
# --------------------------------------------------------------------------------------------------
def blend_images(a: sitk.Image, b: sitk.Image, mask: sitk.Image, *, levels: int,
                 naive: bool = True) -> Dict[str, sitk.Image]:
    """Laplacian-pyramid blend of ``a`` and ``b`` under ``mask`` (1 takes ``a``), and the naive blend.

    ``a`` and ``b`` must share a grid (a registered cohort); ``mask`` is resampled onto it if needed.
    The engine's :func:`RobustDeepLogic.blending.blend.laplacian_blend` and
    :func:`RobustDeepLogic.blending.baselines.naive_blend` do the work (docs/method.md §4).

    Parameters
    ----------
    a, b : SimpleITK.Image
        The two parents (one modality each), on one grid.
    mask : SimpleITK.Image
        Weights in [0, 1]; 1 takes ``a``.
    levels : int
        Laplacian pyramid levels (0: the naive blend).
    naive : bool, optional
        Also return the naive blend ``mask * a + (1 - mask) * b``.

    Returns
    -------
    dict of str to SimpleITK.Image
        ``{"laplacian": image}`` plus ``"naive"`` when asked: float32, on ``a``'s grid.

    Raises
    ------
    ValueError
        When ``a`` and ``b`` are not on one grid.
    EngineStageMissing
        When the engine has no ``blending`` module.
    InputError
        From the engine, e.g. when the grid cannot hold ``levels`` levels.
    """
    if not _same_grid(a, b):
        raise ValueError("the two patients are not on one grid: blend volumes of a registered cohort")
    blending = _stage("blending")
    x1 = sitk.GetArrayFromImage(a).astype(np.float32)
    x2 = sitk.GetArrayFromImage(b).astype(np.float32)
    m = mask_on_grid(mask, a)
    out = {"laplacian": np.asarray(blending.laplacian_blend(x1, x2, m, int(levels)))}
    if naive:
        out["naive"] = np.asarray(blending.naive_blend(x1, x2, m))
    images = {}
    for kind, array in out.items():
        image = sitk.GetImageFromArray(array.astype(np.float32))
        image.CopyInformation(a)
        images[kind] = image
    return images


# --------------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------------
def mask_choices() -> List[str]:
    """Names of the engine's mask presets, then of its generators (``RobustDeepLogic.masks``).

    Returns
    -------
    list of str
        The preset names, then the generator names that are not also presets.

    Raises
    ------
    EngineStageMissing
        When the engine has no ``masks`` module.
    """
    masks = _stage("masks")
    names = list(masks.PRESETS)
    names += [g for g in masks.GENERATORS if g not in names]
    return names


def mask_help(choice: str) -> str:
    """What a preset is, or the parameters a generator takes (the engine's own text).

    Parameters
    ----------
    choice : str
        A name from :func:`mask_choices`.

    Returns
    -------
    str
        ``"<choice>: <text>"`` (a generator's parameters before a preset's description, for a name
        that is both), or ``""`` for an unknown name.

    Raises
    ------
    EngineStageMissing
        When the engine has no ``masks`` module.
    """
    masks = _stage("masks")
    if choice in masks.GENERATORS:
        return f"{choice}: {masks.GENERATORS[choice]}"
    if choice in masks.PRESETS:
        return f"{choice}: {masks.PRESETS[choice].description}"
    return ""


def mask_spec(choice: str, parameters: str = "") -> str:
    """The engine's mask spec for a choice and its parameters.

    ``mask_spec("simple")`` is ``"simple"``; ``mask_spec("sphere", "centre=0,-20,10; radius=30")``
    is ``"sphere:centre=0,-20,10;radius=30"`` (parameters are ``key=value`` separated by ``;``, since
    values may hold commas).

    Parameters
    ----------
    choice : str
        A preset or generator name (surrounding spaces are dropped).
    parameters : str, optional
        ``key=value`` pairs separated by ``;``; empty parts are dropped.

    Returns
    -------
    str
        The spec, as :func:`RobustDeepLogic.masks.presets.mask_from_spec` reads it.

    Raises
    ------
    ValueError
        When ``choice`` is empty.
    """
    choice = (choice or "").strip()
    if not choice:
        raise ValueError("choose a mask preset or generator")
    parts = [p.strip() for p in (parameters or "").split(";") if p.strip()]
    return f"{choice}:{';'.join(parts)}" if parts else choice


def make_mask(spec: str, template: sitk.Image) -> sitk.Image:
    """The mask named by an engine spec (preset, generator, file) on ``template``'s grid.

    Parameters
    ----------
    spec : str
        A mask spec (:func:`mask_spec`), read by :func:`RobustDeepLogic.masks.presets.mask_from_spec`.
    template : SimpleITK.Image
        The template-space image whose grid the mask is made on.

    Returns
    -------
    SimpleITK.Image
        float32 in [0, 1], with ``template``'s geometry.

    Raises
    ------
    EngineStageMissing
        When the engine has no ``masks`` or ``io.volumes`` module.
    InputError
        From the engine, when the spec names nothing known, a file is not on the grid, or the mask is
        empty or full.
    """
    masks = _stage("masks")
    volumes = _stage("io.volumes")
    array = np.asarray(masks.mask_from_spec(spec, volumes.Grid.of(template)), dtype=np.float32)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(template)
    return image


def sample_pairs(
    reference: np.ndarray, prediction: np.ndarray, region: Optional[np.ndarray] = None,
    max_points: int = 5000, seed: int = 0,
) -> Tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` voxel pairs (reference, prediction) from ``region``, for display only.

    A seeded random subset (the same pairs every time), in voxel order.

    Parameters
    ----------
    reference, prediction : numpy.ndarray
        Two arrays with the same number of voxels (any shape; flattened).
    region : numpy.ndarray, optional
        Voxels > 0 are sampled; None: every voxel.
    max_points : int, optional
        The most pairs returned.
    seed : int, optional
        Seed of the subset.

    Returns
    -------
    tuple of numpy.ndarray
        ``(reference values, prediction values)``, two 1D arrays of the same length.

    Raises
    ------
    ValueError
        When ``reference`` and ``prediction`` differ in size.
    """
    ref = np.asarray(reference).ravel()
    pred = np.asarray(prediction).ravel()
    if ref.shape != pred.shape:
        raise ValueError(f"reference and prediction differ in size: {ref.shape} vs {pred.shape}")
    index = np.flatnonzero(np.asarray(region).ravel() > 0) if region is not None else np.arange(ref.size)
    if index.size > max_points:
        index = np.random.default_rng(seed).choice(index, size=max_points, replace=False)
        index.sort()
    return ref[index], pred[index]


# --------------------------------------------------------------------------------------------------
# Review
# --------------------------------------------------------------------------------------------------
#: Modalities a prediction can be reviewed as (the targets of the tasks); they choose the scaling.
REVIEW_MODALITIES = ("FD", "MAC", "CT")


def review_figures(prediction: sitk.Image, reference: sitk.Image, region: Optional[sitk.Image] = None,
                   *, modality: str = "FD", max_points: int = 5000) -> Dict[str, Any]:
    """Bias map, metrics and joint-histogram fit of one prediction, by the engine's evaluation.

    ``prediction`` and ``reference`` are in physical units (SUV, HU) on one grid. They are handed to
    ``RobustDeepLogic.evaluate.evaluation.evaluate_case`` (through a temporary folder), exactly as
    ``robustdeep evaluate`` would evaluate them: the metrics in the scaled [0, 1] units of
    ``modality`` (the engine's fixed constants) and in physical units, inside the head (``region`` if
    given, else the engine's head mask of the reference); the bias map is the engine's relative
    error map ``(P - R) / max(R, floor)`` on the scaled values (for CT: relative to ``HU + 1000``),
    returned in percent, 0 outside the head.

    Parameters
    ----------
    prediction, reference : SimpleITK.Image
        The predicted and reference volumes, in SUV (FD, MAC) or HU (CT), on one grid.
    region : SimpleITK.Image, optional
        The head region (voxels > 0.5 after :func:`mask_on_grid`); None: the engine's head mask of
        the reference.
    modality : str, optional
        ``FD``, ``MAC`` or ``CT`` (:data:`REVIEW_MODALITIES`, any case): chooses the engine's scaling
        constant.
    max_points : int, optional
        The most voxel pairs returned for the joint-histogram chart.

    Returns
    -------
    dict
        ``{"bias_percent": image, "head": the head region (uint8 image), "metrics": {name: value}
        (scaled units), "fit": {"slope",
        "intercept", "r2"} (physical units), "pairs": (reference, prediction) sampled head voxels in
        physical units, "rows": the engine's metric rows, "units": str}``; the bias image has
        ``reference``'s geometry.

    Raises
    ------
    ValueError
        When the two volumes are not on one grid, or ``modality`` is not a review modality.
    EngineStageMissing
        When the engine has no ``evaluate`` or ``cohort`` module.
    InputError
        From the engine's evaluation, e.g. an empty head mask or non-finite predicted values.

    References
    ----------
    .. [1] docs/method.md §8 (the metrics, the joint histogram and the bias map).
    """
    import shutil
    import tempfile
    from pathlib import Path

    evaluate = _stage("evaluate")
    cohort = _stage("cohort")
    if not _same_grid(prediction, reference):
        raise ValueError("the prediction and its reference are not on one grid: resample one first")
    modality = modality.upper()
    if modality not in REVIEW_MODALITIES or modality not in cohort.DEFAULT_SCALING:
        raise ValueError(f"review a prediction as one of {', '.join(REVIEW_MODALITIES)}, not {modality}")
    scaling = cohort.DEFAULT_SCALING[modality]
    folder = Path(tempfile.mkdtemp(prefix="robustdeep-review-"))
    try:
        ref_path, pred_path = folder / "reference.nii.gz", folder / "prediction.nii.gz"
        sitk.WriteImage(sitk.Cast(reference, sitk.sitkFloat32), str(ref_path))
        sitk.WriteImage(sitk.Cast(prediction, sitk.sitkFloat32), str(pred_path))
        mask_path = None
        if region is not None:
            mask_path = folder / "head.nii.gz"
            head = sitk.GetImageFromArray((mask_on_grid(region, reference) > 0.5).astype(np.uint8))
            head.CopyInformation(reference)
            sitk.WriteImage(head, str(mask_path))
        case = evaluate.Case(task="review", scenario="slicer", patient="review", reference=ref_path,
                             prediction=pred_path, mask=mask_path, modality=modality)
        options = evaluate.EvaluationOptions(maps=True, pngs=False)
        result = evaluate.evaluate_case(case, scaling, options, out_dir=folder / "out")
        rows = {(row["units"], row["region"]): row for row in result.rows}
        relative = sitk.ReadImage(result.files["relerr"], sitk.sitkFloat32)
        head_mask = sitk.GetArrayFromImage(sitk.ReadImage(result.files["mask"])) > 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    bias_image = sitk.GetImageFromArray(100.0 * sitk.GetArrayFromImage(relative))
    bias_image.CopyInformation(reference)
    scaled, physical = rows[("scaled", "head")], rows[("physical", "head")]
    numeric = {k: float(v) for k, v in scaled.items()
               if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               and k != "epoch"}
    ref = sitk.GetArrayFromImage(reference).astype(np.float32)
    pred = sitk.GetArrayFromImage(prediction).astype(np.float32)
    return {
        "bias_percent": bias_image,
        "head": _mask_image(head_mask, reference),
        "metrics": numeric,
        "fit": {"slope": float(physical["slope"]), "intercept": float(physical["intercept"]),
                "r2": float(physical["r2"])},
        "pairs": sample_pairs(ref, pred, head_mask, max_points=max_points),
        "rows": list(result.rows),
        "units": f"scaled = ({modality} - {scaling.offset:g}) / {scaling.scale:g} ({scaling.unit})",
    }


def _mask_image(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(mask, dtype=np.uint8))
    image.CopyInformation(reference)
    return image


__all__ = ["EngineStageMissing", "REVIEW_MODALITIES", "blend_images", "make_mask", "mask_choices", "mask_help",
           "mask_on_grid", "mask_spec", "review_figures", "sample_pairs"]
