"""Quality control of registration to template space, and known-pose cases to validate it.

Per patient (:func:`patient_qc`), all in template space:

``dice``
    Dice overlap of the patient's head mask (from CT at -500 HU, else from FD, resampled with the
    PET/CT transform) with the template head mask (SPM TPM, air probability < 0.5).
``correlation``
    Pearson correlation of the registered reference PET (FD) with the FDG template inside the
    template head mask: an intensity check that head-mask overlap alone would miss (a PET turned
    upside down still fills the head).
``mr_dice`` (per MR image)
    Dice of the registered T1 / T2 head mask with the patient's head mask (CT, else FD): the check of
    the MR-to-CT step.
``metric``
    The final metric value of each registration (Mattes MI: negative, lower is better); recorded,
    not thresholded (its scale depends on the images).
``overlap``
    Fraction of the template head that falls inside the native image after registration.
``scale``
    The patient's brain size against the template's, from the brain refinement's similarity fit
    (1 when the refinement is off); recorded. A refinement that fails or finds a scale outside
    0.75-1.33 is rejected, and the patient flagged.

A patient is flagged (``ok`` false) when ``dice < 0.85``, ``correlation < 0.7``, an ``mr_dice < 0.85``,
an ``overlap < 0.9`` or a rejected brain refinement (thresholds of :class:`~RobustDeepLogic.registration.RegistrationOptions`;
docs/registration.md gives the figures they were chosen from). ``registration_qc.csv`` lists every
patient with these figures, its status and the reasons it was flagged.

Validation on known poses (:func:`known_pose_case`, :func:`target_registration_error`): images of
every modality are made from the template anatomy with different contrast, noise and resolution,
moved through a known rigid transform onto a native grid; the target registration error is the
distance between the true and the estimated position of every brain voxel.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .cohort import MR_FAMILY, PET_FAMILY, Patient
from .volumes import Grid, atomic_path

PathLike = Union[str, Path]


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------
def dice(a: Union[np.ndarray, sitk.Image], b: Union[np.ndarray, sitk.Image]) -> float:
    """Dice coefficient ``2 |A n B| / (|A| + |B|)`` of two binary masks (1.0 when both are empty)."""
    if isinstance(a, sitk.Image):
        a = sitk.GetArrayViewFromImage(a)
    if isinstance(b, sitk.Image):
        b = sitk.GetArrayViewFromImage(b)
    a = np.asarray(a) > 0
    b = np.asarray(b) > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def masked_correlation(x: sitk.Image, y: sitk.Image, mask: sitk.Image) -> float:
    """Pearson correlation of two images on one grid, over the voxels of ``mask``."""
    m = sitk.GetArrayViewFromImage(mask) > 0
    a = sitk.GetArrayViewFromImage(x)[m].astype(np.float64)
    b = sitk.GetArrayViewFromImage(y)[m].astype(np.float64)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def target_registration_error(estimated: sitk.Transform, true: sitk.Transform,
                              points: np.ndarray) -> np.ndarray:
    """Distances (mm) between ``estimated(p)`` and ``true(p)`` for each row of ``points`` (n, 3), LPS."""
    from .registration import affine_parts

    a1, b1 = affine_parts(estimated)
    a2, b2 = affine_parts(true)
    pts = np.asarray(points, float)
    diff = pts @ (a1 - a2).T + (b1 - b2)
    return np.linalg.norm(diff, axis=1)


def mask_points(mask: sitk.Image, every: int = 1) -> np.ndarray:
    """LPS coordinates (n, 3) of the voxels of ``mask`` (every ``every``-th voxel)."""
    from .registration import _physical_points

    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:: max(1, int(every))]
    return _physical_points(mask, idx)


def patient_qc(images: Mapping[str, sitk.Image], head: sitk.Image, template, results: Mapping,
               *, reference: str, options) -> Dict[str, Any]:
    """QC figures of one registered patient (module doc); ``ok`` and ``flags`` say if it passed."""
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
    from .registration import foreground_mask

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
CSV_COLUMNS = ("patient", "status", "ok", "reference", "dice", "correlation", "overlap", "metric",
               "scale", "t1_dice", "t2_dice", "t1_metric", "t2_metric", "seconds", "flags")


def summary_rows(entries: Sequence[Patient], failed: Mapping[str, str]) -> List[Dict[str, Any]]:
    """One row per patient: registered ones from their manifest entries, failed ones with the error."""
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
    """Write the QC summary table (columns :data:`CSV_COLUMNS`) atomically."""
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
    """A 2D checkerboard of two equally shaped slices (``squares`` squares along the longer side)."""
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
    viewer's right (the template grid's axes run along MNI +x, +y, +z).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if template_fdg is None:
        from .templates import fdg_template

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


# --------------------------------------------------------------------------------------------------
# Known-pose cases
# --------------------------------------------------------------------------------------------------
@dataclass
class KnownPoseCase:
    """Native-space images of one synthetic subject and the true transforms.

    ``true["PETCT"]`` maps template points to PET/CT points; ``true["MR"]`` maps CT points to MR
    points (T1 and T2 share it); ``true_mr_template`` = MR o PETCT maps template points to MR points.
    All follow the registration convention of :mod:`RobustDeepLogic.registration`.
    """

    images: Dict[str, sitk.Image]
    true: Dict[str, sitk.Transform]
    pose: Dict[str, Any] = field(default_factory=dict)

    @property
    def true_mr_template(self) -> sitk.Transform:
        from .registration import compose_rigid

        return compose_rigid(self.true["MR"], self.true["PETCT"])


def native_grid(center_lps: Sequence[float], spacing: Sequence[float],
                extent_mm: Sequence[float]) -> Grid:
    """An axis-aligned (LPS identity direction) grid of ``extent_mm`` centred on ``center_lps``."""
    spacing = np.asarray(spacing, float)
    size = np.maximum(np.round(np.asarray(extent_mm, float) / spacing).astype(int), 4)
    origin = np.asarray(center_lps, float) - (size - 1) / 2.0 * spacing
    return Grid(tuple(int(s) for s in size), tuple(float(s) for s in spacing),
                tuple(float(o) for o in origin))


def random_pose(rng: np.random.Generator, max_angle_deg: float = 15.0,
                max_shift_mm: float = 20.0) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Angles (deg, about LPS x, y, z) and a shift (mm), each uniform within the given bounds."""
    angles = tuple(float(a) for a in rng.uniform(-max_angle_deg, max_angle_deg, 3))
    shift = tuple(float(t) for t in rng.uniform(-max_shift_mm, max_shift_mm, 3))
    return angles, shift


