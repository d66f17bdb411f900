"""DICOM series and units: body-weight SUV by the QIBA rules, HU by rescale, refusals by tag.

The PET series here are built with pydicom in the test, slice by slice, and the expected SUV is
computed in the test from the numbers it put in the tags, independently of RobustDeepLogic.units.
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from helpers import file_digest, oblique_image
from RobustDeepLogic.io.dicom import read_dicom_series, write_ct_series, write_pet_series
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.units import hu_from_dicom, read_physical, suv_from_dicom

WEIGHT_KG = 72.5
DOSE_BQ = 205e6
HALF_LIFE = 6586.2
INJECTION = dt.datetime(2021, 3, 4, 9, 12, 30)
SERIES = dt.datetime(2021, 3, 4, 9, 47, 30)  # 35 min p.i., as in the study


def build_pet_series(folder, bqml, *, spacing=(2.03, 2.03, 2.2), omit=(), overrides=None,
                     rp_overrides=None, acquisition=None):
    """Write a PET series with pydicom; ``bqml`` is ``[z, y, x]`` activity concentration."""
    folder.mkdir(parents=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    for k in range(bqml.shape[0]):
        plane = bqml[k]
        slope = max(float(np.abs(plane).max()), 1e-6) / 30000.0
        stored = np.round(plane / slope).astype(np.int16)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "PT"
        ds.PatientID = "SUVTEST"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.SeriesDate, ds.SeriesTime = SERIES.strftime("%Y%m%d"), SERIES.strftime("%H%M%S")
        acq = acquisition or SERIES
        ds.AcquisitionDate, ds.AcquisitionTime = acq.strftime("%Y%m%d"), acq.strftime("%H%M%S")
        ds.Units = "BQML"
        ds.CorrectedImage = ["ATTN", "DECY", "SCAT"]
        ds.DecayCorrection = "START"
        ds.PatientWeight = str(WEIGHT_KG)
        rp = Dataset()
        rp.RadionuclideTotalDose = str(DOSE_BQ)
        rp.RadionuclideHalfLife = str(HALF_LIFE)
        rp.RadiopharmaceuticalStartDateTime = INJECTION.strftime("%Y%m%d%H%M%S")
        for key, value in (rp_overrides or {}).items():
            if value is None:
                delattr(rp, key)
            else:
                setattr(rp, key, value)
        ds.RadiopharmaceuticalInformationSequence = [rp]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.ImagePositionPatient = ["-100.0", "-120.0", f"{-50.0 + k * spacing[2]:.4f}"]
        ds.PixelSpacing = [str(spacing[1]), str(spacing[0])]
        ds.SliceThickness = str(spacing[2])
        ds.Rows, ds.Columns = plane.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", "0"
        for key, value in (overrides or {}).items():
            setattr(ds, key, value)
        for key in omit:
            if key in ds:
                delattr(ds, key)
        ds.PixelData = stored.tobytes()
        ds.save_as(str(folder / f"im{k:03d}.dcm"), enforce_file_format=True)
    return folder


def expected_suv(bqml, *, decay_seconds):
    decayed = DOSE_BQ * math.exp(-math.log(2) * decay_seconds / HALF_LIFE)
    return bqml * (WEIGHT_KG * 1000.0) / decayed


@pytest.fixture
def activity(rng):
    return rng.uniform(0, 40000, (4, 10, 12))  # Bq/ml


def test_suv_matches_the_independent_formula(tmp_path, activity):
    folder = build_pet_series(tmp_path / "pet", activity)
    before = file_digest(folder)
    image, info = suv_from_dicom(folder, patient="SUVTEST")
    want = expected_suv(activity, decay_seconds=(SERIES - INJECTION).total_seconds())
    got = sitk.GetArrayFromImage(image)
    # int16 storage with one slope per slice: error below half a quantum of each slice
    np.testing.assert_allclose(got, want, atol=want.max() / 30000.0)
    assert info.decay_correction == "START"
    assert info.weight_kg == WEIGHT_KG
    assert image.GetSpacing() == pytest.approx((2.03, 2.03, 2.2))
    assert image.GetOrigin() == pytest.approx((-100.0, -120.0, -50.0))
    assert file_digest(folder) == before


def test_admin_decay_correction_uses_no_decay(tmp_path, activity):
    folder = build_pet_series(tmp_path / "pet", activity, overrides={"DecayCorrection": "ADMIN"})
    got = sitk.GetArrayFromImage(suv_from_dicom(folder)[0])
    np.testing.assert_allclose(got, expected_suv(activity, decay_seconds=0.0), rtol=1e-3, atol=1e-3)


def test_series_time_after_acquisition_uses_the_acquisition_time(tmp_path, activity):
    """QIBA: a series time later than the acquisition (a re-saved series) is not the scan time."""
    acquisition = SERIES - dt.timedelta(minutes=20)
    folder = build_pet_series(tmp_path / "pet", activity, acquisition=acquisition)
    got = sitk.GetArrayFromImage(suv_from_dicom(folder)[0])
    want = expected_suv(activity, decay_seconds=(acquisition - INJECTION).total_seconds())
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def test_injection_time_without_date_uses_the_series_date(tmp_path, activity):
    folder = build_pet_series(tmp_path / "pet", activity, rp_overrides={
        "RadiopharmaceuticalStartDateTime": None,
        "RadiopharmaceuticalStartTime": INJECTION.strftime("%H%M%S")})
    got = sitk.GetArrayFromImage(suv_from_dicom(folder)[0])
    want = expected_suv(activity, decay_seconds=(SERIES - INJECTION).total_seconds())
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("tag", ["PatientWeight", "Units", "DecayCorrection", "SeriesTime",
                                 "CorrectedImage"])
def test_missing_tag_is_refused_by_name_and_nothing_is_written(tmp_path, activity, tag):
    folder = build_pet_series(tmp_path / "pet", activity, omit=(tag,))
    before = file_digest(tmp_path)
    with pytest.raises(InputError, match=tag) as err:
        suv_from_dicom(folder, patient="P042")
    assert err.value.patient == "P042"
    assert file_digest(tmp_path) == before


@pytest.mark.parametrize("tag", ["RadionuclideTotalDose", "RadionuclideHalfLife"])
def test_missing_radiopharmaceutical_tag_is_refused_by_name(tmp_path, activity, tag):
    folder = build_pet_series(tmp_path / "pet", activity, rp_overrides={tag: None})
    with pytest.raises(InputError, match=tag):
        suv_from_dicom(folder)


def test_missing_injection_time_is_refused(tmp_path, activity):
    folder = build_pet_series(tmp_path / "pet", activity,
                              rp_overrides={"RadiopharmaceuticalStartDateTime": None})
    with pytest.raises(InputError, match="RadiopharmaceuticalStartTime"):
        suv_from_dicom(folder)


@pytest.mark.parametrize("overrides,message", [
    ({"Units": "CNTS"}, "not BQML"),
    ({"DecayCorrection": "NONE"}, "only START and ADMIN"),
    ({"CorrectedImage": ["DECY"]}, "lacks ATTN"),
    ({"PatientWeight": "0"}, "must be positive"),
])
def test_unusable_values_are_refused(tmp_path, activity, overrides, message):
    folder = build_pet_series(tmp_path / "pet", activity, overrides=overrides)
    with pytest.raises(InputError, match=message):
        suv_from_dicom(folder)


def test_writer_round_trip_recovers_suv_and_oblique_geometry(tmp_path):
    suv = oblique_image(shape=(5, 9, 8), seed=2) / 10.0  # SUV 0..10
    write_pet_series(suv, tmp_path / "pet", weight_kg=81, injected_dose_bq=1.9e8,
                     injection_datetime=INJECTION, series_datetime=SERIES)
    back, info = suv_from_dicom(tmp_path / "pet")
    np.testing.assert_allclose(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(suv), atol=10 / 30000)
    np.testing.assert_allclose(back.GetSpacing(), suv.GetSpacing(), rtol=1e-5)
    np.testing.assert_allclose(back.GetOrigin(), suv.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), suv.GetDirection(), atol=1e-6)
    assert info.weight_kg == 81


def test_ct_to_hu_by_rescale(tmp_path):
    hu = sitk.Cast(oblique_image(shape=(3, 6, 5), seed=4) * 20 - 1000, sitk.sitkFloat32)
    hu = sitk.Round(hu)
    write_ct_series(hu, tmp_path / "ct", rescale_intercept=-1024)
    back = hu_from_dicom(tmp_path / "ct")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(hu))
    with pytest.raises(InputError, match="expected a PET series"):
        suv_from_dicom(tmp_path / "ct")
    image, how = read_physical(tmp_path / "ct", "CT")
    assert how["rescale"] == "HU"


def test_two_series_in_one_folder_are_refused(tmp_path, activity):
    build_pet_series(tmp_path / "mix" / "a", activity)
    build_pet_series(tmp_path / "mix" / "b", activity)
    with pytest.raises(InputError, match="2 DICOM series"):
        read_dicom_series(tmp_path / "mix")


def test_missing_slice_is_detected(tmp_path, activity):
    folder = build_pet_series(tmp_path / "pet", activity)
    (folder / "im001.dcm").unlink()
    with pytest.raises(InputError, match="not uniform"):
        read_dicom_series(folder)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no DICOM"):
        read_dicom_series(tmp_path / "empty")


def test_mr_series_round_trip_keeps_oblique_geometry(tmp_path):
    from RobustDeepLogic.io.dicom import write_mr_series

    mr = oblique_image(shape=(6, 7, 9), seed=8)
    write_mr_series(mr, tmp_path / "t1")
    before = file_digest(tmp_path / "t1")
    back = read_physical(tmp_path / "t1", "T1")[0]
    np.testing.assert_allclose(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(mr), atol=100 / 65534)
    np.testing.assert_allclose(back.GetSpacing(), mr.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(back.GetOrigin(), mr.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(back.GetDirection(), mr.GetDirection(), atol=1e-6)
    with pytest.raises(InputError, match="not empty"):
        write_mr_series(mr, tmp_path / "t1")
    assert file_digest(tmp_path / "t1") == before  # the refused write left the series as it was
