"""DICOM series: reading with exact geometry and per-slice rescale, and writing PET / CT / MR series.

Reading uses pydicom for headers, geometry and pixels (falling back to SimpleITK/GDCM to decode compressed
pixel data that pydicom cannot), because PET series carry a different rescale slope on every slice and a
reader that takes its pixel type from the first slice can truncate the others. Geometry: the slice order and
spacing come from ImagePositionPatient projected on the slice normal (the cross product of the
ImageOrientationPatient cosines); unequal slice gaps are an error. Units: :mod:`RobustDeepLogic.io.units`.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike

# SOP Class UIDs of PET, CT and MR Image Storage.
PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.128"
CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"
MR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4"


@dataclass
class DicomSeries:
    """One series read from a folder by :func:`read_dicom_series`.

    Attributes
    ----------
    image : SimpleITK.Image
        The 3D float32 image, each slice's rescale applied, with the series' geometry (LPS mm).
    headers : list of pydicom.dataset.Dataset
        Slice headers without pixel data, in slice order (increasing along the normal).
    folder : pathlib.Path
        The folder the series was read from.
    """

    image: sitk.Image
    headers: List[Any]
    folder: Path

    @property
    def first(self):
        """The header of the first slice."""
        return self.headers[0]

    @property
    def modality(self) -> str:
        """The DICOM Modality in upper case (``"PT"``, ``"CT"``, ``"MR"``), or ``""``."""
        return str(getattr(self.first, "Modality", "")).upper()


def _read_headers(folder: Path, patient: Optional[str]):
    import pydicom
    from pydicom.errors import InvalidDicomError

    headers = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError):
            continue
        if "ImagePositionPatient" not in ds or "PixelSpacing" not in ds:
            continue  # not an image slice (a DICOMDIR, a report ...)
        ds.filename = str(path)
        headers.append(ds)
    if not headers:
        raise InputError("no DICOM image slices in this folder", file=folder, patient=patient)
    return headers


def read_dicom_series(
    folder: PathLike, *, patient: Optional[str] = None, series_uid: Optional[str] = None
) -> DicomSeries:
    """Read the one DICOM image series in ``folder`` (or the one with ``series_uid``).

    Parameters
    ----------
    folder : str or pathlib.Path
        The series' folder; its files, sub-folders included, that are not image slices are passed over.
    patient, series_uid : str, optional
        Named in error messages; the SeriesInstanceUID to read when there are several series.

    Returns
    -------
    DicomSeries
        The float32 image, each slice's RescaleSlope and RescaleIntercept applied (Bq/ml for PET
        with Units BQML, HU for CT), and the headers in slice order.

    Raises
    ------
    InputError
        No image slices; several series (without ``series_uid``) or none with ``series_uid``; slices
        of different orientations or sizes, or at one position; unequal slice gaps (missing slices).
    """
    import pydicom

    folder = Path(folder)
    headers = _read_headers(folder, patient)
    by_series: dict = {}
    for ds in headers:
        by_series.setdefault(str(getattr(ds, "SeriesInstanceUID", "")), []).append(ds)
    if series_uid is not None:
        if series_uid not in by_series:
            raise InputError(f"no series {series_uid} here", file=folder, patient=patient)
        headers = by_series[series_uid]
    elif len(by_series) > 1:
        desc = ", ".join(
            f"{uid} ({getattr(v[0], 'Modality', '?')}, {len(v)} slices)" for uid, v in by_series.items()
        )
        raise InputError(
            f"{len(by_series)} DICOM series in one folder: {desc}",
            file=folder,
            patient=patient,
            hint="put each series in its own folder or name the series UID",
        )
    first = headers[0]
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    for ds in headers:
        other = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        if not np.allclose(other, iop, atol=1e-4):
            raise InputError("slices of one series have different orientations", file=ds.filename,
                             patient=patient)
    positions = np.asarray([[float(v) for v in ds.ImagePositionPatient] for ds in headers])
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    headers = [headers[i] for i in order]
    positions, along = positions[order], along[order]
    if len(headers) > 1:
        gaps = np.diff(along)
        if np.any(gaps < 1e-6):
            raise InputError("two slices share one position (duplicate slices?)", file=folder,
                             patient=patient)
        dz = float(np.median(gaps))
        if np.max(np.abs(gaps - dz)) > 0.01 * dz + 1e-3:
            raise InputError(
                f"slice gaps are not uniform ({gaps.min():.3f} to {gaps.max():.3f} mm): missing slices?",
                file=folder, patient=patient,
            )
    else:
        dz = float(getattr(first, "SliceThickness", 1.0) or 1.0)
    rows, cols = int(first.Rows), int(first.Columns)
    data = np.empty((len(headers), rows, cols), dtype=np.float32)
    for k, ds in enumerate(headers):
        if int(ds.Rows) != rows or int(ds.Columns) != cols:
            raise InputError("slices of one series have different sizes", file=ds.filename,
                             patient=patient)
        try:
            pixels = pydicom.dcmread(ds.filename).pixel_array.astype(np.float64)
        except Exception:  # compressed syntax pydicom cannot decode: let GDCM do it (rescaled)
            single = sitk.ReadImage(ds.filename, sitk.sitkFloat64)
            data[k] = sitk.GetArrayFromImage(single).reshape(rows, cols)
            continue
        slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
        intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
        data[k] = pixels * slope + intercept
    ps = [float(v) for v in first.PixelSpacing]  # (row spacing = y, column spacing = x)
    image = sitk.GetImageFromArray(data)
    image.SetSpacing((ps[1], ps[0], dz))
    image.SetOrigin(tuple(float(v) for v in positions[0]))
    image.SetDirection(tuple(np.column_stack([row, col, normal]).ravel().tolist()))
    return DicomSeries(image=image, headers=headers, folder=folder)


def _dt_parts(value: _dt.datetime) -> tuple:
    return value.strftime("%Y%m%d"), value.strftime("%H%M%S.%f")[:13]


def _base_dataset(image: sitk.Image, k: int, *, sop_class: str, patient_id: str, series_uid: str,
                  study_uid: str, frame_uid: str, series_datetime: _dt.datetime, modality: str):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin())
    spacing = image.GetSpacing()
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesNumber = 1
    ds.InstanceNumber = k + 1
    ds.SeriesDate, ds.SeriesTime = _dt_parts(series_datetime)
    ds.StudyDate, ds.StudyTime = ds.SeriesDate, ds.SeriesTime
    ds.AcquisitionDate, ds.AcquisitionTime = ds.SeriesDate, ds.SeriesTime
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    position = origin + direction[:, 2] * spacing[2] * k
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
    ds.SliceThickness = f"{spacing[2]:.6f}"
    ds.Rows, ds.Columns = image.GetSize()[1], image.GetSize()[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    return ds


def _write_datasets(datasets: Sequence[Any], folder: Path) -> Path:
    """Write datasets into a temporary folder beside ``folder``, then rename it into place."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise InputError("output DICOM folder exists and is not empty", file=folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for k, ds in enumerate(datasets):
            target = str(tmp / f"slice{k + 1:04d}.dcm")
            try:
                ds.save_as(target, enforce_file_format=True)  # pydicom >= 3
            except TypeError:  # pydicom 2.x
                ds.is_little_endian, ds.is_implicit_VR = True, False
                ds.save_as(target, write_like_original=False)
        if folder.exists():
            folder.rmdir()
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return folder


