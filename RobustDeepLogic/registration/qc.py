"""Quality control of registration to template space: figures, the summary table, QC pictures.

Per patient (:func:`patient_qc`), all in template space:

``dice``
    Dice overlap of the patient's head mask (from CT at -500 HU, else from the reference PET,
    resampled with the PET/CT transform) with the template head mask (SPM TPM, air probability < 0.5).
``correlation``
    Pearson correlation of the registered reference PET (FD, else MAC, LD or NAC) with the FDG
    template inside the template head mask: an intensity check that head-mask overlap alone would
    miss (a PET turned upside down still fills the head).
``t1_dice``, ``t2_dice``
    Dice of the registered T1 / T2 head mask with the patient's head mask (CT, else the reference
    PET): the check of the MR-to-CT step.
``metric``, ``t1_metric``, ``t2_metric``
    The final metric value of each registration (Mattes MI: negative, lower is better); recorded,
    not thresholded (its scale depends on the images).
``overlap``
    Fraction of the template head that falls inside the native image after registration.
``scale``
    The patient's brain size against the template's, from the brain refinement's similarity fit
    (1 when the refinement is off); recorded. A refinement that fails or finds a scale outside
    0.75-1.33 is rejected, and the patient flagged.

A patient is flagged (``ok`` false) when ``dice < 0.85``, ``correlation < 0.7``, a ``t1_dice`` or
``t2_dice < 0.85``, an ``overlap < 0.9``, a rejected brain refinement or a rotation search in which
no candidate could be evaluated (any registration of the patient; the Dice and correlation
thresholds are those of :class:`~RobustDeepLogic.registration.config.RegistrationOptions`; the
overlap threshold is fixed; docs/registration.md gives the figures they were chosen from).
``registration_qc.csv`` (:func:`write_summary_csv`) lists every patient with these figures, its
status and the reasons it was flagged; :func:`qc_figure` draws a patient's QC picture.

Validation on known poses: :func:`target_registration_error` is the distance between the true and
the estimated position of every brain voxel (:func:`mask_points`) of a case made by
:func:`~RobustDeepLogic.registration.known_pose.known_pose_case`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.files import atomic_path
from RobustDeepLogic.core.modalities import MR_FAMILY, PET_FAMILY
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.volumes import Grid
from RobustDeepLogic.registration.images import _physical_points, foreground_mask
from RobustDeepLogic.registration.rigid import (
    affine_parts,
)
from RobustDeepLogic.registration.templates import (
    fdg_template,
)


# --------------------------------------------------------------------------------------------------
# Overlap and alignment measures
# --------------------------------------------------------------------------------------------------
def dice(a: Union[np.ndarray, sitk.Image], b: Union[np.ndarray, sitk.Image]) -> float:
    """Dice coefficient ``2 |A n B| / (|A| + |B|)`` of two binary masks.

    Parameters
    ----------
    a, b : numpy.ndarray or SimpleITK.Image
        Masks of the same shape (images on the same grid); voxels above 0 are inside.

    Returns
    -------
    float
        The Dice coefficient in [0, 1]; 1.0 when both masks are empty.
    """
    if isinstance(a, sitk.Image):
        a = sitk.GetArrayViewFromImage(a)
    if isinstance(b, sitk.Image):
        b = sitk.GetArrayViewFromImage(b)
    a = np.asarray(a) > 0
    b = np.asarray(b) > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def masked_correlation(x: sitk.Image, y: sitk.Image, mask: sitk.Image) -> float:
    """Pearson correlation of two images on one grid, over the voxels of ``mask``.

    Parameters
    ----------
    x, y : SimpleITK.Image
        Two images on the same grid.
    mask : SimpleITK.Image
        Mask on that grid; voxels above 0 are used.

    Returns
    -------
    float
        The correlation coefficient in [-1, 1]; 0.0 when the mask has fewer than 2 voxels or either
        image is constant inside it.
    """
    m = sitk.GetArrayViewFromImage(mask) > 0
    a = sitk.GetArrayViewFromImage(x)[m].astype(np.float64)
    b = sitk.GetArrayViewFromImage(y)[m].astype(np.float64)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def target_registration_error(estimated: sitk.Transform, true: sitk.Transform,
                              points: np.ndarray) -> np.ndarray:
    """Distances between ``estimated(p)`` and ``true(p)`` for each point ``p``: the target
    registration error.

    Parameters
    ----------
    estimated, true : SimpleITK.Transform
        Two affine transforms (e.g. a registration's result and the known transform) in the same
        convention.
    points : numpy.ndarray
        ``[n, 3]`` LPS points in mm (e.g. :func:`mask_points` of the template brain).

    Returns
    -------
    numpy.ndarray
        ``[n]`` distances in mm.
    """
    a1, b1 = affine_parts(estimated)
    a2, b2 = affine_parts(true)
    pts = np.asarray(points, float)
    diff = pts @ (a1 - a2).T + (b1 - b2)
    return np.linalg.norm(diff, axis=1)


def mask_points(mask: sitk.Image, every: int = 1) -> np.ndarray:
    """LPS coordinates of the voxels of a mask.

    Parameters
    ----------
    mask : SimpleITK.Image
        A 3D mask; voxels above 0 are inside.
    every : int, optional
        Keep every ``every``-th voxel, in ``[z, y, x]`` (C) order (default 1: all).

    Returns
    -------
    numpy.ndarray
        ``[n, 3]`` float64 LPS voxel centres in mm.
    """
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:: max(1, int(every))]
    return _physical_points(mask, idx)


def patient_qc(images: Mapping[str, sitk.Image], head: sitk.Image, template, results: Mapping,
               *, reference: str, options) -> Dict[str, Any]:
    """QC figures of one registered patient (module doc); ``ok`` and ``flags`` say if it passed.

    Parameters
    ----------
    images : mapping of str to SimpleITK.Image
        The registered images by modality, on the template grid.
    head : SimpleITK.Image
        The patient's registered head mask (uint8) on the template grid.
    template : TemplateSpace
        The template: ``fdg``, ``head_mask`` on the same grid.
    results : mapping of str to RigidResult
        The registration results of the reference PET and of each MR image, by modality.
    reference : str
        The PET modality registered to the template (its correlation with the template is tested).
    options : RegistrationOptions
        The thresholds ``dice_threshold``, ``correlation_threshold`` and ``mr_dice_threshold``.

    Returns
    -------
    dict
        ``dice``, ``correlation``, ``metric``, ``overlap``, ``scale`` (rounded floats), per MR image
        ``t1_dice`` / ``t1_metric`` (``t2_...``), ``ok`` (bool) and ``flags`` (list of str: why the
        patient was flagged).
    """
    qc: Dict[str, Any] = {}
    flags: List[str] = []
    d = dice(head, template.head_mask)
    qc["dice"] = round(d, 4)
    if d < options.dice_threshold:
        flags.append(f"head-mask Dice {d:.3f} < {options.dice_threshold}")
    r = masked_correlation(images[reference], template.fdg, template.head_mask)
    qc["correlation"] = round(r, 4)
    if r < options.correlation_threshold:
        flags.append(f"{reference} correlation with the template {r:.3f} < "
                     f"{options.correlation_threshold}")
    res = results[reference]
    qc["metric"] = round(float(res.metric), 6)
    qc["overlap"] = round(float(res.overlap), 4)
    if res.overlap < 0.9:
        flags.append(f"only {100 * res.overlap:.0f} % of the template head lies inside {reference}")
    qc["scale"] = round(float(res.scale), 4)
    if res.refinement.startswith("rejected"):
        flags.append(f"brain refinement {res.refinement}: the rigid result was kept")
    for name, r in results.items():
        if r.rotation_search.startswith("failed"):
            flags.append(f"{name} rotation search {r.rotation_search}")

    for mr in MR_FAMILY:
        if mr not in images:
            continue
        mr_mask = foreground_mask(images[mr], modality=mr)
        md = dice(mr_mask, head)
        qc[f"{mr.lower()}_dice"] = round(md, 4)
        qc[f"{mr.lower()}_metric"] = round(float(results[mr].metric), 6)
        if md < options.mr_dice_threshold:
            flags.append(f"{mr} head-mask Dice with the patient's head {md:.3f} < "
                         f"{options.mr_dice_threshold}")
    qc["ok"] = not flags
    qc["flags"] = flags
    return qc


# --------------------------------------------------------------------------------------------------
# Summary table
# --------------------------------------------------------------------------------------------------
#: The columns of ``registration_qc.csv``, in order.
CSV_COLUMNS = ("patient", "status", "ok", "reference", "dice", "correlation", "overlap", "metric",
               "scale", "t1_dice", "t2_dice", "t1_metric", "t2_metric", "seconds", "flags")


def summary_rows(entries: Sequence[Patient], failed: Mapping[str, str]) -> List[Dict[str, Any]]:
    """One row per patient: registered ones from their manifest entries, failed ones with the error.

    Parameters
    ----------
    entries : sequence of Patient
        Registered entries, with ``meta['registration']`` as written by
        :func:`~RobustDeepLogic.registration.patient.save_patient`.
    failed : mapping of str to str
        Error message by id of the patients that could not be registered.

    Returns
    -------
    list of dict
        Rows keyed by :data:`CSV_COLUMNS`: status ``'done'`` with the QC figures (empty where absent)
        and the flags joined by ``'; '``, then status ``'error'`` rows with ``ok`` False and the
        message under ``flags``.
    """
    rows: List[Dict[str, Any]] = []
    for e in entries:
        reg = e.meta.get("registration", {})
        qc = reg.get("qc", {})
        row = {"patient": e.id, "status": "done", "ok": bool(qc.get("ok", False)),
               "reference": reg.get("reference", ""), "seconds": reg.get("seconds", "")}
        for key in ("dice", "correlation", "overlap", "metric", "scale", "t1_dice", "t2_dice", "t1_metric",
                    "t2_metric"):
            row[key] = qc.get(key, "")
        row["flags"] = "; ".join(qc.get("flags", []))
        rows.append(row)
    for pid, message in failed.items():
        rows.append({"patient": pid, "status": "error", "ok": False, "flags": message})
    return rows


def write_summary_csv(rows: Iterable[Mapping[str, Any]], path: PathLike) -> Path:
    """Write the QC summary table (columns :data:`CSV_COLUMNS`) atomically.

    Parameters
    ----------
    rows : iterable of mapping
        Rows as from :func:`summary_rows`; missing columns are left empty, other keys ignored.
    path : path-like
        The CSV file (``registration_qc.csv`` of a registered cohort).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Pictures
# --------------------------------------------------------------------------------------------------
def _norm(arr: np.ndarray, lo: Optional[float] = None, hi: Optional[float] = None) -> np.ndarray:
    if lo is None or hi is None:
        lo, hi = np.percentile(arr, [1, 99.5])
    return np.clip((arr - lo) / max(hi - lo, 1e-9), 0, 1)


def checkerboard(a: np.ndarray, b: np.ndarray, squares: int = 8) -> np.ndarray:
    """A 2D checkerboard of two equally shaped slices.

    Parameters
    ----------
    a, b : numpy.ndarray
        ``[h, w]`` slices of the same shape.
    squares : int, optional
        Number of squares along the longer side (default 8).

    Returns
    -------
    numpy.ndarray
        ``[h, w]``: ``a`` in the squares whose row and column indices have an even sum, ``b`` in the
        others.
    """
    h, w = a.shape
    size = max(1, max(h, w) // squares)
    yy, xx = np.indices((h, w))
    return np.where(((yy // size) + (xx // size)) % 2 == 0, a, b)


def _three_views(arr: np.ndarray) -> List[np.ndarray]:
    z, y, x = (s // 2 for s in arr.shape)
    return [arr[z], arr[:, y, :], arr[:, :, x]]


def qc_figure(images: Mapping[str, sitk.Image], head: sitk.Image, qc: Mapping[str, Any],
              path: PathLike, *, title: str = "", template_fdg: Optional[sitk.Image] = None) -> Path:
    """A PNG: checkerboard of the registered PET with the FDG template, and CT / MR with the head
    outline, in axial, coronal and sagittal mid-slices of the template grid.

    Slices are shown with the subject's superior / anterior up and the subject's right on the
    viewer's right (the template grid's axes run along MNI +x, +y, +z). The title gives the Dice,
    the correlation and the status. Needs matplotlib.

    Parameters
    ----------
    images : mapping of str to SimpleITK.Image
        The registered images by modality, on the template grid; the first PET of FD, LD, NAC, MAC
        is shown against the template, CT in a -200 to 1200 HU window, T1 / T2 between their 1st and
        99.5th percentiles.
    head : SimpleITK.Image
        The patient's registered head mask, outlined on CT and MR.
    qc : mapping
        The patient's QC figures (:func:`patient_qc`): ``dice``, ``correlation``, ``ok``, ``flags``.
    path : path-like
        The PNG file, written atomically.
    title : str, optional
        Start of the figure title (the patient id).
    template_fdg : SimpleITK.Image, optional
        The FDG template on the same grid (default: the model template,
        :func:`~RobustDeepLogic.registration.templates.fdg_template`, on ``head``'s grid).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if template_fdg is None:
        template_fdg = fdg_template(Grid.of(head))
    rows: List[Tuple[str, List[np.ndarray], Optional[List[np.ndarray]]]] = []
    ref = next((m for m in PET_FAMILY if m in images), None)
    head_arr = sitk.GetArrayViewFromImage(head) > 0
    if ref is not None:
        pet = _norm(sitk.GetArrayViewFromImage(images[ref]))
        tpl = _norm(sitk.GetArrayViewFromImage(template_fdg))
        rows.append((f"{ref} / template", [checkerboard(p, t) for p, t in
                                           zip(_three_views(pet), _three_views(tpl))], None))
    for modality, window in (("CT", (-200.0, 1200.0)), ("T1", None), ("T2", None)):
        if modality in images:
            arr = sitk.GetArrayViewFromImage(images[modality])
            arr = _norm(arr, *window) if window else _norm(arr)
            rows.append((modality, _three_views(arr), _three_views(head_arr.astype(float))))
    fig = Figure(figsize=(9, 3 * max(1, len(rows))), dpi=72)
    FigureCanvasAgg(fig)
    for r, (label, views, contours) in enumerate(rows):
        for c, view in enumerate(views):
            ax = fig.add_subplot(len(rows), 3, r * 3 + c + 1)
            ax.imshow(view, cmap="gray", origin="lower", vmin=0, vmax=1, aspect="equal")
            if contours is not None:
                ax.contour(contours[c], levels=[0.5], colors="yellow", linewidths=0.7,
                           origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label)
    status = "OK" if qc.get("ok") else "FLAGGED: " + "; ".join(qc.get("flags", []))
    fig.suptitle(f"{title}  Dice {qc.get('dice', float('nan')):.3f}  r {qc.get('correlation', float('nan')):.3f}"
                 f"  {status}"[:160], fontsize=9)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), format="png")
    return path
