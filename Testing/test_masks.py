"""Tests of RobustDeepLogic.masks: coordinates, presets, generators, files, and `robustdeep masks`."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from RobustDeepLogic import masks as M
from RobustDeepLogic.cli.main import main
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid, read_array, write_array

# A coarse MNI grid (6 mm), RAS-oriented like the MNI152 files: fast to make masks on.
GRID = Grid(size=(31, 37, 31), spacing=(6.0, 6.0, 6.0), origin=(90.0, 126.0, -72.0),
            direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))


def voxel_of(grid, point_mni):
    i, j, k = np.round(M.mni_to_index(grid, point_mni)).astype(int)
    return (k, j, i)


def test_mni_coordinates_of_the_mni152_grid():
    g = M.MNI152_2MM_GRID
    x, y, z = M.mni_coordinates(g)
    assert (x[0, 0, 0], y[0, 0, 0], z[0, 0, 0]) == (-90.0, -126.0, -72.0)
    assert (x[0, 0, -1], y[0, -1, 0], z[-1, 0, 0]) == (90.0, 90.0, 108.0)
    np.testing.assert_allclose(M.mni_to_index(g, (0, 0, 0)), (45, 63, 36))


def test_coordinates_follow_an_oblique_direction_like_simpleitk(rng):
    angle = np.radians(20)
    c, s = np.cos(angle), np.sin(angle)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    grid = Grid(size=(9, 8, 7), spacing=(3.0, 4.0, 5.0), origin=(10.0, -20.0, 5.0), direction=direction)
    image = grid.apply_to(sitk.Image(9, 8, 7, sitk.sitkUInt8))
    x, y, z = M.mni_coordinates(grid)
    for _ in range(10):
        i, j, k = (int(rng.integers(n)) for n in grid.size)
        p = image.TransformIndexToPhysicalPoint((i, j, k))
        np.testing.assert_allclose((x[k, j, i], y[k, j, i], z[k, j, i]), (-p[0], -p[1], p[2]), atol=1e-4)
        np.testing.assert_allclose(M.mni_to_index(grid, (-p[0], -p[1], p[2])), (i, j, k), atol=1e-6)
    # the mid-sagittal split follows MNI x, not the voxel axes
    simple = M.make_preset("simple", grid)
    np.testing.assert_array_equal(simple > 0.5, x < 0)


@pytest.mark.parametrize("name", list(M.PRESETS))
def test_every_preset_is_a_valid_binary_mask(name):
    m = M.make_preset(name, GRID)
    assert m.shape == GRID.shape and m.dtype == np.float32
    assert set(np.unique(m)) == {0.0, 1.0}
    M.validate_mask(m, GRID)


def test_preset_semantics():
    simple = M.make_preset("simple", GRID)
    assert simple[voxel_of(GRID, (-40, 0, 0))] == 1 and simple[voxel_of(GRID, (40, 0, 0))] == 0
    coronal = M.make_preset("coronal", GRID)
    assert coronal[voxel_of(GRID, (0, 30, 0))] == 1 and coronal[voxel_of(GRID, (0, -60, 0))] == 0
    ad = M.make_preset("alzheimer", GRID)
    assert ad[voxel_of(GRID, (-26, -22, -12))] == 1 and ad[voxel_of(GRID, (27, -22, -12))] == 1
    assert ad[voxel_of(GRID, (0, 0, 60))] == 0
    pd = M.make_preset("parkinson", GRID)
    assert pd[voxel_of(GRID, (-25, 2, 1))] == 1 and pd[voxel_of(GRID, (-26, -22, -12))] == 0
    complex_ = M.make_preset("complex", GRID)
    # octants alternate: mirror through the centre along one axis flips the value (outside the core)
    assert complex_[voxel_of(GRID, (40, 20, 50))] != complex_[voxel_of(GRID, (-40, 20, 50))]
    assert complex_[voxel_of(GRID, (40, 20, 50))] == complex_[voxel_of(GRID, (-40, -60, 50))]


def test_generators():
    fine = Grid((41, 41, 41), (2.0, 2.0, 2.0), (40.0, 40.0, -40.0), GRID.direction)
    ball = M.sphere(fine, (0, 0, 0), 20.0)
    assert abs(ball.sum() * 8 - 4 / 3 * np.pi * 20 ** 3) / (4 / 3 * np.pi * 20 ** 3) < 0.05
    e = M.ellipsoid(fine, (0, 0, 0), (30, 10, 10))
    assert e[voxel_of(fine, (25, 0, 0))] == 1 and e[voxel_of(fine, (0, 15, 0))] == 0
    z = M.mni_coordinates(fine)[2]
    st = M.stripes(fine, "z", width_mm=10.0)
    np.testing.assert_array_equal(st > 0.5, np.mod(np.floor(z / 10), 2) == 0)
    tilted = M.half_space(fine, M.direction_from_angles(45), (0, 0, 0))
    assert tilted[voxel_of(fine, (10, 10, 0))] == 1 and tilted[voxel_of(fine, (-10, -10, 0))] == 0
    assert tilted[voxel_of(fine, (20, -30, 0))] == 0
    b = M.blocks(fine, 20.0, centre=(0, 0, 0))
    assert b[voxel_of(fine, (5, 5, 5))] == 1 and b[voxel_of(fine, (25, 5, 5))] == 0
    assert b[voxel_of(fine, (25, 25, 5))] == 1


def test_random_blobs_are_seeded_and_cover_the_fraction_of_the_head():
    head = M.ellipsoid_head(GRID)
    a = M.random_blobs(GRID, seed=3, fraction=0.3, head=head)
    np.testing.assert_array_equal(a, M.random_blobs(GRID, seed=3, fraction=0.3, head=head))
    assert not np.array_equal(a, M.random_blobs(GRID, seed=4, fraction=0.3, head=head))
    assert abs(a[head > 0].mean() - 0.3) < 0.02


def test_head_centres_the_checkerboard():
    head = M.ellipsoid(GRID, (30, 0, 0), (40, 50, 40))
    np.testing.assert_allclose(M.head_centre(head, GRID), (30, 0, 0), atol=3.1)
    b = M.make_preset("checkerboard", GRID, head)
    assert b[voxel_of(GRID, (36, 6, 6))] == 1 and b[voxel_of(GRID, (24, 6, 6))] == 0


def test_specs():
    m = M.mask_from_spec("sphere:center=0,-20,10;radius=30", GRID)
    np.testing.assert_array_equal(m, M.sphere(GRID, (0, -20, 10), 30))
    m = M.mask_from_spec("regions:names=caudate+putamen;margin=2;sides=left", GRID)
    assert m[voxel_of(GRID, (-25, 2, 1))] == 1 and m[voxel_of(GRID, (26, 2, 1))] == 0
    with pytest.raises(InputError, match="neither a mask preset"):
        M.mask_from_spec("nonsense", GRID)
    with pytest.raises(InputError, match="unknown parameter"):
        M.mask_from_spec("sphere:radius=3;colour=red", GRID)
    with pytest.raises(InputError, match="empty"):
        M.mask_from_spec("sphere:centre=500,0,0;radius=3", GRID)
    assert M.mask_tag("simple") == "simple"
    assert M.mask_tag("sphere:radius=3") != M.mask_tag("sphere:radius=4")


# -------------------------------------------------------------------------------------------------
# Files
# -------------------------------------------------------------------------------------------------
def test_label_volume_and_soft_masks(tmp_path):
    labels = np.zeros(GRID.shape, np.int16)
    labels[:, :, 5:10] = 2
    labels[:, :, 20:] = 3
    write_array(labels, GRID, tmp_path / "labels.nii.gz")
    m = M.load_mask(tmp_path / "labels.nii.gz", GRID, labels=[2])
    np.testing.assert_array_equal(m, (labels == 2).astype(np.float32))
    m23 = M.mask_from_spec(f"{tmp_path / 'labels.nii.gz'}#label=2+3", GRID)
    np.testing.assert_array_equal(m23, (labels >= 2).astype(np.float32))
    with pytest.raises(InputError, match="labels.nii.gz.*\\[0, 1\\]"):
        M.load_mask(tmp_path / "labels.nii.gz", GRID)
    soft = np.linspace(0, 1, np.prod(GRID.shape), dtype=np.float32).reshape(GRID.shape)
    write_array(soft, GRID, tmp_path / "soft.nrrd")
    np.testing.assert_allclose(M.load_mask(tmp_path / "soft.nrrd", GRID), soft)


def test_bad_masks_name_the_file(tmp_path):
    write_array(np.zeros(GRID.shape, np.float32), GRID, tmp_path / "empty.nii.gz")
    write_array(np.ones(GRID.shape, np.float32), GRID, tmp_path / "full.nii.gz")
    other = Grid((10, 10, 10), (6.0, 6.0, 6.0), (0.0, 0.0, 0.0))
    half = np.zeros((10, 10, 10), np.float32)
    half[:5] = 1
    write_array(half, other, tmp_path / "othergrid.nii.gz")
    bad = np.zeros(GRID.shape, np.float32)
    bad[0, 0, 0] = np.nan
    write_array(bad, GRID, tmp_path / "nan.nrrd")
    for name, pattern in [("empty.nii.gz", "empty"), ("full.nii.gz", "full"),
                          ("othergrid.nii.gz", "not on the template grid"), ("nan.nrrd", "non-finite")]:
        with pytest.raises(InputError, match=pattern) as info:
            M.load_mask(tmp_path / name, GRID)
        assert info.value.file == str(tmp_path / name)
    with pytest.raises(InputError, match="not found"):
        M.load_mask(tmp_path / "missing.nii.gz", GRID)


def write_segmentation(path, grid, array, segments):
    image = grid.apply_to(sitk.GetImageFromArray(array.astype(np.uint8)))
    for i, (name, value) in enumerate(segments):
        image.SetMetaData(f"Segment{i}_ID", f"Segment_{i + 1}")
        image.SetMetaData(f"Segment{i}_Name", name)
        image.SetMetaData(f"Segment{i}_LabelValue", str(value))
        image.SetMetaData(f"Segment{i}_Layer", "0")
    sitk.WriteImage(image, str(path), True)


def test_slicer_segmentation_cropped_to_its_extent(tmp_path):
    # a segmentation cropped to a box starting at voxel (i, j, k) = (4, 5, 6) of the template grid
    sub = Grid((10, 12, 8), GRID.spacing,
               tuple(np.asarray(GRID.origin) + np.asarray(GRID.direction).reshape(3, 3) @ (
                   np.array([4, 5, 6]) * np.asarray(GRID.spacing))), GRID.direction)
    labels = np.zeros(sub.shape, np.uint8)
    labels[1:4, 2:6, 3:7] = 1
    labels[5:7, 2:6, 3:7] = 2
    path = tmp_path / "mask.seg.nrrd"
    write_segmentation(path, sub, labels, [("Hippocampus", 1), ("Putamen", 2)])
    both = M.load_mask(path, GRID)
    assert both.shape == GRID.shape and both.sum() == (labels > 0).sum()
    assert both[6 + 1, 5 + 2, 4 + 3] == 1
    hip = M.mask_from_spec(f"{path}#segment=hippocampus", GRID)
    assert hip.sum() == (labels == 1).sum()
    with pytest.raises(InputError, match="not found") as info:
        M.load_mask(path, GRID, segments=["Amygdala"])
    assert "Hippocampus" in str(info.value) and info.value.file == str(path)


# -------------------------------------------------------------------------------------------------
# robustdeep masks
# -------------------------------------------------------------------------------------------------
def test_cli_masks(tmp_path, capsys):
    assert main(["masks", "list", "--progress", "none"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in M.PRESETS)
    out = tmp_path / "simple.nii.gz"
    assert main(["masks", "write", "simple", str(out), "--progress", "none"]) == 0
    m, grid = read_array(out)
    assert grid.matches(M.MNI152_2MM_GRID)
    np.testing.assert_array_equal(m, M.make_preset("simple", M.MNI152_2MM_GRID))
    like = tmp_path / "like.nii.gz"
    write_array(np.zeros(GRID.shape, np.float32), GRID, like)
    assert main(["masks", "write", "complex", str(tmp_path / "c.nrrd"), "--like", str(like),
                 "--progress", "none"]) == 0
    assert read_array(tmp_path / "c.nrrd")[1].matches(GRID)
    png = tmp_path / "p.png"
    assert main(["masks", "preview", "alzheimer", str(png), "--like", str(like), "--progress", "none"]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 100_000
    assert main(["masks", "write", "nonsense", str(tmp_path / "x.nii.gz"), "--progress", "none"]) == 2