def write_pet_series(
    image_suv: sitk.Image,
    folder: PathLike,
    *,
    weight_kg: float,
    injected_dose_bq: float,
    injection_datetime: _dt.datetime,
    series_datetime: _dt.datetime,
    half_life_s: float = 6586.2,
    patient_id: str = "ANON",
    radiopharmaceutical: str = "Fluorodeoxyglucose",
    decay_correction: str = "START",
) -> Path:
    """Write a 3D SUV image as a PET DICOM series in Bq/ml (Units BQML), one int16 slice per file.

    The activity concentration is ``SUV * decayed_dose / weight_g`` with the dose decayed from injection to
    the series time (``decay_correction='START'``) or not (``'ADMIN'``). Each slice has its own RescaleSlope,
    as scanners write them: :func:`RobustDeepLogic.io.units.suv_from_dicom` recovers SUV to int16 precision.

    Parameters
    ----------
    image_suv : SimpleITK.Image
        3D image in body-weight SUV, with the series' geometry.
    folder : str or pathlib.Path
        A new or empty folder (``slice0001.dcm`` ...), filled beside it and then renamed into place.
    weight_kg, injected_dose_bq, half_life_s : float
        PatientWeight (kg), RadionuclideTotalDose (Bq), RadionuclideHalfLife (s; default 6586.2 s, 18F).
    injection_datetime, series_datetime : datetime.datetime
        Injection time; series time (also the study and acquisition time).
    patient_id, radiopharmaceutical, decay_correction : str, optional
        PatientID and PatientName (default ANON); Radiopharmaceutical; DecayCorrection, START or ADMIN.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Raises
    ------
    ValueError
        ``decay_correction`` is not START or ADMIN; an :class:`InputError` when ``folder`` is not empty.
    """
    from pydicom.dataset import Dataset
    from pydicom.uid import generate_uid

    if decay_correction not in ("START", "ADMIN"):
        raise ValueError("decay_correction must be START or ADMIN")
    elapsed = (series_datetime - injection_datetime).total_seconds()
    decay = np.exp(-np.log(2.0) * elapsed / half_life_s) if decay_correction == "START" else 1.0
    bqml = sitk.GetArrayFromImage(image_suv).astype(np.float64) * injected_dose_bq * decay / (
        weight_kg * 1000.0)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for k in range(bqml.shape[0]):
        ds = _base_dataset(image_suv, k, sop_class=PET_SOP_CLASS, patient_id=patient_id,
                           series_uid=series_uid, study_uid=study_uid, frame_uid=frame_uid,
                           series_datetime=series_datetime, modality="PT")
        plane = bqml[k]
        peak = float(np.max(np.abs(plane)))
        slope = peak / 32767.0 if peak > 0 else 1.0
        stored = np.round(plane / slope).astype(np.int16)
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = "0"
        ds.Units = "BQML"
        ds.CorrectedImage = ["ATTN", "DECY", "SCAT", "RAN"]
        ds.DecayCorrection = decay_correction
        ds.PatientWeight = f"{weight_kg:g}"
        ds.SeriesType = ["STATIC", "IMAGE"]
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        rp = Dataset()
        rp.Radiopharmaceutical = radiopharmaceutical
        rp.RadionuclideTotalDose = f"{injected_dose_bq:.6g}"
        rp.RadionuclideHalfLife = f"{half_life_s:g}"
        rp.RadiopharmaceuticalStartDateTime = injection_datetime.strftime("%Y%m%d%H%M%S.%f")[:21]
        rp.RadiopharmaceuticalStartTime = injection_datetime.strftime("%H%M%S.%f")[:13]
        ds.RadiopharmaceuticalInformationSequence = [rp]
        ds.PixelData = stored.tobytes()
        datasets.append(ds)
    return _write_datasets(datasets, Path(folder))


