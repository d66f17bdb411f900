"""Volumes: geometry survives every format exactly; writes are atomic; inputs are never modified."""

from __future__ import annotations

import struct

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


# --------------------------------------------------------------------------------------------------
# What ITK lets through (issue 15 #12, #15, #17): truncated files, NIfTI spacing <= 0, no permission
# --------------------------------------------------------------------------------------------------
def _int16_volume(spacing=(1.5, 2.0, 2.5)):
    image = sitk.GetImageFromArray((np.arange(20 * 30 * 40).reshape(20, 30, 40) % 1000 + 1).astype(np.int16))
    image.SetSpacing(spacing)
    return image


def _truncate(path, fraction=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("name, message", [("cut.nii.gz", "truncated or corrupt gzip stream"),
                                           ("cut.nii", "truncated")])
def test_truncated_nifti_is_refused_naming_the_file(tmp_path, name, message):
    path = tmp_path / name
    sitk.WriteImage(_int16_volume(), str(path), name.endswith(".gz"))
    read_volume(path)  # complete: fine
    _truncate(path)
    with pytest.raises(InputError, match=message) as err:
        read_volume(path, patient="P003")
    assert err.value.file == str(path) and err.value.patient == "P003"


def test_a_gzip_stream_missing_only_its_trailer_is_refused(tmp_path):
    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(_int16_volume(), str(path), True)
    path.write_bytes(path.read_bytes()[:-8])  # CRC and size gone: every voxel byte still there
    with pytest.raises(InputError, match="truncated or corrupt gzip stream"):
        read_volume(path)


def _nifti1(endian, pixdim, dims=(4, 5, 6)):
    """A NIfTI-1 file of int16 voxels 0, 1, 2 ... written byte by byte (no ITK), in either byte order."""
    header = bytearray(348)
    struct.pack_into(f"{endian}i", header, 0, 348)
    struct.pack_into(f"{endian}8h", header, 40, 3, *dims, 1, 1, 1, 1)
    struct.pack_into(f"{endian}hh", header, 70, 4, 16)  # datatype int16, bitpix 16
    struct.pack_into(f"{endian}8f", header, 76, 1.0, *pixdim, 0, 0, 0, 0)
    struct.pack_into(f"{endian}f", header, 108, 352.0)
    struct.pack_into(f"{endian}f", header, 112, 1.0)  # scl_slope
    header[344:348] = b"n+1\0"
    voxels = np.arange(int(np.prod(dims)), dtype=f"{endian}i2").tobytes()
    return bytes(header) + b"\0\0\0\0" + voxels


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_spacing_must_be_positive(tmp_path, endian, suffix):
    import gzip

    def write(name, pixdim):
        data = _nifti1(endian, pixdim)
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
        return path

    good = read_volume(write("good", (1.5, 2.0, 2.5)))
    assert good.GetSpacing() == (1.5, 2.0, 2.5)  # the bytes written are a valid NIfTI file
    assert sitk.GetArrayFromImage(good).ravel().tolist() == list(range(120))
    for name, pixdim in [("zero", (1.5, 0.0, 2.5)), ("negative", (-1.0, 2.0, 2.5)),
                         ("nan", (1.5, 2.0, float("nan")))]:
        path = write(name, pixdim)
        with pytest.raises(InputError, match=r"voxel spacing \(pixdim\)") as err:
            read_volume(path)
        assert err.value.file == str(path)


def test_file_without_read_permission_is_named_as_such(tmp_path, monkeypatch):
    import builtins
    import os

    path = write_volume(oblique_image(), tmp_path / "locked.nii.gz")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make opening this one file fail as it would for a user
        real_open = builtins.open

        def guarded_open(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(file))
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", guarded_open)
    try:
        with pytest.raises(InputError, match="cannot be read: permission denied") as err:
            read_volume(path)
    finally:
        path.chmod(0o644)
    assert err.value.file == str(path) and "not found" not in str(err.value)


def test_a_valid_gzip_stream_of_several_members_is_accepted(tmp_path):
    """Its last member's trailer does not give the whole size: the stream is read to its end instead."""
    import gzip

    data = _nifti1("<", (1.5, 2.0, 2.5))
    path = tmp_path / "members.nii.gz"
    path.write_bytes(gzip.compress(data[:400]) + gzip.compress(data[400:]))
    assert sitk.GetArrayFromImage(read_volume(path)).ravel().tolist() == list(range(120))
    path.write_bytes(gzip.compress(data[:400]) + gzip.compress(data[400:])[:-8])
    with pytest.raises(InputError, match="truncated or corrupt gzip stream"):
        read_volume(path)
