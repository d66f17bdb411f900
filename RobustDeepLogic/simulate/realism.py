"""Realism evidence for a simulated cohort (``robustdeep simulate COHORT --realism``).

Per subject, using the ground-truth label maps written beside the images (``SIMnnn/truth/``):

- **FD GM/WM**: mean FD SUV over voxels labelled grey matter over that of white matter (labels need a
  tissue fraction >= 0.6), beside the same ratio in the true activity and the model's tissue ratio;
- **LD vs FD**: PSNR and SSIM of LD against FD over the head, after the cohort's fixed scaling
  (SUV / 15). PSNR as ``docs/method.md`` §8 (``Max`` = the larger maximum); SSIM twice: the paper's single
  global statistic (c1 0.01, c2 0.02) and the standard windowed SSIM (Gaussian window sigma 1.5
  voxels, c1 (0.01 D)^2, c2 (0.03 D)^2, D = 1);
- **NAC pattern**: NAC / MAC in the outer 5 mm of the head (rim) and in its deepest 10 % (centre),
  as is and after scaling NAC to MAC's total over the head (rim > 1 > centre is the classic pattern);
- **CT HU per tissue** (median and 5th-95th percentiles over the cohort, CT label maps);
- **MR contrasts**: T1 WM/GM, T2 CSF/WM.

:func:`psnr`, :func:`ssim_global` and :func:`ssim_windowed` are small versions for these checks; the
evaluation of predictions uses :mod:`RobustDeepLogic.evaluate.metrics` and
:mod:`RobustDeepLogic.evaluate.ssim`. Measured figures: ``docs/simulation.md`` §6.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_path, atomic_write_text
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.io.headmask import fill_holes
from RobustDeepLogic.simulate.anatomy import LABELS

_NAMES = {v: k for k, v in LABELS.items()}


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """PSNR (dB) with ``Max`` the larger maximum of the two (``docs/method.md`` §8).

    ``20 log10(Max / sqrt(MSE))`` over all elements of the arrays.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference values, any shape (here the head voxels of FD, scaled).
    test : numpy.ndarray
        Values compared with it, the same shape and units.

    Returns
    -------
    float
        The PSNR in dB; ``inf`` when the arrays are equal.

    References
    ----------
    .. [1] ``docs/method.md`` §8.
    """
    mse = float(np.mean((reference - test) ** 2))
    peak = max(float(reference.max()), float(test.max()))
    return 20.0 * math.log10(peak / math.sqrt(mse)) if mse > 0 else float("inf")


def ssim_global(reference: np.ndarray, test: np.ndarray, c1: float = 0.01, c2: float = 0.02) -> float:
    """The paper's single-statistic SSIM over the given voxels.

    ``(2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2))`` with the means, the
    population variances and the covariance of all elements.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference values, any shape (here the head voxels of FD, scaled to [0, 1]).
    test : numpy.ndarray
        Values compared with it, the same shape and units.
    c1, c2 : float, optional
        The paper's constants, for scaled [0, 1] values (defaults 0.01 and 0.02).

    Returns
    -------
    float
        The SSIM; 1 for equal arrays.

    References
    ----------
    .. [1] ``docs/method.md`` §8.
    """
    mr, mp = reference.mean(), test.mean()
    cov = float(np.mean((reference - mr) * (test - mp)))
    return float((2 * mr * mp + c1) * (2 * cov + c2) / ((mr ** 2 + mp ** 2 + c1)
                                                         * (reference.var() + test.var() + c2)))


def ssim_windowed(reference: np.ndarray, test: np.ndarray, mask: np.ndarray, data_range: float = 1.0,
                  sigma: float = 1.5) -> float:
    """Mean of the standard Gaussian-window SSIM map (Wang et al. 2004) over ``mask``.

    Constants ``c1 = (0.01 D)^2`` and ``c2 = (0.03 D)^2``; the window is truncated at 3.5 sigma.

    Parameters
    ----------
    reference : numpy.ndarray
        Reference volume, ``[z, y, x]`` (scaled units).
    test : numpy.ndarray
        Volume compared with it, the same shape and units.
    mask : numpy.ndarray
        Boolean ``[z, y, x]`` mask of the voxels whose SSIM values are averaged.
    data_range : float, optional
        ``D``, the range of the values (default 1, for scaled [0, 1] images).
    sigma : float, optional
        Sigma of the Gaussian window, in voxels (default 1.5).

    Returns
    -------
    float
        The mean SSIM over ``mask``.

    References
    ----------
    .. [1] Wang Z, Bovik AC, Sheikh HR, Simoncelli EP, "Image quality assessment: from error
       visibility to structural similarity", IEEE Trans Image Process 13(4):600-612, 2004.
    .. [2] ``docs/method.md`` §8 (our rule: the windowed SSIM beside the paper's).
    """
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    g = lambda a: ndimage.gaussian_filter(a.astype(np.float64), sigma, truncate=3.5)  # noqa: E731
    mr, mp = g(reference), g(test)
    srr, spp, srp = g(reference * reference) - mr ** 2, g(test * test) - mp ** 2, g(reference * test) - mr * mp
    ssim = (2 * mr * mp + c1) * (2 * srp + c2) / ((mr ** 2 + mp ** 2 + c1) * (srr + spp + c2))
    return float(ssim[mask].mean())


def _read(cohort: Cohort, rel: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.root / rel)))


def subject_realism(cohort: Cohort, patient) -> Dict[str, Any]:
    """The realism figures of one simulated subject (see the module docstring).

    The head is the voxels of the PET label map that are neither air nor mixed, closed and with
    holes filled; the rim is its outer 5 mm, the centre its deepest 10 %, both where MAC > 0.1 SUV.

    Parameters
    ----------
    cohort : Cohort
        The simulated cohort (:class:`~RobustDeepLogic.cohort.Cohort`); FD's scaling constant is
        read from it.
    patient : RobustDeepLogic.cohort.Patient
        One of its subjects, with the seven modalities and the ``truth`` maps of ``robustdeep
        simulate``.

    Returns
    -------
    dict
        ``id``; ``gm_wm_model``, ``gm_wm_truth_image``, ``gm_wm_fd``, ``gm_suv_fd``, ``wm_suv_fd``;
        ``ld_fd_psnr_db``, ``ld_fd_ssim_global``, ``ld_fd_ssim_windowed``; ``nac_mac_rim``,
        ``nac_mac_centre`` and their ``_normalised`` versions; ``ct_hu`` (tissue name -> the HU
        values of its CT voxels, a numpy array); ``t1_wm_gm``, ``t2_csf_wm``; ``prompts_fd``,
        ``prompts_ld``; ``atrophic``, ``hypometabolism``, ``lesion``.

    Raises
    ------
    InputError
        The patient's meta has no ``truth`` maps (not a simulated subject), or one of its modalities
        cannot be read.
    RuntimeError
        A truth map cannot be read (SimpleITK's error).
    """
    if "truth" not in patient.meta:
        raise InputError("no ground truth maps: not a simulated subject", patient=patient.id,
                         file=cohort.manifest_path)
    arr = lambda m: sitk.GetArrayFromImage(cohort.read(patient, m))  # noqa: E731
    fd, ld, nac, mac = arr("FD"), arr("LD"), arr("NAC"), arr("MAC")
    lab = _read(cohort, patient.meta["truth"]["labels_pet"])
    act = _read(cohort, patient.meta["truth"]["activity_suv"])
    gm, wm = lab == LABELS["gm"], lab == LABELS["wm"]
    head = fill_holes(ndimage.binary_closing((lab != LABELS["air"]) & (lab != 0), iterations=2), slices=False)
    scale = cohort.scaling_for("FD").scale
    r, p = fd[head] / scale, ld[head] / scale
    spacing = cohort.read(patient, "FD").GetSpacing()
    depth = ndimage.distance_transform_edt(head, sampling=spacing[::-1])
    ratio = nac / np.maximum(mac, 1e-3)
    valid = head & (mac > 0.1)
    rim = valid & (depth <= 5.0)
    centre = valid & (depth >= np.percentile(depth[head], 90))
    ct = arr("CT")
    lab_ct = _read(cohort, patient.meta["truth"]["labels_ct"])
    t1, t2 = arr("T1"), arr("T2")
    lab_mr = _read(cohort, patient.meta["truth"]["labels_mr"])
    mean_mr = lambda img, name: float(img[lab_mr == LABELS[name]].mean())  # noqa: E731
    return {
        "id": patient.id,
        "gm_wm_model": patient.meta["fdg"]["gm_wm_ratio"],
        "gm_wm_truth_image": float(act[gm].mean() / act[wm].mean()),
        "gm_wm_fd": float(fd[gm].mean() / fd[wm].mean()),
        "gm_suv_fd": float(fd[gm].mean()),
        "wm_suv_fd": float(fd[wm].mean()),
        "ld_fd_psnr_db": psnr(r, p),
        "ld_fd_ssim_global": ssim_global(r, p),
        "ld_fd_ssim_windowed": ssim_windowed(fd / scale, ld / scale, head),
        "nac_mac_rim": float(ratio[rim].mean()),
        "nac_mac_centre": float(ratio[centre].mean()),
        # the same after scaling NAC to MAC's total over the head (the shape of the NAC error)
        "nac_mac_rim_normalised": float(ratio[rim].mean() / (nac[valid].sum() / mac[valid].sum())),
        "nac_mac_centre_normalised": float(ratio[centre].mean() / (nac[valid].sum() / mac[valid].sum())),
        "ct_hu": {_NAMES[k]: ct[lab_ct == k] for k in LABELS.values() if (lab_ct == k).any()},
        "t1_wm_gm": mean_mr(t1, "wm") / mean_mr(t1, "gm"),
        "t2_csf_wm": mean_mr(t2, "csf") / mean_mr(t2, "wm"),
        "prompts_fd": patient.meta["pet"]["prompts_fd"],
        "prompts_ld": patient.meta["pet"]["prompts_ld"],
        "atrophic": patient.meta["anatomy"]["atrophic"],
        "hypometabolism": patient.meta["fdg"]["hypometabolism"],
        "lesion": patient.meta["anatomy"]["lesion"] is not None,
    }


def realism_report(cohort_dir: os.PathLike, *, figure: Optional[os.PathLike] = None,
                   progress: Optional[Progress] = None) -> Dict[str, Any]:
    """Measure a simulated cohort; writes ``COHORT/realism.json`` and, if asked, the figure.

    Runs :func:`subject_realism` on every subject, then averages (mean and sample SD) and pools
    the CT HU per tissue over the cohort. ``realism.json`` is written atomically.

    Parameters
    ----------
    cohort_dir : str or os.PathLike
        The cohort folder (with its ``manifest.json``).
    figure : str or os.PathLike, optional
        If given, a PNG of the first subject's seven modalities is written there
        (:func:`modality_figure`).
    progress : Progress, optional
        Progress reporter (:class:`~RobustDeepLogic.core.progress.Progress`), one step per
        subject; None reports nothing.

    Returns
    -------
    dict
        ``{"summary": {...}, "subjects": [...], "ct_hu": {...}, "text": str}``: the per-subject
        figures and their means (keys ``k``) and SDs (``k + "_sd"``) with counts of atrophic,
        hypometabolic and lesioned subjects; the CT table (median, 5th and 95th percentiles, voxel
        count per tissue); and the same as printable text.

    Raises
    ------
    InputError
        The cohort cannot be loaded, has no subjects, or a subject is not simulated.
    """
    progress = progress or Progress()
    cohort = Cohort.load(cohort_dir)
    if not cohort.patients:
        raise InputError("the cohort has no subjects", file=cohort.manifest_path)
    rows: List[Dict[str, Any]] = []
    hu: Dict[str, List[np.ndarray]] = {}
    with progress.stage("realism", total=len(cohort)) as st:
        for p in cohort.patients:
            row = subject_realism(cohort, p)
            for k, v in row.pop("ct_hu").items():
                hu.setdefault(k, []).append(v)
            rows.append(row)
            st.advance(message=p.id)
    ct_table = {}
    for k, parts in hu.items():
        v = np.concatenate(parts)
        ct_table[k] = {"median": float(np.median(v)), "p5": float(np.percentile(v, 5)),
                       "p95": float(np.percentile(v, 95)), "voxels": int(v.size)}
    keys = ["gm_wm_model", "gm_wm_truth_image", "gm_wm_fd", "gm_suv_fd", "wm_suv_fd", "ld_fd_psnr_db",
            "ld_fd_ssim_global", "ld_fd_ssim_windowed", "nac_mac_rim", "nac_mac_centre",
            "nac_mac_rim_normalised", "nac_mac_centre_normalised", "t1_wm_gm",
            "t2_csf_wm"]
    summary: Dict[str, Any] = {}
    for k in keys:
        vals = np.asarray([r[k] for r in rows], float)
        summary[k] = float(vals.mean())
        summary[k + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    summary["ld_over_fd_prompts"] = float(np.mean([r["prompts_ld"] / r["prompts_fd"] for r in rows]))
    summary["subjects"] = len(rows)
    summary["atrophic"] = int(sum(r["atrophic"] for r in rows))
    summary["hypometabolic"] = int(sum(bool(r["hypometabolism"]) for r in rows))
    summary["lesions"] = int(sum(r["lesion"] for r in rows))
    profile = cohort.meta.get("simulation", {}).get("profile")
    lines = [f"realism of {cohort.root} ({len(rows)} subjects, profile {profile})"]
    for k in keys:
        lines.append(f"  {k:22s} {summary[k]:8.3f} +- {summary[k + '_sd']:.3f}")
    lines.append(f"  LD/FD prompts          {summary['ld_over_fd_prompts']:.4f}")
    lines.append("  CT HU by tissue (median [p5, p95]):")
    for k, v in ct_table.items():
        lines.append(f"    {k:8s} {v['median']:7.0f} [{v['p5']:.0f}, {v['p95']:.0f}]")
    text = "\n".join(lines)
    report = {"summary": summary, "subjects": rows, "ct_hu": ct_table, "text": text}
    atomic_write_text(cohort.root / "realism.json", json.dumps(report, indent=1) + "\n")
    if figure:
        modality_figure(cohort, cohort.patients[0], figure)
    return report


def modality_figure(cohort: Cohort, patient, path: os.PathLike) -> Path:
    """A PNG of one subject's seven modalities (central axial slice of each native volume).

    Each panel shows the axial slice a tenth of the volume above the middle one, 230 mm around the
    centre (or the whole slice if smaller); CT in a [-150, 250] HU window, FD, LD and MAC in
    [0, FD's 99.5th percentile], T1, T2 and NAC each up to their own 99.5th percentile.

    Parameters
    ----------
    cohort : Cohort
        The cohort (:class:`~RobustDeepLogic.cohort.Cohort`).
    patient : RobustDeepLogic.cohort.Patient
        The subject, with T1, T2, CT, FD, LD, NAC and MAC.
    path : str or os.PathLike
        The PNG file, written atomically (72 dpi).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mods = ["T1", "T2", "CT", "FD", "LD", "NAC", "MAC"]
    fig, axes = plt.subplots(1, 7, figsize=(14, 2.5))
    fd = sitk.GetArrayFromImage(cohort.read(patient, "FD"))
    fd_max = float(np.percentile(fd[fd > 0], 99.5))
    for ax, m in zip(axes, mods):
        image = cohort.read(patient, m)
        a = sitk.GetArrayFromImage(image)
        z = a.shape[0] // 2 + a.shape[0] // 10
        half = [int(min(n // 2, 115.0 / s)) for n, s in zip(a.shape[1:], image.GetSpacing()[1::-1])]
        cy, cx = a.shape[1] // 2, a.shape[2] // 2
        plane = a[z, cy - half[0]: cy + half[0], cx - half[1]: cx + half[1]]  # 230 mm around the centre
        if m == "CT":
            lo, hi = -150.0, 250.0
        elif m in ("FD", "LD", "MAC"):
            lo, hi = 0.0, fd_max
        else:
            lo, hi = 0.0, float(np.percentile(a[a > 0], 99.5))
        ax.imshow(plane, cmap="gray" if m in ("T1", "T2", "CT") else "gray_r", vmin=lo, vmax=hi)
        ax.set_title(f"{m} [{cohort.units.get(m, '')}]", fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{patient.id}: simulated modalities (each in its own native frame)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=72, format="png")
    plt.close(fig)
    return path
