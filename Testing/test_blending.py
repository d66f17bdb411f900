"""Tests of RobustDeepLogic.blending: pyramids, Laplacian blending, baselines, and `robustdeep blend`."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from RobustDeepLogic import blending as B
from RobustDeepLogic.cli.main import main
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid, read_array, write_array

KERNEL = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16


def smooth(rng, shape, sigma=2.0, offset=0.0):
    return (ndimage.gaussian_filter(rng.standard_normal(shape), sigma) * 5 + offset).astype(np.float32)


# -------------------------------------------------------------------------------------------------
# An independent reference: scipy correlate1d with mirror borders, decimation / zero insertion
# -------------------------------------------------------------------------------------------------
def ref_reduce(x):
    y = np.asarray(x, np.float64)
    for axis in range(y.ndim):
        y = ndimage.correlate1d(y, KERNEL, axis=axis, mode="mirror")
        y = np.take(y, np.arange(0, y.shape[axis], 2), axis=axis)
    return y


def ref_expand(c, shape):
    y = np.asarray(c, np.float64)
    for axis in range(y.ndim):
        n = shape[axis]
        up_shape = list(y.shape)
        up_shape[axis] = n
        up = np.zeros(up_shape)
        key = [slice(None)] * y.ndim
        key[axis] = slice(0, None, 2)
        up[tuple(key)] = y
        y = ndimage.correlate1d(up, 2 * KERNEL, axis=axis, mode="mirror")
    return y


@pytest.mark.parametrize("shape", [(7, 9, 12), (3, 4, 5), (11, 6, 3), (9, 13), (4, 3)])
def test_reduce_and_expand_match_a_scipy_reference(rng, shape):
    x = rng.random(shape).astype(np.float32)
    r = B.reduce(x)
    assert r.shape == tuple((s + 1) // 2 for s in shape)
    np.testing.assert_allclose(r, ref_reduce(x), atol=1e-6)
    e = B.expand(r, shape)
    assert e.shape == shape
    np.testing.assert_allclose(e, ref_expand(r, shape), atol=1e-6)


def test_level_rules():
    assert B.max_levels((109, 200, 200)) == 6
    assert [s[0] for s in B.level_shapes((109, 200, 200), 4)] == [109, 55, 28, 14, 7]
    assert B.max_levels((2, 50)) == 0
    with pytest.raises(InputError, match="too many"):
        B.check_levels((9, 9, 9), 4)
    assert B.check_levels((9, 9, 9), 3) == 3
    with pytest.raises(InputError):
        B.check_levels((9, 9, 9), -1)


@pytest.mark.parametrize("shape", [(109, 23, 19), (13, 21, 17), (33, 19), (5, 3, 7)])
def test_laplacian_pyramid_reconstructs_exactly(rng, shape):
    x = rng.random(shape).astype(np.float32)
    for levels in range(B.max_levels(shape) + 1):
        lap = B.laplacian_pyramid(x, levels)
        assert len(lap) == levels + 1
        np.testing.assert_allclose(B.collapse_pyramid(lap), x, atol=2e-6, rtol=0)


def test_gaussian_pyramid_of_ones_is_exactly_ones():
    for g in B.gaussian_pyramid(np.ones((109, 20, 21), np.float32), 4):
        assert np.all(g == 1.0)


@pytest.mark.parametrize("shape", [(21, 34, 29), (45, 38)])
def test_mask_of_ones_gives_x1_and_self_blend_gives_x(rng, shape):
    x1, x2 = smooth(rng, shape), smooth(rng, shape, offset=3)
    levels = B.max_levels(shape)
    np.testing.assert_allclose(B.laplacian_blend(x1, x2, np.ones(shape, np.float32), levels), x1,
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(B.laplacian_blend(x1, x2, np.zeros(shape, np.float32), levels), x2,
                               atol=1e-5, rtol=0)
    m = (rng.random(shape) > 0.5).astype(np.float32)
    np.testing.assert_array_equal(B.laplacian_blend(x1, x1, m, levels), x1)


def test_linear_form_equals_two_pyramid_form(rng):
    shape = (19, 30, 27)
    x1, x2 = smooth(rng, shape), smooth(rng, shape, offset=2)
    m = ndimage.gaussian_filter((rng.random(shape) > 0.5).astype(np.float32), 1)
    np.testing.assert_allclose(B.laplacian_blend(x1, x2, m, 3), B.two_pyramid_blend(x1, x2, m, 3),
                               atol=1e-5, rtol=0)


def test_levels_zero_is_the_naive_blend(rng):
    shape = (8, 9, 10)
    x1, x2, m = rng.random(shape), rng.random(shape), rng.random(shape)
    np.testing.assert_allclose(B.laplacian_blend(x1, x2, m, 0), B.naive_blend(x1, x2, m), atol=1e-6)


def test_far_from_the_boundary_the_result_is_the_parent(rng):
    shape = (20, 60, 64)
    x1, x2 = smooth(rng, shape), smooth(rng, shape, offset=4)
    m = np.zeros(shape, np.float32)
    m[:, :, :32] = 1
    levels = 2
    y = B.laplacian_blend(x1, x2, m, levels)
    # influence radius: 2 (2^L - 1) voxels going down and as much coming back up, plus margin
    far = 4 * (2 ** levels) + 2
    np.testing.assert_allclose(y[:, :, : 32 - far], x1[:, :, : 32 - far], atol=1e-5)
    np.testing.assert_allclose(y[:, :, 32 + far:], x2[:, :, 32 + far:], atol=1e-5)
    # near the boundary it differs from both parents
    assert np.abs(y[:, :, 30:34] - x1[:, :, 30:34]).max() > 0.1


def test_seams_are_smoother_than_the_naive_blend(rng):
    """Criterion: the mean |second difference| in a band of 2 voxels around the mask boundary is at
    most half that of the naive blend (parents that differ by a constant 4 plus smooth noise)."""
    shape = (24, 48, 48)
    x1, x2 = smooth(rng, shape, sigma=3), smooth(rng, shape, sigma=3, offset=4)
    m = np.zeros(shape, np.float32)
    m[:, :, :24] = 1
    lap = B.laplacian_blend(x1, x2, m, 3)
    naive = B.naive_blend(x1, x2, m)
    assert B.seam_roughness(lap, m) < 0.5 * B.seam_roughness(naive, m)


def test_channels_blend_like_single_volumes_and_kinds_are_kept(rng):
    shape = (11, 14, 13)
    x1 = np.stack([smooth(rng, shape) for _ in range(3)])
    x2 = np.stack([smooth(rng, shape, offset=1) for _ in range(3)])
    m = (rng.random(shape) > 0.5).astype(np.float32)
    both = B.laplacian_blend(x1, x2, m, 2)
    assert isinstance(both, np.ndarray) and both.dtype == np.float32 and both.shape == x1.shape
    for c in range(3):
        np.testing.assert_array_equal(both[c], B.laplacian_blend(x1[c], x2[c], m, 2))
    t = B.laplacian_blend(torch.from_numpy(x1), torch.from_numpy(x2), torch.from_numpy(m), 2)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_array_equal(t.numpy(), both)
    # a precomputed mask pyramid gives the same result
    gm = B.mask_pyramid(m, 2)
    np.testing.assert_array_equal(B.laplacian_blend(x1, x2, m, 2, mask_levels=gm), both)


def test_bad_shapes_are_input_errors(rng):
    with pytest.raises(InputError, match="do not fit"):
        B.laplacian_blend(np.zeros((4, 5, 6)), np.zeros((4, 5, 6)), np.zeros((4, 5, 7)), 1)
    with pytest.raises(InputError, match="differ"):
        B.laplacian_blend(np.zeros((4, 5, 6)), np.zeros((4, 5, 7)), np.zeros((4, 5, 6)), 1)


def test_a_mask_pyramid_of_another_mask_is_refused(rng):
    shape = (11, 14, 13)
    x1, x2 = smooth(rng, shape), smooth(rng, shape, offset=1)
    m = np.zeros(shape, np.float32)
    m[..., :6] = 1
    other = 1 - m
    alone = B.laplacian_blend(x1, x2, m, 2)
    # the blend under `other` differs, so a silently used wrong pyramid would change the result
    assert np.abs(B.laplacian_blend(x1, x2, other, 2) - alone).max() > 0.1
    with pytest.raises(InputError, match="not the pyramid of this mask"):
        B.laplacian_blend(x1, x2, m, 2, mask_levels=B.mask_pyramid(other, 2))
    with pytest.raises(InputError, match="not the pyramid of this mask"):
        B.laplacian_blend(torch.from_numpy(x1), torch.from_numpy(x2), torch.from_numpy(m), 2,
                          mask_levels=B.mask_pyramid(torch.from_numpy(other), 2))
    with pytest.raises(InputError, match="entries"):  # a pyramid of 3 levels for a 2-level blend
        B.laplacian_blend(x1, x2, m, 2, mask_levels=B.mask_pyramid(m, 3))
    # the pyramid of an equal mask held in other memory (float64 here) gives the blend of the mask alone
    same = B.mask_pyramid(m.astype(np.float64).copy(), 2)
    np.testing.assert_array_equal(B.laplacian_blend(x1, x2, m, 2, mask_levels=same), alone)
    # the pyramid alone stands for its mask (documented)
    np.testing.assert_array_equal(B.laplacian_blend(x1, x2, None, 2, mask_levels=same), alone)


def test_k_parent_blend(rng):
    shape = (13, 16, 15)
    xs = [smooth(rng, shape, offset=k) for k in range(3)]
    m = (rng.random(shape) > 0.5).astype(np.float32)
    # two parents: the same as laplacian_blend
    np.testing.assert_allclose(B.blend_many(xs[:2], [m, 1 - m], 2), B.laplacian_blend(xs[0], xs[1], m, 2),
                               atol=1e-5)
    # three parents, a hard partition: far inside each region the result is that parent
    region = np.zeros(shape, np.int64)
    region[:, :, 5:10] = 1
    region[:, :, 10:] = 2
    masks = [(region == k).astype(np.float32) for k in range(3)]
    y = B.blend_many(xs, masks, 1)
    np.testing.assert_allclose(y[..., 0], xs[0][..., 0], atol=1e-5)
    np.testing.assert_allclose(y[..., -1], xs[2][..., -1], atol=1e-5)
    # one mask of ones: exactly that parent
    ones = [np.zeros(shape, np.float32), np.ones(shape, np.float32), np.zeros(shape, np.float32)]
    np.testing.assert_allclose(B.blend_many(xs, ones, 2), xs[1], atol=1e-5)
    with pytest.raises(InputError, match="partition of unity"):
        B.blend_many(xs, [m, m, m], 2)


def test_baselines(rng):
    shape = (6, 10, 12)
    x1, x2 = rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)
    m = (rng.random(shape) > 0.5).astype(np.float32)
    np.testing.assert_allclose(B.naive_blend(x1, x2, m), m * x1 + (1 - m) * x2, atol=1e-7)
    y, lam = B.mixup(x1, x2, rng=np.random.default_rng(0))
    assert 0 <= lam <= 1
    np.testing.assert_allclose(y, lam * x1 + (1 - lam) * x2, atol=1e-6)
    y, kept = B.cutmix(x1, x2, lam=0.7, rng=np.random.default_rng(1))
    from_x1 = np.isclose(y, x1)
    from_x2 = np.isclose(y, x2)
    assert np.all(from_x1 | from_x2)
    assert abs(kept - 0.7) < 0.15 and abs(from_x1.mean() - kept) < 0.02


@pytest.mark.gpu
def test_cpu_and_cuda_agree(rng):
    shape = (37, 50, 44)
    x1 = np.stack([smooth(rng, shape), smooth(rng, shape, offset=1)])
    x2 = np.stack([smooth(rng, shape, offset=3), smooth(rng, shape, offset=2)])
    m = (rng.random(shape) > 0.5).astype(np.float32)
    cpu = B.laplacian_blend(x1, x2, m, 3)
    gpu = B.laplacian_blend(*(torch.from_numpy(v).cuda() for v in (x1, x2, m)), 3)
    assert gpu.is_cuda
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu, atol=1e-5, rtol=0)


# -------------------------------------------------------------------------------------------------
# robustdeep blend
# -------------------------------------------------------------------------------------------------
GRID = Grid(size=(20, 22, 15), spacing=(4.0, 4.0, 5.0), origin=(40.0, 50.0, -30.0),
            direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))


@pytest.fixture
def volumes(tmp_path, rng):
    a, b = smooth(rng, GRID.shape, offset=2), smooth(rng, GRID.shape)
    m = np.zeros(GRID.shape, np.float32)
    m[:, :, :10] = 1
    paths = {k: tmp_path / f"{k}.nii.gz" for k in ("a", "b", "mask")}
    write_array(a, GRID, paths["a"])
    write_array(b, GRID, paths["b"])
    write_array(m, GRID, paths["mask"])
    return paths, a, b, m


def test_cli_blend_writes_the_blend_with_a_geometry(tmp_path, volumes):
    paths, a, b, m = volumes
    out = tmp_path / "out" / "blend.nrrd"
    rc = main(["blend", str(paths["a"]), str(paths["b"]), str(paths["mask"]), str(out), "--levels", "2",
               "--progress", "none"])
    assert rc == 0
    y, grid = read_array(out)
    assert grid.matches(GRID)
    np.testing.assert_allclose(y, B.laplacian_blend(a, b, m, 2), atol=1e-6)
    naive = tmp_path / "naive.nii.gz"
    assert main(["blend", str(paths["a"]), str(paths["b"]), str(paths["mask"]), str(naive), "--naive",
                 "--progress", "none"]) == 0
    np.testing.assert_allclose(read_array(naive)[0], m * a + (1 - m) * b, atol=1e-6)


def test_cli_blend_rejects_bad_inputs(tmp_path, volumes, capsys):
    paths, a, b, m = volumes
    other = Grid(GRID.size, GRID.spacing, (0.0, 0.0, 0.0), GRID.direction)
    write_array(b, other, tmp_path / "b_moved.nii.gz")
    rc = main(["blend", str(paths["a"]), str(tmp_path / "b_moved.nii.gz"), str(paths["mask"]),
               str(tmp_path / "o.nii.gz"), "--progress", "none"])
    assert rc == 2
    assert "b_moved.nii.gz" in capsys.readouterr().err
    write_array(np.zeros(GRID.shape, np.float32), GRID, tmp_path / "empty.nii.gz")
    rc = main(["blend", str(paths["a"]), str(paths["b"]), str(tmp_path / "empty.nii.gz"),
               str(tmp_path / "o.nii.gz"), "--progress", "none"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "empty.nii.gz" in err and "empty" in err
    rc = main(["blend", str(paths["a"]), str(paths["b"]), str(paths["mask"]), str(tmp_path / "o.nii.gz"),
               "--levels", "9", "--progress", "none"])
    assert rc == 2
    assert not (tmp_path / "o.nii.gz").exists()
