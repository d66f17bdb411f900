"""Tests of the template space (RobustDeepLogic.templates): grid, orientation, FDG / T1 templates,
head and brain masks, and the ``robustdeep template`` commands."""

from __future__ import annotations


from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RobustDeepLogic import registration as templates
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid


# ---------------------------------------------------------------------------------------- grid --
def test_template_grid_is_mni_lattice_in_lps():
    grid = templates.template_grid(2.0)
    assert grid.spacing == (2.0, 2.0, 2.0)
    assert grid.direction == (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    image = templates.grid_image(grid)
    # MNI (0, 0, 0) is a voxel centre
    idx = image.TransformPhysicalPointToContinuousIndex((0.0, 0.0, 0.0))
    assert np.allclose(idx, np.round(idx), atol=1e-9)
    # index x grows towards the subject's right: MNI +x is LPS -x
    p0 = np.array(image.TransformIndexToPhysicalPoint((0, 0, 0)))
    p1 = np.array(image.TransformIndexToPhysicalPoint((1, 1, 1)))
    assert np.allclose(p1 - p0, [-2.0, -2.0, 2.0])
    # it covers the head bounds (MNI, RAS)
    first = templates.lps_to_mni(p0)
    last = templates.lps_to_mni(image.TransformIndexToPhysicalPoint([s - 1 for s in grid.size]))
    for axis, (lo, hi) in enumerate(templates.HEAD_BOUNDS_MNI):
        assert first[axis] <= lo and last[axis] >= hi


def test_template_grid_spacing_and_bad_spacing():
    g4 = templates.template_grid(4.0)
    g2 = templates.template_grid(2.0)
    assert g4.size[0] < g2.size[0] and g4.spacing == (4.0,) * 3
    with pytest.raises(InputError):
        templates.template_grid(0.0)
    with pytest.raises(InputError):
        templates.template_grid(float("nan"))


def test_mni_lps_conversion_is_an_involution():
    p = np.array([10.0, -20.0, 30.0])
    assert np.allclose(templates.mni_to_lps(p), [-10.0, 20.0, 30.0])
    assert np.allclose(templates.lps_to_mni(templates.mni_to_lps(p)), p)


def test_resample_to_grid_keeps_geometry_and_values():
    """A linear ramp along LPS x survives resampling onto another grid (value = x in mm)."""
    src_grid = Grid((40, 30, 20), (1.5, 1.5, 1.5), (-30.0, -20.0, -10.0))
    x = -30.0 + 1.5 * np.arange(40)
    arr = np.broadcast_to(x[None, None, :], src_grid.shape).astype(np.float32)
    src = src_grid.apply_to(sitk.GetImageFromArray(arr))
    dst_grid = Grid((10, 8, 6), (3.0, 3.0, 3.0), (20.0, -10.0, -5.0),
                    (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    out = templates.resample_to_grid(src, dst_grid, antialias=False)
    assert Grid.of(out).matches(dst_grid)
    values = sitk.GetArrayFromImage(out)
    expect = np.array([out.TransformIndexToPhysicalPoint((i, 0, 0))[0] for i in range(10)])
    assert np.allclose(values[0, 0, :], expect, atol=1e-4)


# ----------------------------------------------------------------------------- with the assets --
@pytest.mark.assets
def test_tissue_maps_are_a_partition_of_unity(need_assets):
    grid = templates.template_grid(4.0)
    for source in ("tpm", "mni152"):
        maps = templates.tissue_maps(grid, source)
        assert set(maps) == set(templates.TISSUE_CLASSES)
        total = sum(maps.values())
        assert np.allclose(total, 1.0, atol=1e-4)
        assert all(m.min() >= -1e-6 and m.shape == grid.shape for m in maps.values())
    with pytest.raises(InputError):
        templates.tissue_maps(grid, "atlas")


@pytest.mark.assets
def test_head_mask_includes_skull_and_scalp_and_fits_the_grid(need_assets):
    grid = templates.template_grid(4.0)
    head = sitk.GetArrayFromImage(templates.head_mask(grid)).astype(bool)
    brain = sitk.GetArrayFromImage(templates.brain_mask(grid)).astype(bool)
    maps = templates.tissue_maps(grid)
    volume_ml = head.sum() * 4.0**3 / 1000
    assert 3000 < volume_ml < 4500  # an adult head with scalp (TPM: about 3.7 L)
    assert 1200 < brain.sum() * 64 / 1000 < 2200
    assert (brain & ~head).sum() == 0  # brain inside the head
    bone_in_head = (maps["bone"] > 0.5)
    assert bone_in_head.sum() > 0 and np.all(head[bone_in_head])  # skull is part of the head
    # the head does not touch the grid's sides, top, front or back (the TPM ends at the neck)
    assert not head[:, :, 0].any() and not head[:, :, -1].any()
    assert not head[:, 0, :].any() and not head[:, -1, :].any() and not head[-1].any()


@pytest.mark.assets
def test_fdg_template_has_fdg_contrast(need_assets):
    grid = templates.template_grid(4.0)
    fdg = templates.fdg_template(grid)
    assert Grid.of(fdg).matches(grid) and fdg.GetPixelID() == sitk.sitkFloat32
    arr = sitk.GetArrayFromImage(fdg)
    maps = templates.tissue_maps(grid)
    gm = arr[maps["gm"] > 0.6].mean()
    wm = arr[maps["wm"] > 0.8].mean()
    air = arr[maps["air"] > 0.95].mean()
    assert gm > 1.5 * wm > 0 and air < 0.2
    # smoothing at PET resolution: a sharper template has more contrast
    sharp = sitk.GetArrayFromImage(templates.fdg_template(grid, fwhm_mm=0.0))
    assert sharp[maps["gm"] > 0.6].mean() > gm


@pytest.mark.assets
def test_left_right_orientation_of_templates(need_assets):
    """The template is on MNI axes: array x index grows to the subject's right; the head is
    symmetric about MNI x = 0 and the brain is above the cerebellum-level slices."""
    grid = templates.template_grid(4.0)
    head = sitk.GetArrayFromImage(templates.head_mask(grid)).astype(bool)
    xs = np.nonzero(head.any(axis=(0, 1)))[0]
    image = templates.grid_image(grid)
    left = templates.lps_to_mni(image.TransformIndexToPhysicalPoint((int(xs[0]), 0, 0)))[0]
    right = templates.lps_to_mni(image.TransformIndexToPhysicalPoint((int(xs[-1]), 0, 0)))[0]
    assert left < -60 and right > 60 and abs(left + right) <= 8
    t1 = templates.t1_template(grid)
    arr = sitk.GetArrayFromImage(t1)
    assert 0.9 < float(np.percentile(arr[arr > 0], 99.5)) < 1.1


@pytest.mark.assets
def test_tissue_model_modalities_and_write_template_space(need_assets, tmp_path):
    grid = templates.template_grid(4.0)
    ct = sitk.GetArrayFromImage(templates.tissue_model_image("CT", grid))
    maps = templates.tissue_maps(grid)
    assert ct[maps["air"] > 0.95].mean() < -900 and ct[maps["bone"] > 0.6].mean() > 500
    with pytest.raises(InputError):
        templates.tissue_model_image("PD", grid)
    paths = templates.write_template_space(tmp_path / "tpl", spacing=4.0)
    assert set(paths) == {"fdg", "head_mask", "brain_mask", "t1"}
    for path in paths.values():
        assert Grid.of(sitk.ReadImage(str(path))).matches(grid)
    # a template file on another grid is brought onto the template grid
    other = templates.load_template_image(paths["fdg"], spacing=2.0)
    assert Grid.of(other).matches(templates.template_grid(2.0))
    empty = sitk.Image(10, 10, 10, sitk.sitkFloat32)
    sitk.WriteImage(empty, str(tmp_path / "empty.nii.gz"))
    with pytest.raises(InputError):
        templates.load_template_image(tmp_path / "empty.nii.gz", spacing=4.0)


@pytest.mark.assets
def test_template_commands(need_assets, tmp_path):
    from RobustDeepLogic.cli.main import run_command

    assert run_command(["template", "show", "--spacing", "4", "--progress", "none"]) == 0
    out = tmp_path / "tpl"
    assert run_command(["template", "write", str(out), "--spacing", "4", "--progress", "none"]) == 0
    assert (out / templates.TEMPLATE_FILES["fdg"]).is_file()
    assert (out / templates.TEMPLATE_FILES["head_mask"]).is_file()


def test_asset_wheels_are_downloaded_for_a_python_that_has_them(monkeypatch, tmp_path):
    """Issue 14 item 2: Slicer 5.8's Python 3.9 must download nilearn 0.14.1 (Requires-Python >= 3.10).

    pip picks releases for ``--python-version`` rather than for the interpreter that runs it, so the
    command must carry it, the same whatever Python runs the engine; the version must be one the wheels
    support (nilearn 0.14.1: >= 3.10; both wheels are ``py3-none-any``).
    """
    from RobustDeepLogic.registration import assets

    seen = []

    class Done:
        returncode, stderr = 0, ""

    def fake_run(cmd, **kwargs):
        seen.append(list(cmd))
        name, version = cmd[-1].split("==")
        (Path(cmd[cmd.index("-d") + 1]) / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"")
        return Done()

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    commands = {}
    for python in ((3, 9, 18), (3, 12, 1)):
        monkeypatch.setattr(assets.sys, "version_info", python)
        seen.clear()
        wheels = assets._download_wheels([assets.NILEARN, assets.SPM], tmp_path, None)
        assert sorted(wheels) == ["nilearn", "spm-runtime-r2025b"]
        commands[python] = [c[1:] for c in seen]
    assert commands[(3, 9, 18)] == commands[(3, 12, 1)]
    for cmd in commands[(3, 9, 18)]:
        assert cmd[cmd.index("--python-version") + 1] == assets.WHEEL_PYTHON_VERSION
        assert {"--no-deps", "--only-binary"} <= set(cmd)  # pip's conditions for --python-version
    major, minor = (int(v) for v in assets.WHEEL_PYTHON_VERSION.split("."))
    assert (major, minor) >= (3, 10)  # nilearn 0.14.1 requires Python >= 3.10