def write_ct_series(image_hu: sitk.Image, folder: PathLike, *, patient_id: str = "ANON",
                    series_datetime: Optional[_dt.datetime] = None, rescale_intercept: float = -1024.0,
                    rescale_slope: float = 1.0) -> Path:
    """Write a 3D HU image as a CT DICOM series (int16 stored values, slope/intercept rescale).

    Parameters
    ----------
    image_hu : SimpleITK.Image
        3D image in HU, with the series' geometry.
    folder, patient_id, series_datetime
        As for :func:`write_pet_series`; ``series_datetime`` None gives 2020-01-01 12:00.
    rescale_intercept, rescale_slope : float, optional
        ``HU = stored * slope + intercept``; stored values are rounded and clipped to int16.

    Returns
    -------
    pathlib.Path
        ``folder``; an existing folder that is not empty raises :class:`InputError`.
    """
    from pydicom.uid import generate_uid

    when = series_datetime or _dt.datetime(2020, 1, 1, 12, 0, 0)
    hu = sitk.GetArrayFromImage(image_hu).astype(np.float64)
    stored_all = np.clip(np.round((hu - rescale_intercept) / rescale_slope), -32768, 32767).astype(np.int16)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for k in range(hu.shape[0]):
        ds = _base_dataset(image_hu, k, sop_class=CT_SOP_CLASS, patient_id=patient_id,
                           series_uid=series_uid, study_uid=study_uid, frame_uid=frame_uid,
                           series_datetime=when, modality="CT")
        ds.RescaleSlope = f"{rescale_slope:g}"
        ds.RescaleIntercept = f"{rescale_intercept:g}"
        ds.RescaleType = "HU"
        ds.KVP = "120"
        ds.PixelData = stored_all[k].tobytes()
        datasets.append(ds)
    return _write_datasets(datasets, Path(folder))


def write_mr_series(image: sitk.Image, folder: PathLike, *, patient_id: str = "ANON",
                    series_datetime: Optional[_dt.datetime] = None) -> Path:
    """Write a 3D MR image as an MR DICOM series (int16 stored values, one rescale spanning its range).

    Parameters
    ----------
    image : SimpleITK.Image
        3D image in any unit, with the series' geometry.
    folder, patient_id, series_datetime
        As for :func:`write_ct_series`.

    Returns
    -------
    pathlib.Path
        ``folder``; an existing folder that is not empty raises :class:`InputError`.
    """
    from pydicom.uid import generate_uid

    when = series_datetime or _dt.datetime(2020, 1, 1, 12, 0, 0)
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    lo, hi = float(values.min()), float(values.max())
    slope = (hi - lo) / 65534.0 if hi > lo else 1.0
    intercept = lo + 32767.0 * slope
    stored_all = np.clip(np.round((values - intercept) / slope), -32767, 32767).astype(np.int16)
    series_uid, study_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for k in range(values.shape[0]):
        ds = _base_dataset(image, k, sop_class=MR_SOP_CLASS, patient_id=patient_id,
                           series_uid=series_uid, study_uid=study_uid, frame_uid=frame_uid,
                           series_datetime=when, modality="MR")
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = f"{intercept:.10g}"
        ds.PixelData = stored_all[k].tobytes()
        datasets.append(ds)
    return _write_datasets(datasets, Path(folder))
