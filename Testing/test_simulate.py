"""Tests of the digital cohort (``robustdeep simulate``), on the tiny profile.

One tiny cohort of two subjects is simulated once per session (in this process) and shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory, need_assets):
    from RobustDeepLogic.simulate.cohort import simulate_cohort

    out = tmp_path_factory.mktemp("sim") / "cohort"
    return simulate_cohort(out, subjects=2, seed=7, profile="tiny", workers=1)


def _array(cohort, pid, modality):
    return sitk.GetArrayFromImage(cohort.read(pid, modality))


def _labels(cohort, patient, which="labels_pet"):
    return sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.root / patient.meta["truth"][which])))


# -- physics units (no assets) -----------------------------------------------------------------------
def test_projector_is_adjoint_of_backprojector():
    from RobustDeepLogic.simulate.pet_physics import ParallelProjector

    proj = ParallelProjector(40, 36, (3.0, 3.0), 30, 55.0, n_subsets=4)
    rng = np.random.default_rng(0)
    x = rng.random((proj.n_pixels, 3)).astype(np.float32)
    y = rng.random((30, proj.n_bins, 3)).astype(np.float32)
    lhs = float((proj.forward(x).astype(np.float64) * y).sum())
    rhs = float((x.astype(np.float64) * proj.back(y)).sum())
    assert lhs == pytest.approx(rhs, rel=1e-5)
    # line integral of a uniform disc through its centre is its diameter (path lengths in mm)
    ones = proj.to_support(np.ones((1, 36, 40), np.float32))
    assert proj.forward(ones)[0, :, 0].max() == pytest.approx(2 * proj.support_radius_mm, rel=0.08)


def test_binomial_thinning_statistics():
    from RobustDeepLogic.simulate.pet_physics import thin_counts

    rng = np.random.default_rng(3)
    fd = np.full(200_000, 400.0, np.float32)
    ld = thin_counts(fd, 0.05, rng)
    n, p = fd.sum(), 0.05
    assert abs(ld.sum() - n * p) < 5 * np.sqrt(n * p * (1 - p))
    assert ld.var() == pytest.approx(400 * p * (1 - p), rel=0.05)  # binomial, not Poisson-from-mean
    assert np.all(ld <= fd) and np.all(ld == np.round(ld))


def test_osem_recovers_contrast_of_a_phantom():
    from RobustDeepLogic.simulate.pet_physics import ParallelProjector, blur_sinogram, psf_sigmas
    from RobustDeepLogic.simulate.osem import osem

    proj = ParallelProjector(48, 48, (2.5, 2.5), 60, 58.0, n_subsets=6)
    yy, xx = np.mgrid[:48, :48] - 23.5
    r = np.hypot(xx, yy) * 2.5
    phantom = np.where(r < 50, 1.0, 0.0) + np.where((r > 20) & (r < 32), 3.0, 0.0)  # ring 4 : 1
    x_true = proj.to_support(np.repeat(phantom[None].astype(np.float32), 4, axis=0))
    sig = psf_sigmas((4.0, 4.0), proj.bin_mm, 2.5)
    ybar = 50.0 * blur_sinogram(proj.forward(x_true), sig) + 1.0
    rec = osem(proj, ybar.astype(np.float32), eta=50.0, attenuation=None,
               background=np.ones_like(ybar), iterations=5, psf_sigmas_bins=sig)
    img = proj.to_volume(rec)[2]
    ratio = img[(r > 23) & (r < 29)].mean() / img[r < 12].mean()
    assert 3.3 < ratio < 4.5


def test_mr_signal_contrasts_and_ct_to_mu():
    from RobustDeepLogic.simulate.ct import mu_from_ct
    from RobustDeepLogic.simulate.mr import tissue_signals

    t1, t2 = tissue_signals("T1"), tissue_signals("T2")
    assert t1["wm"] > t1["gm"] > t1["csf"]
    assert t2["csf"] > t2["gm"] > t2["wm"]
    assert t1["fat"] > t1["wm"]
    mu = mu_from_ct(np.array([-1000.0, 0.0, 1000.0]))
    assert mu[0] == pytest.approx(0.0, abs=1e-7)
    assert mu[1] == pytest.approx(0.0096, rel=1e-4)
    assert mu[2] == pytest.approx(0.0147, rel=1e-3)


def test_pose_convention_matches_itk():
    from RobustDeepLogic.simulate.pose import Pose, true_transform

    pose = Pose((10.0, -5.0, 12.0), (4.0, -7.0, 15.0))
    tr = true_transform({"pose_petct": pose.to_meta()}, "FD")
    p = np.array([11.0, -20.0, 33.0])
    expected = pose.native_from_template() @ np.append(p, 1.0)
    assert np.allclose(tr.TransformPoint(tuple(p)), expected[:3], atol=1e-9)
    back = pose.template_from_native() @ expected
    assert np.allclose(back[:3], p, atol=1e-9)
    with pytest.raises(InputError):
        true_transform({}, "mr")


# -- the cohort -------------------------------------------------------------------------------------
@pytest.mark.assets
def test_cohort_geometry_units_and_manifest(tiny_cohort):
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.simulate.profiles import get_profile

    prof = get_profile("tiny")
    cohort = Cohort.load(tiny_cohort.root)
    assert cohort.ids == ["SIM001", "SIM002"] and cohort.space == "native"
    assert cohort.units["FD"] == "SUV" and cohort.units["CT"] == "HU" and cohort.units["T1"] == "a.u."
    p = cohort.patient("SIM001")
    assert set(p.modalities) == {"FD", "LD", "NAC", "MAC", "CT", "T1", "T2"}
    assert p.split is None and p.fold is None
    for mod, size, spacing in (("FD", prof.pet_size, prof.pet_spacing), ("CT", prof.ct_size, prof.ct_spacing),
                               ("T1", prof.mr_size, prof.mr_spacing)):
        img = cohort.read(p, mod)
        assert img.GetSize() == size
        assert np.allclose(img.GetSpacing(), spacing)
        assert np.allclose(img.GetDirection(), np.eye(3).ravel())
        centre = img.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in size])
        assert np.allclose(centre, p.meta["pose_petct"]["center_mm"], atol=1e-3)
    for mod in ("FD", "LD", "NAC", "MAC"):
        assert cohort.read(p, mod).GetSize() == prof.pet_size
    ct = _array(cohort, p.id, "CT")
    labels_ct = _labels(cohort, p, "labels_ct")
    assert np.median(ct[labels_ct == 7]) == pytest.approx(-1000, abs=30)  # air
    assert np.median(ct[labels_ct == 4]) > 700  # cortical bone
    fd = _array(cohort, p.id, "FD")
    assert fd.min() >= 0
    labels = _labels(cohort, p)
    gm_mean = fd[labels == 1].mean()
    assert 3.0 < gm_mean < 15.0  # SUV
    assert gm_mean > 1.2 * fd[labels == 2].mean()
    for key in ("weight_kg", "injected_dose_bq", "injection_datetime", "scan_start_datetime"):
        assert key in p.meta
    assert json.loads((cohort.root / "manifest.json").read_text())["meta"]["simulation"]["seed"] == 7


@pytest.mark.assets
def test_determinism_by_seed(tiny_cohort, tmp_path):
    from RobustDeepLogic.simulate.profiles import get_profile
    from RobustDeepLogic.simulate.cohort import simulate_subject

    again = simulate_subject(1, 7, get_profile("tiny"), tmp_path, write_dicom=False)
    for mod in ("FD", "LD", "CT", "T1"):
        a = _array(tiny_cohort, "SIM002", mod)
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / again["modalities"][mod])))
        assert np.array_equal(a, b), mod
    assert again["meta"]["pose_mr"] == tiny_cohort.patient("SIM002").meta["pose_mr"]
    other = simulate_subject(1, 8, get_profile("tiny"), tmp_path / "other", write_dicom=False)
    assert other["meta"]["pose_petct"] != again["meta"]["pose_petct"]


@pytest.mark.assets
def test_ld_is_five_percent_of_fd_counts(tiny_cohort):
    for p in tiny_cohort.patients:
        pet = p.meta["pet"]
        n, q = pet["prompts_fd"], 0.05
        assert abs(pet["prompts_ld"] - q * n) < 5 * np.sqrt(n * q * (1 - q))
        assert 2e8 < pet["prompts_fd"] < 4e8
    fd, ld = _array(tiny_cohort, "SIM001", "FD"), _array(tiny_cohort, "SIM001", "LD")
    brain = np.isin(_labels(tiny_cohort, tiny_cohort.patients[0]), (1, 2))
    assert ld[brain].mean() == pytest.approx(fd[brain].mean(), rel=0.1)  # same SUV scale
    noise = (ld - fd)[brain].std() / fd[brain].mean()
    print("relative LD - FD noise", noise)
    assert noise > 0.03  # LD noisier (FD's own noise is sqrt(0.05) of LD's)


@pytest.mark.assets
def test_nac_rim_over_centre_under_estimation(tiny_cohort):
    from scipy import ndimage

    p = tiny_cohort.patients[0]
    nac, mac = _array(tiny_cohort, p.id, "NAC"), _array(tiny_cohort, p.id, "MAC")
    labels = _labels(tiny_cohort, p)
    head = ndimage.binary_fill_holes(labels != 7) & (mac > 0.3)
    depth = ndimage.distance_transform_edt(head)
    ratio = nac / np.maximum(mac, 1e-3)
    rim = head & (depth <= 2)
    centre = head & (depth >= np.percentile(depth[head], 90))
    assert ratio[rim].mean() > 1.3 * ratio[centre].mean()
    assert nac[centre].mean() < mac[centre].mean()


@pytest.mark.assets
def test_true_transform_registers_native_mr_to_template(tiny_cohort):
    from RobustDeepLogic.simulate.pose import true_transform
    from RobustDeepLogic.simulate.anatomy import template_anatomy

    p = tiny_cohort.patients[1]
    template = template_anatomy(3.0)
    ref = template.reference_image()
    gm_template = template.maps["gm"]
    labels = sitk.ReadImage(str(tiny_cohort.root / p.meta["truth"]["labels_mr"]))
    gm_native = sitk.Cast(labels == 1, sitk.sitkFloat32)

    def overlap(transform):
        moved = sitk.GetArrayFromImage(sitk.Resample(gm_native, ref, transform, sitk.sitkLinear, 0.0))
        return float(np.corrcoef(moved.ravel(), gm_template.ravel())[0, 1])

    truth = overlap(true_transform(p, "mr"))
    assert truth > 0.5
    assert truth > overlap(sitk.Euler3DTransform()) + 0.1
    assert truth > overlap(true_transform(p, "petct").GetInverse()) + 0.1


@pytest.mark.assets
def test_resume_skips_complete_subjects_and_refuses_other_seed(tiny_cohort):
    from RobustDeepLogic.simulate.cohort import simulate_cohort

    fd = tiny_cohort.path("SIM001", "FD")
    before = fd.stat().st_mtime_ns
    again = simulate_cohort(tiny_cohort.root, subjects=2, seed=7, profile="tiny", workers=1)
    assert fd.stat().st_mtime_ns == before and len(again) == 2
    with pytest.raises(InputError, match="different cohort"):
        simulate_cohort(tiny_cohort.root, subjects=2, seed=8, profile="tiny", workers=1)


@pytest.mark.assets
def test_dicom_series_gives_back_the_suv(tiny_cohort):
    from RobustDeepLogic.io.units import suv_from_dicom

    p = tiny_cohort.patient("SIM001")
    assert "FD" in p.meta["dicom"]
    suv, _ = suv_from_dicom(tiny_cohort.root / p.meta["dicom"]["FD"])
    fd = _array(tiny_cohort, p.id, "FD")
    got = sitk.GetArrayFromImage(suv)
    assert got.shape == fd.shape
    assert np.abs(got - fd).max() < 1e-3 * fd.max() + 1e-3


def test_missing_assets_give_a_clear_error(tmp_path, monkeypatch):
    from RobustDeepLogic.cli.main import run_command
    from RobustDeepLogic.simulate.cohort import simulate_cohort

    empty = tmp_path / "no-assets"
    empty.mkdir()
    monkeypatch.setenv("ROBUSTDEEP_ASSETS", str(empty))
    with pytest.raises(InputError) as info:
        simulate_cohort(tmp_path / "out", subjects=1, profile="tiny", workers=1)
    assert "robustdeep assets" in str(info.value)
    status = run_command(["simulate", str(tmp_path / "out2"), "--profile", "tiny", "--subjects", "1",
                          "--progress", "none"])
    assert status == 2


def _small_problem():
    from RobustDeepLogic.simulate.pet_physics import ParallelProjector, blur_sinogram, psf_sigmas

    proj = ParallelProjector(32, 32, (3.0, 3.0), 24, 45.0, n_subsets=4)
    yy, xx = np.mgrid[:32, :32] - 15.5
    phantom = (np.hypot(xx, yy) * 3.0 < 40).astype(np.float32) * (1.0 + (xx > 0))
    x_true = proj.to_support(np.repeat(phantom[None], 3, axis=0))
    sig = psf_sigmas((4.0, 4.0), proj.bin_mm, 3.0)
    att = np.exp(-0.3 * np.random.default_rng(0).random((24, proj.n_bins, 3))).astype(np.float32)
    ybar = 20.0 * att * blur_sinogram(proj.forward(x_true), sig) + 0.5
    prompts = np.random.default_rng(1).poisson(ybar).astype(np.float32)
    return proj, prompts, att, np.full_like(ybar, 0.5), sig


def test_torch_osem_matches_numpy_osem_on_cpu():
    from RobustDeepLogic.simulate.osem import _osem_torch, osem

    proj, prompts, att, bg, sig = _small_problem()
    ref = osem(proj, prompts, eta=20.0, attenuation=att, background=bg, iterations=3, psf_sigmas_bins=sig)
    got = _osem_torch(proj, prompts, eta=20.0, attenuation=att, background=bg, iterations=3,
                      psf_sigmas_bins=sig, device="cpu")
    assert np.allclose(got, ref, rtol=2e-3, atol=2e-3 * ref.max())


@pytest.mark.gpu
def test_osem_on_cuda_matches_cpu():
    from RobustDeepLogic.simulate.osem import osem

    proj, prompts, att, bg, sig = _small_problem()
    ref = osem(proj, prompts, eta=20.0, attenuation=att, background=bg, iterations=3, psf_sigmas_bins=sig)
    got = osem(proj, prompts, eta=20.0, attenuation=att, background=bg, iterations=3, psf_sigmas_bins=sig,
               device="cuda")
    assert np.allclose(got, ref, rtol=5e-3, atol=5e-3 * ref.max())


@pytest.mark.slow
@pytest.mark.assets
def test_quick_profile_subject_recovers_contrast(tmp_path, need_assets):
    from RobustDeepLogic.simulate.profiles import get_profile
    from RobustDeepLogic.simulate.cohort import simulate_subject

    entry = simulate_subject(0, 0, get_profile("quick"), tmp_path, write_dicom=False)
    pet = entry["meta"]["pet"]
    assert 1.7 < pet["gm_wm_fd"] < pet["gm_wm_truth"] + 0.2
    assert abs(pet["prompts_ld"] / pet["prompts_fd"] - 0.05) < 1e-3


def test_rigid_part_of_an_anatomy_is_the_least_squares_rigid_fit():
    from RobustDeepLogic.simulate.subject_anatomy import SubjectAnatomy, rigid_part
    from RobustDeepLogic.simulate.pose import HEAD_CENTRE_LPS

    rng = np.random.default_rng(0)
    points = rng.uniform(-60, 60, (4000, 3)) + np.array([0.0, 18.0, 30.0])  # centroid 20 mm above
    subject = SubjectAnatomy(head_scale=(1.05, 1.05, 1.05), warp_rms_mm=0.0, warp_seed=1,
                             ventricle_expansion=0.0, cortical_thinning=0.0, bone_threshold=0.4,
                             diploe_threshold=0.7, fat_fraction=0.3)
    a, b = rigid_part(subject, points)
    np.testing.assert_allclose(a, np.eye(3), atol=1e-6)
    c = np.asarray(HEAD_CENTRE_LPS)
    np.testing.assert_allclose(b, (points.mean(axis=0) - c) * (1 - 1 / 1.05), atol=1e-3)
    warped = SubjectAnatomy(**{**subject.__dict__, "_warp": None, "warp_rms_mm": 3.0})
    a, b = rigid_part(warped, points)
    q = warped.deform(points.astype(np.float32)).astype(float)
    best = np.mean(np.sum((q @ a.T + b - points) ** 2, axis=1))
    for da in (np.array([[0, -0.01, 0], [0.01, 0, 0], [0, 0, 0]]), np.zeros((3, 3))):
        for db in (np.zeros(3), np.array([0.2, 0.0, -0.2])):
            if not da.any() and not db.any():
                continue
            assert np.mean(np.sum((q @ (a + da).T + b + db - points) ** 2, axis=1)) > best


@pytest.mark.assets
def test_best_rigid_truth_is_stored_and_reproducible(tiny_cohort):
    from RobustDeepLogic.simulate.truth import best_rigid_transform
    from RobustDeepLogic.simulate.pose import true_transform
    from RobustDeepLogic.simulate.truth import anatomy_rigid_part

    patient = tiny_cohort.patients[0]
    part = patient.meta["anatomy_rigid_part"]
    a, b = anatomy_rigid_part(patient.meta["seed"], patient.meta["index"])
    np.testing.assert_allclose(part["matrix"], a, atol=1e-9)
    np.testing.assert_allclose(part["translation_mm"], b, atol=1e-9)
    best, pose = best_rigid_transform(patient, "petct"), true_transform(patient, "petct")
    q = (10.0, -20.0, 30.0)
    h = np.asarray(a) @ np.asarray(q) + np.asarray(b)
    np.testing.assert_allclose(best.TransformPoint(q), pose.TransformPoint(tuple(h)), atol=1e-6)


@pytest.mark.assets
def test_resume_removes_what_interrupted_atomic_writes_left(tiny_cohort):
    """Issue 15 #18: a killed `simulate` left a .tmp file in the cohort that the resume never removed."""
    import tempfile

    from RobustDeepLogic.cohort.check import check_cohort
    from RobustDeepLogic.core.files import atomic_path
    from RobustDeepLogic.simulate.cohort import simulate_cohort

    root = tiny_cohort.root
    # A process killed inside atomic_path's block: its temporary file stays (the block never ends).
    killed = atomic_path(root / "SIM002" / "LD.nii.gz")
    stale = killed.__enter__()
    stale.write_bytes(b"half a volume")
    killed_manifest = atomic_path(root / "manifest.json")
    stale_manifest = killed_manifest.__enter__()
    # ... and one killed while staging the DICOM series (tempfile's naming, as simulate_subject uses).
    staging = Path(tempfile.mkdtemp(prefix=".FD.", dir=root / "SIM001" / "dicom"))
    (staging / "FD").mkdir()
    (root / "SIM002" / "LD.nii.gz").unlink()  # the subject whose write was cut short
    kept = root / "SIM001" / ".keep.me"  # hidden, but not a name an atomic write gives
    kept.write_text("user's")
    again = simulate_cohort(root, subjects=2, seed=7, profile="tiny", workers=1)
    assert not stale.exists() and not stale_manifest.exists() and not staging.exists()
    assert kept.exists()
    left = [p for p in root.rglob(".*") if p != kept]
    assert left == []
    assert [p.id for p in again] == ["SIM001", "SIM002"] and check_cohort(again) == []
    assert all(p.meta.get("complete") and len(p.modalities) == 7 for p in again)
    kept.unlink()
