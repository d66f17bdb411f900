"""Volumes: geometry survives every format exactly; writes are atomic; inputs are never modified."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from helpers import file_digest, oblique_image
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid, image_from_array, read_array, read_volume, write_array, write_volume
from RobustDeepLogic.core.files import atomic_path, volume_suffix

FORMATS = [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"]


# Precision each format stores geometry with: NIfTI keeps float32 (pixdim, sform), NRRD and
# MetaImage keep decimal text of the float64 values (NRRD as spacing x direction vectors).
GEOMETRY_RTOL = {".nii.gz": 2e-7, ".nii": 2e-7, ".nrrd": 1e-15, ".nhdr": 1e-15, ".mha": 0, ".mhd": 0}


def _assert_same_geometry(a: sitk.Image, b: sitk.Image, rtol: float) -> None:
    assert a.GetSize() == b.GetSize()
    for get in (sitk.Image.GetSpacing, sitk.Image.GetOrigin, sitk.Image.GetDirection):
        got, want = np.asarray(get(a)), np.asarray(get(b))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 10)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_round_trip_keeps_geometry_to_the_format_precision_and_voxels_exactly(tmp_path, suffix, dtype):
    image = oblique_image(dtype=dtype, seed=3)
    back = read_volume(write_volume(image, tmp_path / f"vol{suffix}"))
    _assert_same_geometry(back, image, GEOMETRY_RTOL[suffix])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert sitk.GetArrayFromImage(back).dtype == dtype


@pytest.mark.parametrize("suffix", FORMATS)
def test_geometry_read_from_a_file_does_not_drift_over_round_trips(tmp_path, suffix):
    """What a user reads and writes again stays put: bit-exact for NRRD and MetaImage from the second
    trip on; within float32 precision for NIfTI (its direction goes through a float32 quaternion)."""
    once = read_volume(write_volume(oblique_image(seed=5), tmp_path / f"a{suffix}"))
    images = [once]
    for name in "bcd":
        images.append(read_volume(write_volume(images[-1], tmp_path / f"{name}{suffix}")))
    if suffix in (".nii", ".nii.gz"):
        for image in images[1:]:
            _assert_same_geometry(image, once, 2e-7)
            assert image.GetSpacing() == once.GetSpacing()
    else:
        for image in images[2:]:
            assert image.GetSpacing() == images[1].GetSpacing()
            assert image.GetOrigin() == images[1].GetOrigin()
            assert image.GetDirection() == images[1].GetDirection()


def test_nifti_geometry_matches_grid_to_tolerance(tmp_path):
    image = oblique_image()
    back = read_volume(write_volume(image, tmp_path / "a.nii.gz"))
    assert Grid.of(back).matches(Grid.of(image), tol=1e-5)


def test_detached_formats_leave_header_and_data(tmp_path):
    write_volume(oblique_image(), tmp_path / "v.nhdr")
    write_volume(oblique_image(), tmp_path / "w.mhd")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "v.nhdr" in names and "w.mhd" in names
    assert any(n.startswith("v.") and n != "v.nhdr" for n in names)  # the detached data file
    assert not any(n.startswith(".") for n in names)  # no temporary left behind


def test_array_helpers_keep_grid(tmp_path):
    image = oblique_image(shape=(4, 5, 6))
    arr, grid = read_array(write_volume(image, tmp_path / "a.nrrd"))
    assert arr.shape == grid.shape == (4, 5, 6)
    assert arr.dtype == np.float32
    write_array(arr * 2, grid, tmp_path / "b.nrrd")
    arr2, grid2 = read_array(tmp_path / "b.nrrd")
    assert grid2.matches(grid, tol=1e-12)
    np.testing.assert_allclose(arr2, arr * 2)
    with pytest.raises(ValueError, match="does not match"):
        image_from_array(arr[:-1], grid)


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.nii.gz"
    write_volume(oblique_image(seed=1), target)
    before = file_digest(target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert file_digest(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]


def test_reading_never_modifies_the_input(tmp_path):
    for suffix in FORMATS:
        path = write_volume(oblique_image(), tmp_path / f"in{suffix}")
        before = file_digest(tmp_path)
        read_volume(path, dtype=np.float32)
        assert file_digest(tmp_path) == before


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        read_volume(tmp_path / "nope.nii.gz", patient="P007")
    assert err.value.patient == "P007"
    assert err.value.file.endswith("nope.nii.gz")


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"this is not a volume")
    with pytest.raises(InputError, match="cannot read") as err:
        read_volume(bad)
    assert "broken.nii.gz" in str(err.value)


def test_2d_image_is_rejected(tmp_path):
    flat = sitk.GetImageFromArray(np.zeros((5, 6), np.float32))
    sitk.WriteImage(flat, str(tmp_path / "slice.nrrd"))
    with pytest.raises(InputError, match="expected a 3D volume"):
        read_volume(tmp_path / "slice.nrrd")


def test_unknown_output_format(tmp_path):
    with pytest.raises(InputError, match="unknown volume format"):
        write_volume(oblique_image(), tmp_path / "x.png")


@pytest.mark.parametrize("name,suffix", [("a.nii.gz", ".nii.gz"), ("A.NRRD", ".nrrd"),
                                         ("b.mhd", ".mhd"), ("c.txt", None)])
def test_volume_suffix(name, suffix):
    assert volume_suffix(name) == suffix
