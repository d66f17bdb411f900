"""Metrics and statistics against independent computations (scikit-image, scipy, hand-worked cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import stats as sps

from RobustDeepLogic import evaluate as M
from RobustDeepLogic.evaluate import statistics as S

skm = pytest.importorskip("skimage.metrics")


def _sk_ssim(a, b, data_range, full=False):
    return skm.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=data_range, full=full)


@pytest.fixture
def pair(rng):
    a = ndi.gaussian_filter(rng.random((20, 32, 28)), 1.5) * 2.0
    b = a + 0.04 * rng.standard_normal(a.shape) + 0.01
    return a, b


# -- windowed SSIM ---------------------------------------------------------------------------------
def test_ssim_map_3d_matches_skimage(pair):
    a, b = pair
    mean_sk, map_sk = _sk_ssim(a, b, 1.0, full=True)
    ours = M.ssim_map(a, b, 1.0, "3d")
    assert ours.shape == a.shape and ours.dtype == np.float32
    assert np.abs(ours - map_sk).max() < 2e-5
    assert M.ssim(a, b, None, 1.0, "3d", crop_border=True) == pytest.approx(mean_sk, abs=1e-6)


def test_ssim_2d_is_per_slice_skimage(pair):
    a, b = pair
    ours = M.ssim_map(a, b, 1.0, "2d")
    for z in (0, 7, 19):
        mean_sk, map_sk = _sk_ssim(a[z], b[z], 1.0, full=True)
        assert np.abs(ours[z] - map_sk).max() < 2e-5
        assert M.ssim(a[z], b[z], None, 1.0, crop_border=True) == pytest.approx(mean_sk, abs=1e-6)
    # a 2D slice alone gives the same map as the slice of the 2D mode
    assert np.abs(M.ssim_map(a[3], b[3], 1.0) - ours[3]).max() < 1e-6


def test_ssim_in_hounsfield_units_with_offset(pair):
    a, b = pair
    hu_a, hu_b = a * 1000.0 - 1000.0, b * 1000.0 - 1000.0
    _, map_sk = _sk_ssim(hu_a, hu_b, 3000.0, full=True)
    assert np.abs(M.ssim_map(hu_a, hu_b, 3000.0) - map_sk).max() < 5e-5


def test_ssim_over_mask_is_mean_of_map_over_mask(pair):
    a, b = pair
    mask = np.zeros(a.shape, bool)
    mask[4:15, 6:25, 5:20] = True
    _, map_sk = _sk_ssim(a, b, 0.5, full=True)
    assert M.ssim(a, b, mask, 0.5) == pytest.approx(map_sk[mask].mean(), abs=2e-6)
    assert M.ssim(a, a, mask, 0.5) == pytest.approx(1.0, abs=1e-6)


def test_ssim_rejects_bad_input(pair):
    a, b = pair
    with pytest.raises(ValueError):
        M.ssim_map(a, b[:-1], 1.0)
    with pytest.raises(ValueError):
        M.ssim_map(a, b, 0.0)
    with pytest.raises(ValueError):
        M.ssim(a, b, np.zeros(a.shape, bool))


# -- global SSIM, RMSE, PSNR by hand ---------------------------------------------------------------
def test_ssim_global_hand_computed():
    r = np.array([0.0, 1.0])
    p = np.array([1.0, 0.0])
    # means 0.5, 0.5; variances 0.25, 0.25; covariance -0.25
    expected = (2 * 0.25 + 0.01) * (2 * -0.25 + 0.02) / ((0.25 + 0.25 + 0.01) * (0.25 + 0.25 + 0.02))
    assert expected == pytest.approx(-0.48 / 0.52)
    assert M.ssim_global(r, p) == pytest.approx(expected, rel=1e-12)
    assert M.ssim_global(r, r) == pytest.approx(1.0)
    # a second case: r = (0.2, 0.4), p = (0.3, 0.3): mP = 0.3, vP = 0, cov = 0
    r2, p2 = np.array([0.2, 0.4]), np.array([0.3, 0.3])
    expected2 = (2 * 0.3 * 0.3 + 0.01) * 0.02 / ((0.09 + 0.09 + 0.01) * (0.01 + 0.0 + 0.02))
    assert M.ssim_global(r2, p2) == pytest.approx(expected2, rel=1e-12)


def test_ssim_global_constants_scale_makes_units_irrelevant(rng):
    r = rng.random(500)
    p = r + 0.1 * rng.standard_normal(500)
    assert M.ssim_global(15 * r, 15 * p, constants_scale=225.0) == pytest.approx(M.ssim_global(r, p), rel=1e-10)
    assert M.ssim_global(15 * r, 15 * p) != pytest.approx(M.ssim_global(r, p), rel=1e-3)


def test_rmse_psnr_hand_computed():
    r = np.array([0.0, 0.5, 1.0, 0.5])
    p = np.array([0.1, 0.4, 0.9, 0.7])
    mse = (0.01 + 0.01 + 0.01 + 0.04) / 4
    assert M.rmse(r, p) == pytest.approx(math.sqrt(mse))
    assert M.mae(r, p) == pytest.approx(0.5 / 4)
    assert M.psnr(r, p) == pytest.approx(20 * math.log10(1.0 / math.sqrt(mse)))
    # Max is the larger maximum: here the prediction's
    p2 = np.array([0.0, 0.5, 1.0, 1.5])
    assert M.psnr_peak(r, p2) == 1.5
    assert M.psnr(r, p2) == pytest.approx(20 * math.log10(1.5 / math.sqrt(1.0 / 4)))
    assert M.psnr(r, r) == math.inf
    assert M.rmse(r, r) == 0.0


def test_mask_limits_the_voxels():
    r = np.array([[0.0, 0.5], [1.0, 9.0]])
    p = np.array([[0.1, 0.5], [1.0, -9.0]])
    mask = np.array([[True, True], [True, False]])
    assert M.rmse(r, p, mask) == pytest.approx(math.sqrt(0.01 / 3))
    assert M.psnr_peak(r, p, mask) == 1.0
    with pytest.raises(ValueError, match="empty"):
        M.rmse(r, p, np.zeros_like(mask))
    with pytest.raises(ValueError, match="shape"):
        M.rmse(r, p, mask[:1])


# -- linear fit, joint histogram, bias maps --------------------------------------------------------
def test_linear_fit_known_slope(rng):
    x = rng.random(1000)
    fit = M.linear_fit(x, 2.5 * x - 0.3)
    assert fit.slope == pytest.approx(2.5)
    assert fit.intercept == pytest.approx(-0.3)
    assert fit.r2 == pytest.approx(1.0)
    y = 0.9 * x + 0.05 + 0.05 * rng.standard_normal(1000)
    fit = M.linear_fit(x, y)
    ref = sps.linregress(x, y)
    assert fit.slope == pytest.approx(ref.slope, rel=1e-9)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-9)
    assert fit.r2 == pytest.approx(ref.rvalue ** 2, rel=1e-9)
    assert 0.8 < fit.r2 < 1.0


def test_linear_fit_pooled_equals_fit_of_all(rng):
    xs = [rng.random(n) for n in (50, 80, 120)]
    ys = [1.1 * x + 0.02 * rng.standard_normal(x.size) + k for k, x in enumerate(xs)]
    pooled = M.LinearFit.pooled(M.linear_fit(x, y) for x, y in zip(xs, ys))
    ref = sps.linregress(np.concatenate(xs), np.concatenate(ys))
    assert pooled.slope == pytest.approx(ref.slope, rel=1e-9)
    assert pooled.r2 == pytest.approx(ref.rvalue ** 2, rel=1e-9)


def test_joint_histogram_counts_and_clipping():
    r = np.array([0.05, 0.5, 0.95, 2.0, -1.0])
    p = np.array([0.05, 0.5, 0.95, 0.5, 0.5])
    h = M.joint_histogram(r, p, bins=10, value_range=(0.0, 1.0))
    assert h.shape == (10, 10) and h.sum() == 5
    assert h[0, 0] == 1 and h[9, 9] == 1 and h[9, 5] == 1 and h[0, 5] == 1 and h[5, 5] == 1


def test_relative_error_map_with_floor():
    r = np.array([0.5, 0.01, 0.2, 0.3])
    p = np.array([0.55, 0.02, 0.18, 0.9])
    mask = np.array([True, True, True, False])
    rel = M.relative_error_map(r, p, mask, floor=0.05)
    np.testing.assert_allclose(rel, [0.1, 0.01 / 0.05, -0.1, 0.0], rtol=1e-6)
    np.testing.assert_allclose(M.absolute_error_map(r, p, mask), [0.05, 0.01, -0.02, 0.0], rtol=1e-6)
    with pytest.raises(ValueError):
        M.relative_error_map(r, p, mask, floor=0.0)


def test_head_mask_fills_and_keeps_largest_component():
    zz, yy, xx = np.mgrid[:30, :40, :40]
    dist = np.sqrt((zz - 15) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2)
    shell = ((dist > 8) & (dist < 12)).astype(np.float32) * 0.5  # a hollow "skull"
    shell[2:4, 2:4, 2:4] = 0.5  # a separate speck
    mask = M.head_mask(shell, threshold=0.02)
    assert mask[15, 20, 20]  # the inside is filled
    assert not mask[2, 2, 2]  # the speck is dropped
    assert not mask[15, 20, 39]
    assert mask.sum() == pytest.approx(4 / 3 * math.pi * 12 ** 3, rel=0.1)
    assert not M.head_mask(np.zeros((5, 6, 7))).any()


def test_region_metrics_consistent(pair):
    a, b = pair
    mask = np.zeros(a.shape, bool)
    mask[3:17, 4:28, 4:24] = True
    rel = M.relative_error_map(a, b, mask, 0.05)
    out = M.region_metrics(a, b, mask, data_range=1.0, relative_error=rel, relative_valid=a >= 0.05)
    assert out["n_voxels"] == mask.sum()
    assert out["rmse"] == pytest.approx(M.rmse(a, b, mask))
    assert out["ssim_3d"] == pytest.approx(M.ssim(a, b, mask, 1.0, "3d"), abs=1e-7)
    assert out["ssim_2d"] == pytest.approx(M.ssim(a, b, mask, 1.0, "2d"), abs=1e-7)
    assert out["ssim_global"] == pytest.approx(M.ssim_global(a, b, mask))
    valid = mask & (a >= 0.05)
    assert out["mean_rel_error_pct"] == pytest.approx(100 * rel[valid].mean(), rel=1e-5)


# -- statistics --------------------------------------------------------------------------------------
def test_paired_t_test_matches_scipy(rng):
    a = rng.normal(0.3, 0.05, 10)
    b = a - 0.05 + rng.normal(0, 0.02, 10)
    ours = S.paired_t_test(a, b)
    ref = sps.ttest_rel(b, a)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-10)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-8)
    assert ours.df == 9 and ours.n == 10
    assert ours.significant == (ref.pvalue < 0.05)
    # no difference at all
    same = S.paired_t_test(a, a)
    assert same.t == 0 and same.p == 1 and not same.significant
    # pairs with NaN are dropped
    a2 = np.append(a, np.nan)
    b2 = np.append(b, 1.0)
    assert S.paired_t_test(a2, b2).p == pytest.approx(ref.pvalue, rel=1e-8)
    assert math.isnan(S.paired_t_test([1.0], [2.0]).p)


def test_relative_improvement_as_in_the_abstract():
    # LD->FD, PR -> PM2: RMSE 0.28 -> 0.20 is 29 %, SSIM 0.86 -> 0.93 is 8 %
    assert S.relative_improvement(0.28, 0.20, "rmse") == pytest.approx(28.57, abs=0.01)
    assert round(S.relative_improvement(0.86, 0.93, "ssim_global")) == 8
    assert S.relative_improvement(20.0, 25.0, "psnr") == pytest.approx(25.0)
    assert math.isnan(S.relative_improvement(0.0, 1.0, "rmse"))


def test_summarize_and_compare():
    s = S.summarize([1.0, 2.0, 3.0, float("nan")])
    assert (s.mean, s.n) == (2.0, 3)
    assert s.sd == pytest.approx(np.std([1, 2, 3], ddof=1))
    assert s.format(2) == "2.00 ± 1.00"
    rows_a = [{"patient": p, "rmse": v} for p, v in zip("abcd", (0.3, 0.4, 0.35, 0.5))]
    rows_b = [{"patient": p, "rmse": v} for p, v in zip("bcde", (0.3, 0.3, 0.4, 0.1))]
    test, imp = S.compare(rows_a, rows_b, "rmse")
    assert test.n == 3  # b, c, d only
    assert test.mean_a == pytest.approx((0.4 + 0.35 + 0.5) / 3)
    assert imp == pytest.approx(100 * (test.mean_a - test.mean_b) / test.mean_a)


def test_pairs():
    assert S.default_pairs(["PU", "PR", "PM2"]) == [("PU", "PR"), ("PR", "PM2"), ("PU", "PM2")]
    assert S.default_pairs(["a", "b", "c"]) == [("a", "b"), ("b", "c")]
    assert S.parse_pairs("PU:PR, PM1:PM2") == [("PU", "PR"), ("PM1", "PM2")]
    assert S.parse_pairs("") is None
    with pytest.raises(Exception, match="A:B"):
        S.parse_pairs("PUPR")