def known_pose_case(
    *,
    petct_pose: Tuple[Sequence[float], Sequence[float]] = ((0, 0, 0), (0, 0, 0)),
    mr_pose: Tuple[Sequence[float], Sequence[float]] = ((0, 0, 0), (0, 0, 0)),
    modalities: Sequence[str] = ("FD", "CT", "T1"),
    spacing: float = 2.0,
    pet_spacing: Sequence[float] = (2.03, 2.03, 2.2),
    ct_spacing: Sequence[float] = (1.0, 1.0, 2.0),
    mr_spacing: Sequence[float] = (1.0, 1.0, 1.2),
    scanner_offset_mm: Sequence[float] = (12.0, -180.0, 950.0),
    anatomy: str = "mni152",
    noise: float = 0.05,
    seed: int = 0,
    head_scale: float = 1.0,
    scale_centre_mni: Sequence[float] = (0.0, -18.0, 18.0),
) -> KnownPoseCase:
    """A synthetic subject with known poses, made from the template anatomy.

    The anatomy (:func:`~RobustDeepLogic.templates.tissue_maps`, default ``'mni152'``: sharper grey
    and white matter than the TPM the FDG template is made of) is built on a template grid of
    ``spacing`` mm, given per-subject tissue values (the model's +-20 %), and moved into native
    grids: PET (FD, LD, NAC, MAC: PET resolution 5 mm FWHM, multiplicative noise ``noise``; LD with
    4.5x the noise; NAC with a radial attenuation loss), CT (HU, noise 15 HU) and MR (T1, T2, noise
    ``noise``, a smooth bias field). The PET/CT frame lies ``scanner_offset_mm`` away from MNI (a
    scanner's couch position) and is rotated and shifted by ``petct_pose`` (degrees about LPS x, y,
    z; mm) about the head centre; MR is moved by ``mr_pose`` relative to CT.

    ``head_scale`` makes the subject's head that many times the template's, scaled about
    ``scale_centre_mni`` (MNI mm). No rigid transform then matches exactly: ``true["PETCT"]`` is the
    rigid transform closest to the true (similarity) one over the template brain
    (:func:`~RobustDeepLogic.registration.closest_rigid`), as ``best_rigid_transform`` is for a
    simulated cohort, and ``true["PETCT_full"]`` the similarity itself (template -> PET/CT points).
    """
    from .registration import affine_parts, closest_rigid, compose_rigid, rigid_transform
    from .templates import (TISSUE_CLASSES, TISSUE_VALUES, brain_mask, mni_to_lps, smooth_fwhm,
                            template_grid, tissue_maps)

    rng = np.random.default_rng(seed)
    tgrid = template_grid(spacing)
    maps = tissue_maps(tgrid, anatomy)
    head_centre_lps = np.array([0.0, 18.0, 18.0])  # MNI (0, -18, 18): about the head's centre
    offset = np.asarray(scanner_offset_mm, float)
    angles, shift = petct_pose
    # template -> PET/CT: x_native = R (x - c) + c + shift + offset
    t_petct = rigid_transform(angles, np.asarray(shift, float) + offset, head_centre_lps)
    native_centre = np.asarray(t_petct.TransformPoint(head_centre_lps.tolist()))
    m_angles, m_shift = mr_pose
    t_mr = rigid_transform(m_angles, m_shift, native_centre)  # CT -> MR points
    t_mr_total = compose_rigid(t_mr, t_petct)

    def scaled(tx: sitk.Transform) -> sitk.Transform:
        """``tx`` after the subject's head scaling (template points -> native points)."""
        if float(head_scale) == 1.0:
            return tx
        c = mni_to_lps(scale_centre_mni)
        a, b = affine_parts(tx)
        out = sitk.AffineTransform(3)
        out.SetMatrix([float(v) for v in (a * float(head_scale)).ravel()])
        out.SetTranslation([float(v) for v in a @ (c * (1.0 - float(head_scale))) + b])
        return out

    full_petct, full_mr = scaled(t_petct), scaled(t_mr_total)

    def values_for(modality: str) -> Dict[str, float]:
        base = TISSUE_VALUES[modality]
        out = {}
        for cls in TISSUE_CLASSES:
            v = base[cls]
            out[cls] = v if cls == "air" or modality == "CT" and cls == "bone" else \
                v * float(rng.uniform(0.8, 1.2))
        return out

    def model(modality: str) -> np.ndarray:
        from .templates import tissue_model_image

        return sitk.GetArrayFromImage(tissue_model_image(modality, tgrid, maps=maps,
                                                         values=values_for(modality)))

    def to_native(arr: np.ndarray, tx: sitk.Transform, grid: Grid, default: float) -> sitk.Image:
        img = sitk.GetImageFromArray(arr.astype(np.float32))
        tgrid.apply_to(img)
        ref = sitk.Image([int(s) for s in grid.size], sitk.sitkFloat32)
        grid.apply_to(ref)
        return sitk.Resample(img, ref, tx.GetInverse(), sitk.sitkLinear, float(default),
                             sitk.sitkFloat32)

    images: Dict[str, sitk.Image] = {}
    pet_grid = native_grid(native_centre, pet_spacing, (260, 260, 230))
    ct_grid = native_grid(native_centre, ct_spacing, (240, 260, 230))
    mr_centre = np.asarray(t_mr.TransformPoint(native_centre.tolist()))
    mr_grid = native_grid(mr_centre, mr_spacing, (230, 250, 220))
    wanted = [m.upper() for m in modalities]
    if any(m in PET_FAMILY for m in wanted):
        fd_arr = model("FD")
        fd_img = smooth_fwhm(sitk.GetImageFromArray(fd_arr), 5.0 / spacing)  # voxel units here
        fd_arr = sitk.GetArrayFromImage(fd_img)
        for m in PET_FAMILY:
            if m not in wanted:
                continue
            arr = fd_arr.copy()
            if m == "NAC":
                zz, yy, xx = np.indices(arr.shape, dtype=np.float32)
                c = np.array(arr.shape, np.float32)[:, None, None, None] / 2
                r = np.sqrt(((np.stack([zz, yy, xx]) - c) ** 2).sum(0)) * spacing
                arr = arr * (0.3 + 0.7 * np.clip(r / 90.0, 0, 1)) * 0.4
            native = sitk.GetArrayFromImage(to_native(arr, full_petct, pet_grid, 0.0))
            sd = noise * (4.5 if m == "LD" else 1.0)
            native = native * (1 + sd * rng.standard_normal(native.shape).astype(np.float32))
            images[m] = pet_grid.apply_to(sitk.GetImageFromArray(np.maximum(native, 0)))
    if "CT" in wanted:
        native = sitk.GetArrayFromImage(to_native(model("CT"), full_petct, ct_grid, -1000.0))
        native = native + 15.0 * rng.standard_normal(native.shape).astype(np.float32)
        images["CT"] = ct_grid.apply_to(sitk.GetImageFromArray(native))
    for m in MR_FAMILY:
        if m not in wanted:
            continue
        native = sitk.GetArrayFromImage(to_native(model(m), full_mr, mr_grid, 0.0))
        zz, yy, xx = np.indices(native.shape, dtype=np.float32)
        bias = 1 + 0.1 * np.sin(xx / native.shape[2] * np.pi) * np.cos(zz / native.shape[0] * 2)
        native = native * bias * (1 + noise * rng.standard_normal(native.shape).astype(np.float32))
        images[m] = mr_grid.apply_to(sitk.GetImageFromArray(np.maximum(native, 0)))
    pose = {"petct": {"angles_deg": list(map(float, angles)), "shift_mm": list(map(float, shift))},
            "mr": {"angles_deg": list(map(float, m_angles)), "shift_mm": list(map(float, m_shift))},
            "scanner_offset_mm": offset.tolist(), "head_scale": float(head_scale)}
    true = {"PETCT": t_petct, "MR": t_mr, "PETCT_full": full_petct}
    if float(head_scale) != 1.0:
        true["PETCT"] = closest_rigid(full_petct, mask_points(brain_mask(tgrid)),
                                      center=t_petct.GetCenter())
    return KnownPoseCase(images=images, true=true, pose=pose)
