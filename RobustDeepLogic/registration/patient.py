"""One patient into template space: its registrations (:func:`register_patient`), its files
(:func:`save_patient`) and the marker that lets a cohort run resume (:func:`load_done`).

The steps are those of the package docstring (:mod:`RobustDeepLogic.registration`, docs/method.md
§3.4): the reference PET to the FDG template, the rest of the PET/CT frame with it, T1 / T2 through the
CT, everything resampled onto the template grid. One image onto another is
:func:`~RobustDeepLogic.registration.pairwise.register_rigid`; the QC figures are in
:mod:`RobustDeepLogic.registration.qc`; a whole cohort is
:func:`~RobustDeepLogic.registration.cohort.register_cohort`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_write_text, json_default
from RobustDeepLogic.core.modalities import MR_FAMILY
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.transforms import write_transform
from RobustDeepLogic.io.volumes import read_volume, write_volume
from RobustDeepLogic.registration.config import (
    PET_REFERENCE_ORDER,
    RegistrationOptions,
    RigidConfig,
)
from RobustDeepLogic.registration.images import (
    check_image,
    foreground_mask,
    resample_to_template,
)
from RobustDeepLogic.registration.pairwise import register_rigid
from RobustDeepLogic.registration.qc import (
    patient_qc,
    qc_figure,
)
from RobustDeepLogic.registration.result import RigidResult
from RobustDeepLogic.registration.rigid import compose_rigid
from RobustDeepLogic.registration.template_space import (
    TemplateSpace,
)
from RobustDeepLogic.registration.templates import BACKGROUND

#: File stem of each transform a patient gets, by key of ``PatientRegistration.transforms``.
TRANSFORM_NAMES = {"PETCT": "PETCT_to_template", "T1": "T1_to_template", "T2": "T2_to_template",
                   "T1_CT": "T1_to_CT", "T2_CT": "T2_to_CT", "T1_FD": "T1_to_FD", "T2_FD": "T2_to_FD"}


@dataclass
class PatientRegistration:
    """What :func:`register_patient` made for one patient (in memory; :func:`save_patient` writes it).

    Attributes
    ----------
    patient_id : str
        The patient's id.
    reference : str
        The PET modality registered to the FDG template (the first of
        :data:`~RobustDeepLogic.registration.config.PET_REFERENCE_ORDER` the patient has).
    images : dict of str to SimpleITK.Image
        Every modality on the template grid, float32, in its native unit (PET in SUV, CT in HU);
        outside the native field of view the background of
        :data:`~RobustDeepLogic.registration.templates.BACKGROUND` (CT -1000 HU, others 0).
    head_mask : SimpleITK.Image
        The patient's head mask (from CT, else from the reference PET) on the template grid, uint8.
    transforms : dict of str to SimpleITK.Transform
        ``'PETCT'`` (template to PET/CT points), ``'T1'`` / ``'T2'`` (template to MR points) and
        ``'T1_CT'`` / ``'T2_CT'`` (CT to MR points; ``'T1_FD'`` / ``'T2_FD'`` when the MR was
        registered to the reference PET), all in the resampling convention; file names in
        :data:`TRANSFORM_NAMES`.
    results : dict of str to RigidResult
        The registration of the reference PET and of each MR image, by modality.
    qc : dict
        The QC figures of :func:`~RobustDeepLogic.registration.qc.patient_qc`, with ``ok`` and
        ``flags``.
    seconds : float
        Wall time of :func:`register_patient`.
    """

    patient_id: str
    reference: str
    images: Dict[str, sitk.Image]
    head_mask: sitk.Image
    transforms: Dict[str, sitk.Transform]
    results: Dict[str, RigidResult]
    qc: Dict[str, Any]
    seconds: float


def register_patient(
    cohort: Cohort,
    patient: Patient,
    template: TemplateSpace,
    options: Optional[RegistrationOptions] = None,
) -> PatientRegistration:
    """Register one patient's modalities into template space (package doc, steps 1-4).

    The reference PET is registered to ``template.fdg`` with the template's head mask (``'ROIAUTO'``
    becomes ``'ROI'``) and brain mask (brain refinement); FD, LD, NAC, MAC and CT follow its
    transform. T1 and T2 are registered to the patient's CT (to the reference PET when there is no
    CT) with an automatic head mask (``'ROI'`` becomes ``'ROIAUTO'``: there is no given mask of the
    CT; ``'NOMASK'`` stays) and no brain refinement, and composed with the PET/CT transform.

    Parameters
    ----------
    cohort : Cohort
        The native-space cohort the patient's files belong to.
    patient : Patient
        The patient's manifest entry.
    template : TemplateSpace
        The fixed side: FDG template, head and brain masks on the template grid.
    options : RegistrationOptions, optional
        Rigid options and QC thresholds (default: ``RegistrationOptions()``).

    Returns
    -------
    PatientRegistration
        The registered images on the template grid (float32; CT background -1000 HU), the head mask
        (uint8), the transforms (template -> native, resampling convention), the registration results
        and the QC figures.

    Raises
    ------
    InputError
        When the patient has no PET image (FD, MAC, LD or NAC), when an image cannot be read or is not
        plausible (:func:`~RobustDeepLogic.registration.images.check_image`), or when a registration
        fails for want of overlap.

    References
    ----------
    .. [1] docs/method.md §3.4.
    """
    options = options or RegistrationOptions()
    start = time.perf_counter()
    pid = patient.id
    reference = next((m for m in PET_REFERENCE_ORDER if m in patient.modalities), None)
    if reference is None:
        raise InputError(
            "has no PET image (FD, MAC, LD or NAC) to register to the FDG template",
            patient=pid, file=cohort.manifest_path,
            hint="registration to template space starts from the patient's FDG PET",
        )
    native: Dict[str, sitk.Image] = {}
    for modality in patient.modalities:
        path = cohort.path(patient, modality)
        image = read_volume(path, patient=pid, dtype=np.float32)
        check_image(image, modality=modality, patient=pid, file=path)
        native[modality] = image

    results: Dict[str, RigidResult] = {}
    transforms: Dict[str, sitk.Transform] = {}
    rigid_template = RigidConfig(**{**options.rigid.as_dict(),
                                    "shrink_factors": tuple(options.rigid.shrink_factors),
                                    "smoothing_sigmas": tuple(options.rigid.smoothing_sigmas)})
    if rigid_template.mask_processing_mode == "ROIAUTO":
        rigid_template.mask_processing_mode = "ROI"  # the template's own head mask is the best ROI
    res = register_rigid(template.fdg, native[reference], rigid_template,
                         fixed_mask=template.head_mask, brain_mask=template.brain_mask,
                         patient=pid, moving_name=reference)
    results[reference] = res
    t_petct = res.transform
    transforms["PETCT"] = t_petct

    mr_fixed_name = "CT" if "CT" in native else reference
    rigid_mr = options.rigid
    if rigid_mr.mask_processing_mode == "ROI":  # no given mask of the patient's CT: its own head
        rigid_mr = RigidConfig.from_mapping({**options.rigid.as_dict(),
                                             "mask_processing_mode": "ROIAUTO"})
    for mr in MR_FAMILY:
        if mr not in native:
            continue
        r = register_rigid(native[mr_fixed_name], native[mr], rigid_mr,
                           fixed_modality=mr_fixed_name, patient=pid, moving_name=mr)
        results[mr] = r
        transforms[f"{mr}_{'CT' if mr_fixed_name == 'CT' else 'FD'}"] = r.transform
        transforms[mr] = compose_rigid(r.transform, t_petct, center=t_petct.GetCenter())


    reference_image = template.fdg
    images: Dict[str, sitk.Image] = {}
    for modality, image in native.items():
        tx = transforms[modality] if modality in MR_FAMILY else t_petct
        images[modality] = resample_to_template(image, tx, reference_image,
                                                default=BACKGROUND.get(modality, 0.0))
    mask_source = "CT" if "CT" in native else reference
    native_mask = foreground_mask(native[mask_source], modality=mask_source)
    head = resample_to_template(native_mask, t_petct, reference_image, label=True)

    qc = patient_qc(images, head, template, results, reference=reference,
                          options=options)
    return PatientRegistration(pid, reference, images, head, transforms, results, qc,
                               time.perf_counter() - start)


#: The file written last in a registered patient's folder: its manifest entry, and the resume marker.
MARKER_NAME = "registration.json"


def save_patient(reg: PatientRegistration, out_root: PathLike, patient: Patient,
                 options: RegistrationOptions, fingerprint: str,
                 template_fdg: Optional[sitk.Image] = None) -> Patient:
    """Write one registered patient under ``out_root/<id>/`` and return its manifest entry.

    Files: ``<MOD>.nii.gz`` (float32), ``head_mask.nii.gz`` (uint8), ``transforms/<name>.tfm`` (or
    ``.h5``; names from :data:`TRANSFORM_NAMES`), ``qc.png`` (when ``options.qc_images``) and, last
    (the resume marker), ``registration.json`` (:data:`MARKER_NAME`) with the entry. Every file is
    written atomically.

    Parameters
    ----------
    reg : PatientRegistration
        The patient's registration.
    out_root : path-like
        The registered cohort's folder.
    patient : Patient
        The patient's native manifest entry: split, fold, provenance and meta are carried over, and
        its native files are recorded under ``meta['registration']['native']``.
    options : RegistrationOptions
        ``transform_format`` and ``qc_images`` are used.
    fingerprint : str
        :meth:`~RobustDeepLogic.registration.config.RegistrationOptions.fingerprint` of the run,
        stored for :func:`load_done`.
    template_fdg : SimpleITK.Image, optional
        FDG template shown in the QC picture (default: the model template on the head mask's grid).

    Returns
    -------
    Patient
        The registered entry: modality paths relative to ``out_root``, and ``meta['registration']``
        with the reference, transform files, convention, head mask, QC, per-registration summaries,
        time and fingerprint.
    """
    out_root = Path(out_root)
    folder = out_root / reg.patient_id
    modalities: Dict[str, str] = {}
    for modality, image in reg.images.items():
        rel = f"{reg.patient_id}/{modality}.nii.gz"
        write_volume(image, out_root / rel)
        modalities[modality] = rel
    mask_rel = f"{reg.patient_id}/head_mask.nii.gz"
    write_volume(reg.head_mask, out_root / mask_rel)
    ext = "h5" if options.transform_format == "h5" else "tfm"
    tfiles: Dict[str, str] = {}
    for key, tx in reg.transforms.items():
        rel = f"{reg.patient_id}/transforms/{TRANSFORM_NAMES[key]}.{ext}"
        write_transform(tx, out_root / rel)
        tfiles[TRANSFORM_NAMES[key]] = rel
    qc_png = None
    if options.qc_images:
        qc_png = f"{reg.patient_id}/qc.png"
        qc_figure(reg.images, reg.head_mask, reg.qc, out_root / qc_png, title=reg.patient_id,
                        template_fdg=template_fdg)
    meta = dict(patient.meta)
    meta["registration"] = {
        "status": "done",
        "reference": reg.reference,
        "transforms": tfiles,
        "transform_convention": "ITK resampling: maps template (fixed) LPS points to native "
                                "(moving) LPS points; sitk.Resample(native, template, T)",
        "head_mask": mask_rel,
        "qc": reg.qc,
        "qc_image": qc_png,
        "results": {k: v.summary() for k, v in reg.results.items()},
        "seconds": round(reg.seconds, 3),
        "fingerprint": fingerprint,
        "native": {m: p for m, p in patient.modalities.items()},
    }
    entry = Patient(id=patient.id, modalities=modalities, split=patient.split, fold=patient.fold,
                    provenance=dict(patient.provenance), meta=meta)
    atomic_write_text(folder / MARKER_NAME, json.dumps(entry.to_json(), indent=1,
                                                       default=json_default) + "\n")
    return entry


def load_done(out_root: PathLike, pid: str, fingerprint: Optional[str]) -> Optional[Patient]:
    """The saved entry of a patient done before with the same fingerprint, with all files present.

    Parameters
    ----------
    out_root : path-like
        The registered cohort's folder.
    pid : str
        The patient id.
    fingerprint : str or None
        The current run's fingerprint; None accepts any.

    Returns
    -------
    Patient or None
        The entry read from ``out_root/<pid>/registration.json``; None when the marker is missing or
        unreadable, the fingerprint differs, or one of its images, transforms or head mask is missing.
    """
    marker = Path(out_root) / pid / MARKER_NAME
    if not marker.is_file():
        return None
    try:
        entry = Patient.from_json(json.loads(marker.read_text(encoding="utf-8")))
    except (ValueError, InputError):
        return None
    reg = entry.meta.get("registration", {})
    if fingerprint is not None and reg.get("fingerprint") != fingerprint:
        return None
    rels = list(entry.modalities.values()) + list(reg.get("transforms", {}).values())
    rels.append(reg.get("head_mask", ""))
    if not all(rel and (Path(out_root) / rel).is_file() for rel in rels):
        return None
    return entry
