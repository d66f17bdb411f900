"""Physical units (docs/method.md §3.1): PET DICOM to body-weight SUV (QIBA rules), CT DICOM to HU.

SUV (body weight), following the QIBA FDG-PET/CT profile's vendor-neutral rules:

    SUVbw = C(t) [Bq/ml] * weight [g] / decayed_dose [Bq]

- the series must be in Units BQML and corrected for attenuation and decay (CorrectedImage has ATTN
  and DECY);
- DecayCorrection START: the dose is decayed from the injection time to the scan reference time,
  which is SeriesDate/SeriesTime, unless that is later than the earliest AcquisitionDate/Time of the
  series (a series re-saved after the scan), in which case the earliest acquisition time is used;
  DecayCorrection ADMIN: images are already corrected to the injection time, no decay;
  any other value is refused;
- the injection time is RadiopharmaceuticalStartDateTime, or RadiopharmaceuticalStartTime on the
  series date; the half-life RadionuclideHalfLife; the dose RadionuclideTotalDose; the weight
  PatientWeight (kg).

A tag that is missing or empty is never guessed: :class:`~RobustDeepLogic.core.errors.InputError`
names it. CT is converted to HU by each slice's RescaleSlope and RescaleIntercept (in
:func:`RobustDeepLogic.io.dicom.read_dicom_series`). :func:`read_physical` reads any volume in the unit
of its modality (:data:`RobustDeepLogic.core.modalities.UNITS`). The fixed per-modality [0, 1] scaling
that follows is :class:`RobustDeepLogic.cohort.scaling.Scaling` (docs/method.md §3.2).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import PET_FAMILY, normalise_modality
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.io.dicom import read_dicom_series
from RobustDeepLogic.io.volumes import read_volume


@dataclass(frozen=True)
class SuvInfo:
    """How an SUV factor was derived (kept in the manifest as provenance).

    Attributes
    ----------
    factor : float
        The factor in g/Bq: ``SUV = factor * C`` with ``C`` in Bq/ml (``weight_g / decayed_dose_bq``).
    weight_kg : float
        PatientWeight, kg.
    injected_dose_bq : float
        RadionuclideTotalDose, Bq.
    half_life_s : float
        RadionuclideHalfLife, s.
    injection_time, scan_time : str
        ISO 8601 times of the injection and of the scan reference (equal under ADMIN).
    decay_correction : str
        The series' DecayCorrection: ``"START"`` or ``"ADMIN"``.
    decayed_dose_bq : float
        The injected dose decayed to the scan reference time, Bq.
    """

    factor: float  # SUV = factor * Bq/ml
    weight_kg: float
    injected_dose_bq: float
    half_life_s: float
    injection_time: str
    scan_time: str
    decay_correction: str
    decayed_dose_bq: float

    def as_dict(self) -> dict:
        """The fields as a plain dict (for the manifest's JSON).

        Returns
        -------
        dict
            Field name -> value.
        """
        return dict(self.__dict__)


def _tag(ds: Any, name: str, file: Optional[str], patient: Optional[str], what: str) -> Any:
    value = getattr(ds, name, None)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(
            f"DICOM tag {name} ({what}) is missing: cannot compute SUV",
            file=file,
            patient=patient,
            hint="SUV needs PatientWeight, RadionuclideTotalDose, RadionuclideHalfLife, the injection "
            "time, the series time, Units BQML and DecayCorrection; RobustDeep never guesses them",
        )
    return value


def _parse_dt(date: str, time: str) -> _dt.datetime:
    date = str(date).strip()
    time = str(time).strip()
    whole, _, frac = time.partition(".")
    whole = (whole + "000000")[:6]
    micro = int((frac + "000000")[:6]) if frac else 0
    return _dt.datetime.strptime(date + whole, "%Y%m%d%H%M%S").replace(microsecond=micro)


def _parse_datetime(text: str) -> _dt.datetime:
    text = str(text).strip()
    for sign in ("+", "-"):  # drop a UTC offset suffix (&ZZXX)
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    return _parse_dt(text[:8], text[8:] or "000000")


def suv_factor(ds: Any, *, acquisition_times: Optional[list] = None, patient: Optional[str] = None) -> SuvInfo:
    """The factor that turns this PET series' Bq/ml into body-weight SUV (the rules of the module doc).

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        A header of the series (any slice).
    acquisition_times : list of datetime.datetime, optional
        Every slice's acquisition time, for the QIBA scan-time rule; None skips that rule.
    patient : str, optional
        Named in error messages.

    Returns
    -------
    SuvInfo
        The factor and the values it was derived from.

    Raises
    ------
    InputError
        A needed tag is missing or empty; Units is not BQML; CorrectedImage lacks ATTN or DECY;
        weight, dose or half-life is not positive; DecayCorrection is neither START nor ADMIN; the scan
        time is before the injection time.

    References
    ----------
    .. [1] QIBA FDG-PET/CT Profile (Quantitative Imaging Biomarkers Alliance), its SUV calculation.
    .. [2] docs/method.md §3.1.
    """
    file = getattr(ds, "filename", None)
    units = str(_tag(ds, "Units", file, patient, "pixel value units")).upper()
    if units != "BQML":
        raise InputError(
            f"PET Units is {units!r}, not BQML: cannot compute SUV",
            file=file, patient=patient,
            hint="export the series in Bq/ml (vendor count units need vendor-specific factors)",
        )
    corrected = [str(v).upper() for v in _tag(ds, "CorrectedImage", file, patient, "corrections applied")]
    for needed in ("ATTN", "DECY"):
        if needed not in corrected:
            raise InputError(
                f"CorrectedImage lacks {needed}: the series is not "
                f"{'attenuation' if needed == 'ATTN' else 'decay'}-corrected, SUV would be wrong",
                file=file, patient=patient,
            )
    decay_mode = str(_tag(ds, "DecayCorrection", file, patient, "decay correction reference")).upper()
    weight = float(_tag(ds, "PatientWeight", file, patient, "patient weight in kg"))
    if not weight > 0:
        raise InputError(f"PatientWeight is {weight}: must be positive", file=file, patient=patient)
    seq = _tag(ds, "RadiopharmaceuticalInformationSequence", file, patient, "radiopharmaceutical")
    if len(seq) == 0:
        raise InputError("RadiopharmaceuticalInformationSequence is empty", file=file, patient=patient)
    rp = seq[0]
    dose = float(_tag(rp, "RadionuclideTotalDose", file, patient, "injected dose in Bq"))
    half_life = float(_tag(rp, "RadionuclideHalfLife", file, patient, "half-life in s"))
    if not dose > 0 or not half_life > 0:
        raise InputError("RadionuclideTotalDose and RadionuclideHalfLife must be positive",
                         file=file, patient=patient)
    series_date = _tag(ds, "SeriesDate", file, patient, "series date")
    if getattr(rp, "RadiopharmaceuticalStartDateTime", None):
        injection = _parse_datetime(rp.RadiopharmaceuticalStartDateTime)
    else:
        start = _tag(rp, "RadiopharmaceuticalStartTime", file, patient, "injection time")
        injection = _parse_dt(series_date, start)
    if decay_mode == "ADMIN":
        scan = injection
    elif decay_mode == "START":
        scan = _parse_dt(series_date, _tag(ds, "SeriesTime", file, patient, "series time"))
        if acquisition_times:
            earliest = min(acquisition_times)
            if scan > earliest:  # QIBA: a series time after the acquisition means a re-saved series
                scan = earliest
    else:
        raise InputError(
            f"DecayCorrection is {decay_mode!r}: only START and ADMIN are supported",
            file=file, patient=patient,
        )
    elapsed = (scan - injection).total_seconds()
    if elapsed < 0:
        raise InputError(
            f"the scan time {scan} is before the injection time {injection}",
            file=file, patient=patient, hint="check the injection date and time",
        )
    decayed = dose * math.exp(-math.log(2.0) * elapsed / half_life)
    return SuvInfo(
        factor=weight * 1000.0 / decayed,
        weight_kg=weight,
        injected_dose_bq=dose,
        half_life_s=half_life,
        injection_time=injection.isoformat(),
        scan_time=scan.isoformat(),
        decay_correction=decay_mode,
        decayed_dose_bq=decayed,
    )


def suv_from_dicom(folder: PathLike, *, patient: Optional[str] = None) -> Tuple[sitk.Image, SuvInfo]:
    """Read a PET DICOM series in body-weight SUV, with how the factor was derived.

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder holding one PET series (see :func:`RobustDeepLogic.io.dicom.read_dicom_series`).
    patient : str, optional
        Named in error messages.

    Returns
    -------
    image : SimpleITK.Image
        The float32 image in SUV.
    info : SuvInfo
        The factor and its provenance (see :func:`suv_factor`).

    Raises
    ------
    InputError
        The series cannot be read, is not PET (Modality PT), or its SUV cannot be computed.
    """
    series = read_dicom_series(folder, patient=patient)
    if series.modality != "PT":
        raise InputError(f"expected a PET series (Modality PT), found {series.modality or 'none'}",
                         file=folder, patient=patient)
    times = []
    for ds in series.headers:
        if getattr(ds, "AcquisitionDate", None) and getattr(ds, "AcquisitionTime", None):
            times.append(_parse_dt(ds.AcquisitionDate, ds.AcquisitionTime))
    info = suv_factor(series.first, acquisition_times=times or None, patient=patient)
    image = sitk.Cast(series.image * info.factor, sitk.sitkFloat32)
    return image, info


def hu_from_dicom(folder: PathLike, *, patient: Optional[str] = None) -> sitk.Image:
    """Read a CT DICOM series in HU (each slice's rescale slope and intercept applied).

    Parameters
    ----------
    folder : str or pathlib.Path
        A folder holding one CT series.
    patient : str, optional
        Named in error messages.

    Returns
    -------
    SimpleITK.Image
        The float32 image in HU.

    Raises
    ------
    InputError
        The series cannot be read, is not CT (Modality CT), or its RescaleType is neither HU nor US
        (a missing RescaleType is taken as HU).
    """
    series = read_dicom_series(folder, patient=patient)
    if series.modality != "CT":
        raise InputError(f"expected a CT series (Modality CT), found {series.modality or 'none'}",
                         file=folder, patient=patient)
    rtype = str(getattr(series.first, "RescaleType", "HU") or "HU").upper()
    if rtype not in ("HU", "US"):
        raise InputError(f"CT RescaleType is {rtype!r}, not HU", file=folder, patient=patient)
    return series.image


def read_physical(path: PathLike, modality: str, *, patient: Optional[str] = None) -> Tuple[sitk.Image, dict]:
    """Read a volume in the physical unit of ``modality`` (SUV for PET DICOM, HU for CT DICOM).

    Files (NIfTI, NRRD, MetaImage) carry no unit: they are taken to be in the unit the cohort
    declares for the modality already. A DICOM folder of FD, LD, NAC or MAC goes through
    :func:`suv_from_dicom` and its checks (CorrectedImage with ATTN and DECY included); MR DICOM keeps
    its stored values after rescale.

    Parameters
    ----------
    path : str or pathlib.Path
        A volume file, or a folder holding one DICOM series.
    modality : str
        One of FD, LD, NAC, MAC, CT, T1, T2 (any case).
    patient : str, optional
        Named in error messages.

    Returns
    -------
    image : SimpleITK.Image
        The float32 image.
    provenance : dict
        How it was read: ``{"source": "file"}``, or for DICOM ``{"source": "dicom"}`` with ``"suv"``
        (:meth:`SuvInfo.as_dict`) for PET or ``"rescale": "HU"`` for CT.

    Raises
    ------
    InputError
        Unknown modality; an unreadable volume; a DICOM series that cannot be converted (see
        :func:`suv_from_dicom`, :func:`hu_from_dicom`).
    """
    modality = normalise_modality(modality, file=path)
    path = Path(path)
    if path.is_dir():
        if modality in PET_FAMILY:
            image, info = suv_from_dicom(path, patient=patient)
            return image, {"source": "dicom", "suv": info.as_dict()}
        if modality == "CT":
            return hu_from_dicom(path, patient=patient), {"source": "dicom", "rescale": "HU"}

        return read_dicom_series(path, patient=patient).image, {"source": "dicom"}

    return read_volume(path, patient=patient, dtype=np.float32), {"source": "file"}
