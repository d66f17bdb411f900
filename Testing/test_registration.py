"""Tests of rigid registration to template space (RobustDeepLogic.registration, .qc) and of
``robustdeep register``.

Known poses are made from the template anatomy (RobustDeepLogic.qc.known_pose_case) on a coarse
4 mm template grid so that the default suite stays fast; the 2 mm figures are in
benchmarks/bench_registration.py.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from RobustDeepLogic import registration as Q
from RobustDeepLogic import registration as R
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.volumes import Grid

SPACING = 4.0


@pytest.fixture(scope="module")
def template4(need_assets):
    return R.TemplateSpace.default(SPACING)


@pytest.fixture(scope="module")
def brain_points(template4):
    return Q.mask_points(template4.brain_mask)


def _case(petct_pose, mr_pose=((0, 0, 0), (0, 0, 0)), modalities=("FD",), seed=0, anatomy="tpm"):
    return Q.known_pose_case(petct_pose=petct_pose, mr_pose=mr_pose, modalities=modalities,
                             spacing=SPACING, pet_spacing=(SPACING,) * 3,
                             ct_spacing=(SPACING / 2, SPACING / 2, SPACING),
                             mr_spacing=(SPACING / 2, SPACING / 2, SPACING), seed=seed,
                             anatomy=anatomy)


@pytest.fixture(scope="module")
def case_a(need_assets):
    return _case(((12.0, -10.0, 8.0), (15.0, -12.0, 10.0)), ((-12.0, 9.0, 6.0), (-10.0, 15.0, 8.0)),
                 modalities=("FD", "LD", "CT", "T1"), seed=1)


def _blob_image(grid: Grid, seed: int = 0) -> sitk.Image:
    """A smooth asymmetric test object (three Gaussians of different sizes) on ``grid``."""
    img = sitk.Image([int(s) for s in grid.size], sitk.sitkFloat32)
    grid.apply_to(img)
    idx = np.indices(grid.shape).reshape(3, -1).T[:, ::-1].astype(float)
    d = np.asarray(grid.direction).reshape(3, 3)
    pts = np.asarray(grid.origin) + (idx * np.asarray(grid.spacing)) @ d.T
    arr = np.zeros(len(pts))
    for centre, width, height in (((0, 0, 0), 30.0, 1.0), ((25, -10, 15), 10.0, 2.0),
                                  ((-15, 20, -10), 7.0, 1.5)):
        arr += height * np.exp(-np.sum((pts - centre) ** 2, axis=1) / (2 * width**2))
    out = sitk.GetImageFromArray(arr.reshape(grid.shape).astype(np.float32))
    grid.apply_to(out)
    return out


# ------------------------------------------------------------------------------ configuration --
def test_brainsfit_parameters_mirror_the_config():
    config = R.RigidConfig(sampling_percentage=0.05, number_of_histogram_bins=64,
                           initialize_transform_mode="useCenterOfHeadAlign", cost_metric="NC",
                           number_of_iterations=300, minimum_step_length=0.005,
                           relaxation_factor=0.6, mask_processing_mode="ROI", number_of_threads=2)
    p = R.brainsfit_parameters(config, fixed_volume="fixed.nrrd", moving_volume="moving.nrrd",
                               linear_transform=Path("t.h5"), fixed_mask="head.nrrd")
    assert p["useRigid"] is True and p["useAffine"] is False and p["useBSpline"] is False
    assert p["samplingPercentage"] == 0.05 and p["numberOfHistogramBins"] == 64
    assert p["initializeTransformMode"] == "useCenterOfHeadAlign" and p["costMetric"] == "NC"
    assert p["numberOfIterations"] == 300 and p["minimumStepLength"] == 0.005
    assert p["relaxationFactor"] == 0.6 and p["maskProcessingMode"] == "ROI"
    assert p["fixedBinaryVolume"] == "head.nrrd" and p["linearTransform"] == "t.h5"
    assert p["fixedVolume"] == "fixed.nrrd" and p["movingVolume"] == "moving.nrrd"
    assert p["numberOfThreads"] == 2
    default = R.brainsfit_parameters()
    assert default["initializeTransformMode"] == "useMomentsAlign"
    assert default["costMetric"] == "MMI" and default["numberOfThreads"] == -1
    assert "fixedVolume" not in default and default["maskProcessingMode"] == "ROIAUTO"
    for mode in R.INIT_MODES:
        assert R.brainsfit_parameters(R.RigidConfig(initialize_transform_mode=mode))[
            "initializeTransformMode"] == mode


@pytest.mark.parametrize("bad", [
    {"cost_metric": "MI"}, {"initialize_transform_mode": "useMoments"},
    {"sampling_percentage": 0.0}, {"sampling_percentage": 1.5}, {"number_of_histogram_bins": 2},
    {"minimum_step_length": 5.0}, {"relaxation_factor": 1.0}, {"mask_processing_mode": "AUTO"},
    {"shrink_factors": (4, 2), "smoothing_sigmas": (1.0,)}, {"rotation_search_deg": -1.0},
    {"brain_refinement": "affine"},
])
def test_bad_registration_options_are_input_errors(bad):
    with pytest.raises(InputError):
        R.RigidConfig(**bad).validate()


def test_config_from_mapping_ignores_other_keys_and_converts_lists():
    config = R.RigidConfig.from_mapping({"sampling_percentage": 0.1, "shrink_factors": [2, 1],
                                         "smoothing_sigmas": [1, 0], "workers": 3, "seed": None})
    assert config.shrink_factors == (2, 1) and config.sampling_percentage == 0.1
    assert config.seed == R.RigidConfig().seed


# ---------------------------------------------------------------------------------- transforms --
def test_rigid_helpers_compose_and_decompose():
    t1 = R.rigid_transform((10, -5, 20), (3, 4, -5), center=(10, 20, 30))
    t2 = R.rigid_transform((-7, 12, 3), (-20, 1, 8), center=(-5, 0, 5))
    p = [12.0, -34.0, 56.0]
    composed = R.compose_rigid(t2, t1)
    assert np.allclose(composed.TransformPoint(p), t2.TransformPoint(t1.TransformPoint(p)), atol=1e-9)
    a, b = R.affine_parts(t1)
    assert np.allclose(a @ a.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(a), 1.0)
    assert np.allclose(a @ np.asarray(p) + b, t1.TransformPoint(p))
    params = R.transform_parameters(R.rigid_transform((30, 0, 0)))
    assert math.isclose(params["rotation_deg"], 30.0, abs_tol=1e-6)


def test_closest_rigid_of_a_rigid_is_itself_and_of_a_scaling_keeps_the_centroid():
    rng = np.random.default_rng(0)
    points = rng.normal([0.0, 20.0, 10.0], 40.0, size=(500, 3))
    rigid = R.rigid_transform((10, -5, 20), (3, 4, -5), center=(10, 20, 30))
    again = R.closest_rigid(rigid, points)
    assert np.allclose(R.affine_parts(again)[0], R.affine_parts(rigid)[0], atol=1e-9)
    assert np.allclose(R.affine_parts(again)[1], R.affine_parts(rigid)[1], atol=1e-6)
    assert np.allclose(again.GetCenter(), rigid.GetCenter())
    # rigid o (scaling by 1.1 about a point 30 mm from the points' centroid): the closest rigid map
    # has the rigid part's rotation and takes the centroid where the scaled map takes it
    sim = sitk.Similarity3DTransform()
    sim.SetCenter((0.0, 20.0, 40.0))
    sim.SetMatrix(rigid.GetMatrix())
    sim.SetTranslation((5.0, -3.0, 2.0))
    sim.SetScale(1.1)
    closest = R.closest_rigid(sim, points, center=(1.0, 2.0, 3.0))
    a, _ = R.affine_parts(closest)
    assert np.allclose(a, R.affine_parts(rigid)[0], atol=1e-9)
    centroid = points.mean(axis=0)
    assert np.allclose(closest.TransformPoint(centroid.tolist()), sim.TransformPoint(centroid.tolist()),
                       atol=1e-6)
    assert np.allclose(closest.GetCenter(), (1.0, 2.0, 3.0))


def test_transform_convention_resample_native_onto_template(tmp_path):
    """A native image made by moving template content through T^-1 comes back with
    sitk.Resample(native, template_grid, T): T maps template points to native points."""
    template_grid = Grid((40, 44, 40), (4.0, 4.0, 4.0), (78.0, 86.0, -78.0),
                         (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    truth = _blob_image(template_grid)
    true_tx = R.rigid_transform((8.0, -6.0, 12.0), (5.0, -7.0, 300.0), center=(0.0, 0.0, 0.0))
    native_grid = Q.native_grid(true_tx.TransformPoint((0.0, 0.0, 0.0)), (2.0, 2.0, 2.5),
                                (220, 220, 220))
    native_ref = sitk.Image([int(s) for s in native_grid.size], sitk.sitkFloat32)
    native_grid.apply_to(native_ref)
    native = sitk.Resample(truth, native_ref, true_tx.GetInverse(), sitk.sitkLinear, 0.0)
    back = R.resample_to_template(native, true_tx, template_grid)
    assert Grid.of(back).matches(template_grid)
    inner = np.s_[8:-8, 8:-8, 8:-8]
    err = np.abs(sitk.GetArrayFromImage(back) - sitk.GetArrayFromImage(truth))[inner]
    assert err.max() < 0.05 * float(sitk.GetArrayFromImage(truth).max())
    # the same through transform files (.tfm text and .h5): identical parameters and image
    for name in ("t.tfm", "t.h5"):
        path = R.write_transform(true_tx, tmp_path / name)
        loaded = R.read_transform(path)
        p = [10.0, -20.0, 30.0]
        assert np.allclose(loaded.TransformPoint(p), true_tx.TransformPoint(p), atol=1e-9)
        again = R.resample_to_template(native, loaded, template_grid)
        assert np.array_equal(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(back))
    text = (tmp_path / "t.tfm").read_text()
    assert "VersorRigid3DTransform_double_3_3" in text  # a type Slicer and BRAINSFit read
    with pytest.raises(InputError):
        R.write_transform(true_tx, tmp_path / "t.json")
    (tmp_path / "junk.tfm").write_text("not a transform")
    with pytest.raises(InputError):
        R.read_transform(tmp_path / "junk.tfm")


def test_label_resampling_is_nearest_neighbour():
    grid = Grid((20, 20, 20), (2.0, 2.0, 2.0), (-19.0, -19.0, -19.0))
    labels = np.zeros(grid.shape, np.uint8)
    labels[5:15, 5:15, 5:15] = 3
    img = grid.apply_to(sitk.GetImageFromArray(labels))
    tx = R.rigid_transform((0, 0, 17.0), (1.3, 0.0, 0.0))
    out = R.resample_to_template(img, tx, Grid((13, 13, 13), (3.0, 3.0, 3.0), (-18.0, -18.0, -18.0)),
                                 label=True)
    assert out.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 3}


# ------------------------------------------------------------------------------- bad input --
def _grid_image(arr, spacing=4.0):
    img = sitk.GetImageFromArray(np.asarray(arr, np.float32))
    img.SetSpacing((spacing,) * 3)
    return img


def test_check_image_rejects_empty_nonfinite_and_wrong_modality():
    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match="empty"):
        R.check_image(_grid_image(np.zeros((20, 20, 20))), modality="FD", patient="P1")
    nan = rng.random((20, 20, 20))
    nan[3, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        R.check_image(_grid_image(nan), modality="FD")
    ct_like = np.full((20, 20, 20), -1000.0)
    ct_like[5:15, 5:15, 5:15] = 40.0
    with pytest.raises(InputError, match="looks like a CT") as info:
        R.check_image(_grid_image(ct_like), modality="FD", patient="P7", file="P7/FD.nii.gz")
    assert info.value.patient == "P7" and info.value.file == "P7/FD.nii.gz" and info.value.hint
    pet_like = rng.random((20, 20, 20)) * 5
    with pytest.raises(InputError, match="HU"):
        R.check_image(_grid_image(pet_like), modality="CT")
    with pytest.raises(InputError, match="too small"):
        R.check_image(_grid_image(rng.random((2, 20, 20))), modality="T1")
    R.check_image(_grid_image(ct_like), modality="CT")  # a CT passes as CT
    R.check_image(_grid_image(pet_like), modality="T1")


def test_images_that_do_not_overlap_are_an_input_error():
    grid = Grid((30, 30, 30), (4.0, 4.0, 4.0), (-58.0, -58.0, -58.0))
    fixed = _blob_image(grid)
    far = Grid(grid.size, grid.spacing, (2000.0, -58.0, -58.0))
    moving = _blob_image(Grid(grid.size, grid.spacing, grid.origin))
    far.apply_to(moving)
    config = R.RigidConfig(initialize_transform_mode="Off", mask_processing_mode="NOMASK",
                           shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0), rotation_search_deg=0)
    with pytest.raises(InputError, match="do not overlap"):
        R.register_rigid(fixed, moving, config, patient="P3")
    # the same images are fine once initialised by their content (scanner coordinates differ)
    config.initialize_transform_mode = "useMomentsAlign"
    result = R.register_rigid(fixed, moving, config)
    assert abs(R.affine_parts(result.transform)[1][0] - 2058.0) < 2.0


def _small_pair():
    """A blob (fixed) and the same blob resampled through a 30-degree turn about LPS x (moving),
    4 mm voxels: the registration's rotation is -30 degrees about x."""
    grid = Grid((30, 30, 30), (4.0, 4.0, 4.0), (-58.0, -58.0, -58.0))
    fixed = _blob_image(grid)
    turn = R.rigid_transform((30.0, 0.0, 0.0))
    moving = sitk.Resample(fixed, fixed, turn, sitk.sitkLinear, 0.0)
    return fixed, moving


_SMALL = dict(mask_processing_mode="NOMASK", shrink_factors=(2, 1), smoothing_sigmas=(1.0, 0.0),
              brain_refinement="off", sampling_percentage=1.0)


def test_roi_mode_without_a_fixed_mask_is_an_input_error():
    fixed, moving = _small_pair()
    config = R.RigidConfig(**{**_SMALL, "mask_processing_mode": "ROI"})
    with pytest.raises(InputError, match="mask_processing_mode 'ROI' needs a fixed mask") as info:
        R.register_rigid(fixed, moving, config, patient="P7", moving_name="FD")
    assert info.value.patient == "P7" and "ROIAUTO" in str(info.value.hint)
    empty = sitk.Image(fixed.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(fixed)
    with pytest.raises(InputError, match="no voxel inside the fixed image"):
        R.register_rigid(fixed, moving, config, fixed_mask=empty, patient="P7")


def test_rotation_search_evaluates_the_other_candidates_when_itk_stops_at_one(monkeypatch):
    """ITK's exhaustive optimizer stops at the first candidate it cannot evaluate: the search then
    scores the candidates one by one and still finds the 30-degree turn."""
    from RobustDeepLogic.registration import search

    fixed, moving = _small_pair()
    config = R.RigidConfig(**_SMALL)
    plain = R.register_rigid(fixed, moving, config)
    assert plain.rotation_search == "done"
    assert np.allclose(plain.initial_rotation_deg, (-30.0, 0.0, 0.0), atol=1e-6)

    def itk_stops(*args, **kwargs):
        raise RuntimeError("ITK ERROR: All samples map outside moving image buffer")

    one_by_one = search._candidate_value
    monkeypatch.setattr(search, "_exhaustive_values", itk_stops)
    monkeypatch.setattr(search, "_candidate_value", lambda f, m, init, params, config: (
        itk_stops() if params[0] > 0.1 else one_by_one(f, m, init, params, config)))
    result = R.register_rigid(fixed, moving, config)
    assert np.allclose(result.initial_rotation_deg, (-30.0, 0.0, 0.0), atol=1e-6)
    assert result.rotation_search == "done (50 of 125 candidates could not be evaluated)"


def test_a_rotation_search_whose_every_candidate_fails_is_recorded_and_flagged(monkeypatch, tmp_path):
    from RobustDeepLogic.registration import search

    def itk_fails(*args, **kwargs):
        raise RuntimeError("ITK ERROR: All samples map outside moving image buffer")

    monkeypatch.setattr(search, "_exhaustive_values", itk_fails)
    monkeypatch.setattr(search, "_candidate_value", itk_fails)
    fixed, moving = _small_pair()
    result = R.register_rigid(fixed, moving, R.RigidConfig(**_SMALL), patient="P7")
    assert result.rotation_search.startswith("failed (none of the 125 candidates")
    assert "All samples map outside" in result.rotation_search
    assert result.initial_rotation_deg == (0.0, 0.0, 0.0)  # the initial alignment, no turn
    assert result.summary()["rotation_search"] == result.rotation_search
    # QC flags the patient, and registration_qc.csv says why
    head = sitk.Cast(fixed > 0.05, sitk.sitkUInt8)
    template = type("T", (), {"fdg": fixed, "head_mask": head})()
    qc = Q.patient_qc({"FD": fixed}, head, template, {"FD": result}, reference="FD",
                      options=R.RegistrationOptions())
    assert not qc["ok"] and any("FD rotation search failed" in f for f in qc["flags"]), qc
    entry = Patient("P7", {"FD": "P7/FD.nii.gz"}, meta={"registration": {"reference": "FD", "qc": qc}})
    rows = list(csv.DictReader(open(Q.write_summary_csv(Q.summary_rows([entry], {}),
                                                        tmp_path / "qc.csv"))))
    assert rows[0]["ok"] == "False" and "rotation search failed" in rows[0]["flags"]


# -------------------------------------------------------------------- known poses (assets) --
@pytest.mark.assets
def test_recovers_known_pose_fd_to_template(template4, brain_points, case_a):
    result = R.register_rigid(template4.fdg, case_a.images["FD"],
                              R.RigidConfig(mask_processing_mode="ROI"),
                              fixed_mask=template4.head_mask)
    tre = Q.target_registration_error(result.transform, case_a.true["PETCT"], brain_points)
    assert tre.mean() < 1.0 and tre.max() < 2.0, (tre.mean(), tre.max())
    assert result.metric < -0.5 and result.overlap > 0.95
    # the estimate is far from the pose the initialisation alone gives (the search did work)
    assert R.transform_parameters(result.transform)["rotation_deg"] > 10


@pytest.mark.assets
def test_recovers_known_pose_mr_to_ct(case_a, brain_points):
    ct_points = np.array([case_a.true["PETCT"].TransformPoint(p.tolist()) for p in brain_points])
    result = R.register_rigid(case_a.images["CT"], case_a.images["T1"], R.RigidConfig(),
                              fixed_modality="CT")
    tre = Q.target_registration_error(result.transform, case_a.true["MR"], ct_points)
    assert tre.mean() < 1.0 and tre.max() < 2.0, (tre.mean(), tre.max())


@pytest.mark.assets
@pytest.mark.parametrize("mode", ["useCenterOfHeadAlign", "useGeometryAlign"])
def test_other_initialisations_recover_a_pose(template4, brain_points, mode):
    case = _case(((-10.0, 8.0, -6.0), (-12.0, 16.0, -8.0)), seed=4)
    result = R.register_rigid(template4.fdg, case.images["FD"],
                              R.RigidConfig(initialize_transform_mode=mode, mask_processing_mode="ROI"),
                              fixed_mask=template4.head_mask)
    tre = Q.target_registration_error(result.transform, case.true["PETCT"], brain_points)
    assert tre.mean() < 1.0 and tre.max() < 2.0, (mode, tre.mean(), tre.max())


@pytest.mark.assets
@pytest.mark.parametrize("scale, centre_mni", [(1.08, (0.0, -18.0, 40.0)), (0.92, (10.0, -30.0, 30.0))])
def test_brain_refinement_finds_the_best_rigid_pose_of_a_head_of_another_size(template4, scale,
                                                                               centre_mni):
    """A head 8 % larger or smaller than the template, scaled about a point off the brain's centre:
    the rigid stage alone is pulled by the head's outline; the brain refinement is not."""
    case = Q.known_pose_case(petct_pose=((12.0, -10.0, 8.0), (15.0, -12.0, 10.0)), modalities=("FD",),
                             spacing=SPACING, pet_spacing=(SPACING,) * 3, seed=1,
                             head_scale=scale, scale_centre_mni=centre_mni)
    brain = Q.mask_points(template4.brain_mask)
    tre = {}
    for mode in ("similarity", "off"):
        result = R.register_rigid(template4.fdg, case.images["FD"],
                                  R.RigidConfig(mask_processing_mode="ROI", brain_refinement=mode),
                                  fixed_mask=template4.head_mask, brain_mask=template4.brain_mask)
        tre[mode] = Q.target_registration_error(result.transform, case.true["PETCT"], brain)
        assert result.refinement == mode
        if mode == "similarity":
            assert abs(result.scale - scale) < 0.02, result.scale
            assert result.transform.GetName() == "VersorRigid3DTransform"
            a, _ = R.affine_parts(result.transform)
            assert np.allclose(a @ a.T, np.eye(3), atol=1e-9)  # still 6 DOF: no scale left
    assert tre["similarity"].mean() < 0.5 and tre["similarity"].max() < 1.0, tre["similarity"].mean()
    assert tre["off"].mean() > tre["similarity"].mean() + 0.3, (tre["off"].mean(),
                                                                 tre["similarity"].mean())


@pytest.mark.assets
def test_brain_refinement_needs_a_brain_mask_and_says_when_it_is_not_used(template4, case_a):
    config = R.RigidConfig(mask_processing_mode="ROI")
    plain = R.register_rigid(template4.fdg, case_a.images["FD"], config,
                             fixed_mask=template4.head_mask)
    assert plain.refinement == "off" and plain.scale == 1.0
    tiny = sitk.Image(template4.brain_mask.GetSize(), sitk.sitkUInt8)
    tiny.CopyInformation(template4.brain_mask)
    tiny[10, 10, 10] = 1
    skipped = R.register_rigid(template4.fdg, case_a.images["FD"], config,
                               fixed_mask=template4.head_mask, brain_mask=tiny)
    assert skipped.refinement.startswith("rejected") and "1000 voxels" in skipped.refinement
    assert np.allclose(R.affine_parts(skipped.transform)[1], R.affine_parts(plain.transform)[1])


@pytest.mark.assets
def test_large_tilt_converges_thanks_to_rotation_search(template4, brain_points):
    case = _case(((28.0, 0.0, -12.0), (20.0, -20.0, 20.0)), seed=5)
    result = R.register_rigid(template4.fdg, case.images["FD"], R.RigidConfig(mask_processing_mode="ROI"),
                              fixed_mask=template4.head_mask)
    tre = Q.target_registration_error(result.transform, case.true["PETCT"], brain_points)
    assert tre.mean() < 1.0 and tre.max() < 2.0, (tre.mean(), tre.max())
    assert abs(result.initial_rotation_deg[0]) >= 15  # the search picked a tilted start


# ---------------------------------------------------------------------- a patient and a cohort --
def _write_cohort(root: Path, cases, *, broken: dict = None) -> Cohort:
    cohort = Cohort(root=root)
    for i, case in enumerate(cases):
        pid = f"P{i + 1:03d}"
        mods = {}
        for modality, image in case.images.items():
            image = (broken or {}).get((pid, modality), image)
            rel = f"{pid}/{modality}.nii.gz"
            (root / pid).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(image, str(root / rel))
            mods[modality] = rel
        cohort.add(Patient(pid, mods, split="train" if i == 0 else "test", fold=i,
                           provenance={"kind": "real", "source": f"case {i}"},
                           meta={"true_pose": case.pose}))
    cohort.save()
    return cohort


@pytest.mark.assets
def test_register_patient_moves_every_modality_onto_the_template(template4, case_a, tmp_path,
                                                                 brain_points):
    cohort = _write_cohort(tmp_path / "native", [case_a])
    patient = cohort.patients[0]
    reg = R.register_patient(cohort, patient, template4)
    grid = template4.grid
    assert set(reg.images) == {"FD", "LD", "CT", "T1"}
    for image in reg.images.values():
        assert Grid.of(image).matches(grid) and image.GetPixelID() == sitk.sitkFloat32
    assert Grid.of(reg.head_mask).matches(grid) and reg.head_mask.GetPixelID() == sitk.sitkUInt8
    ct = sitk.GetArrayFromImage(reg.images["CT"])
    assert ct[0, 0, 0] < -900  # air (or outside the CT) is -1000 HU, not 0
    # T1 in template space = (MR <- CT) o (CT <- template), checked against the truth
    tre = Q.target_registration_error(reg.transforms["T1"], case_a.true_mr_template, brain_points)
    assert tre.mean() < 1.5 and tre.max() < 3.0, (tre.mean(), tre.max())
    assert reg.qc["ok"], reg.qc
    assert reg.qc["dice"] > 0.9 and reg.qc["correlation"] > 0.9 and reg.qc["t1_dice"] > 0.85
    # the brain refinement is used to the template (it has a brain), not from T1 to the CT
    assert reg.results["FD"].refinement == "similarity" and reg.results["T1"].refinement == "off"
    # the case's TPM brain is a few per cent smaller than the template's ICBM 2009c one
    assert 0.93 < reg.qc["scale"] < 1.0, reg.qc["scale"]
    # written files: applying the transform file to the native image gives the written volume
    entry = R.save_patient(reg, tmp_path / "out", patient, R.RegistrationOptions(qc_images=False),
                           "fp", template_fdg=template4.fdg)
    tfm = R.read_transform(tmp_path / "out" / entry.meta["registration"]["transforms"]["T1_to_template"])
    t1_native = sitk.ReadImage(str(cohort.path(patient, "T1")), sitk.sitkFloat32)
    again = sitk.Resample(t1_native, template4.fdg, tfm, sitk.sitkLinear, 0.0)
    written = sitk.ReadImage(str(tmp_path / "out" / entry.modalities["T1"]))
    assert np.allclose(sitk.GetArrayFromImage(again), sitk.GetArrayFromImage(written), atol=1e-5)
    assert R.load_done(tmp_path / "out", patient.id, "fp") is not None
    assert R.load_done(tmp_path / "out", patient.id, "other options") is None


@pytest.mark.assets
def test_roi_mode_uses_the_template_head_and_the_ct_head_for_mr(template4, case_a, tmp_path):
    """ROI asked for explicitly: the template registration gets the template head mask, the MR-to-CT
    registration (no given mask) the CT's automatic head mask, and neither raises."""
    cohort = _write_cohort(tmp_path / "native", [case_a])
    options = R.RegistrationOptions(rigid=R.RigidConfig(mask_processing_mode="ROI"))
    reg = R.register_patient(cohort, cohort.patients[0], template4, options)
    assert reg.qc["ok"] and reg.qc["t1_dice"] > 0.85, reg.qc
    assert reg.results["FD"].rotation_search == "done" == reg.results["T1"].rotation_search


@pytest.mark.assets
def test_wrong_modality_that_passes_the_unit_check_is_flagged_by_qc(template4, tmp_path):
    """A T1 stored as FD registers to something, but QC flags it rather than passing it on."""
    case = _case(((5.0, 5.0, 5.0), (5.0, 5.0, 5.0)), modalities=("T1",), seed=6)
    case.images = {"FD": case.images["T1"]}
    cohort = _write_cohort(tmp_path / "native", [case])
    reg = R.register_patient(cohort, cohort.patients[0], template4)
    assert not reg.qc["ok"] and any("correlation" in f for f in reg.qc["flags"]), reg.qc


@pytest.mark.assets
def test_register_cli_on_a_tiny_cohort_in_parallel_and_resumes(need_assets, tmp_path):
    from RobustDeepLogic.cli.main import run_command

    cases = [_case(((8.0, -6.0, 5.0), (10.0, -8.0, 6.0)), ((-6.0, 5.0, 4.0), (6.0, -5.0, 4.0)),
                   modalities=("FD", "CT", "T1"), seed=7),
             _case(((-9.0, 7.0, -4.0), (-12.0, 9.0, -5.0)), modalities=("FD", "NAC"), seed=8)]
    native = _write_cohort(tmp_path / "native", cases)
    out = tmp_path / "registered"
    argv = ["register", str(native.root), str(out), "--spacing", "4", "--workers", "2",
            "--progress", "none", "--samplingPercentage", "0.05"]
    assert run_command(argv) == 0
    reg = Cohort.load(out)
    assert reg.space == "template" and reg.ids == ["P001", "P002"]
    for before, after in zip(native.patients, reg.patients):
        assert (after.split, after.fold, after.provenance) == (before.split, before.fold,
                                                              before.provenance)
        assert set(after.modalities) == set(before.modalities)
        meta = after.meta["registration"]
        assert meta["qc"]["ok"], meta["qc"]
        assert after.meta["true_pose"] == before.meta["true_pose"]  # meta is kept
        for rel in list(meta["transforms"].values()) + [meta["head_mask"], meta["qc_image"]]:
            assert (out / rel).is_file()
    assert "T1_to_template" in reg.patients[0].meta["registration"]["transforms"]
    with open(out / "registration_qc.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["patient"] for r in rows] == ["P001", "P002"] and all(r["ok"] == "True" for r in rows)
    # resume: nothing is redone
    marker = out / "P001" / R.MARKER_NAME
    stamp = marker.stat().st_mtime_ns
    assert run_command(argv) == 0
    assert marker.stat().st_mtime_ns == stamp
    assert run_command(argv[:5] + ["--workers", "1"] + argv[7:] + ["--force", "--patients", "P001",
                                                                  "--no-qc-images"]) == 0
    assert marker.stat().st_mtime_ns > stamp
    assert Cohort.load(out).ids == ["P001", "P002"]  # the other patient stays registered


@pytest.mark.assets
def test_register_cohort_reports_a_broken_patient_and_registers_the_others(need_assets, tmp_path):
    cases = [_case(((8.0, -6.0, 5.0), (10.0, -8.0, 6.0)), seed=11),
             _case(((-9.0, 7.0, -4.0), (-12.0, 9.0, -5.0)), seed=12)]
    empty = sitk.Image(cases[1].images["FD"].GetSize(), sitk.sitkFloat32)
    broken = _write_cohort(tmp_path / "native", cases, broken={("P002", "FD"): empty})
    options = R.RegistrationOptions(qc_images=False)
    outcome = R.register_cohort(broken, tmp_path / "out", options=options, spacing=SPACING,
                                workers=1)
    assert outcome.done == ["P001"] and list(outcome.failed) == ["P002"]
    assert "empty" in outcome.failed["P002"]
    assert Cohort.load(tmp_path / "out").ids == ["P001"]
    with open(outcome.summary_csv) as f:
        rows = {r["patient"]: r for r in csv.DictReader(f)}
    assert rows["P002"]["status"] == "error" and "empty" in rows["P002"]["flags"]
    assert rows["P001"]["status"] == "done"
    with pytest.raises(InputError, match="empty"):
        R.register_cohort(broken, tmp_path / "out2", options=options, spacing=SPACING, workers=1,
                          keep_going=False)


@pytest.mark.assets
def test_register_leaves_a_flagged_patient_out_unless_keep_flagged(need_assets, tmp_path, capsys):
    """P002's FD is moved 500 mm away from its CT: the PET/CT transform fits the FD, QC finds the CT
    head far from the template and flags the patient, and the registered cohort leaves it out."""
    from RobustDeepLogic.cli.frame import LOG_NAME
    from RobustDeepLogic.cli.main import run_command

    cases = [_case(((8.0, -6.0, 5.0), (10.0, -8.0, 6.0)), modalities=("FD", "CT"), seed=13),
             _case(((-9.0, 7.0, -4.0), (-12.0, 9.0, -5.0)), modalities=("FD", "CT"), seed=14)]
    far = sitk.Image(cases[1].images["FD"])
    far.SetOrigin([o + d for o, d in zip(far.GetOrigin(), (500.0, 0.0, 0.0))])
    native = _write_cohort(tmp_path / "native", cases, broken={("P002", "FD"): far})
    out = tmp_path / "registered"
    argv = ["register", str(native.root), str(out), "--spacing", "4", "--workers", "1",
            "--progress", "none", "--no-qc-images"]
    assert run_command(argv) == 0
    reg = Cohort.load(out)
    assert reg.ids == ["P001"]
    assert list(reg.meta["registration"]["excluded"]) == ["P002"]
    assert "Dice" in reg.meta["registration"]["excluded"]["P002"]
    with open(out / "registration_qc.csv") as f:
        rows = {r["patient"]: r for r in csv.DictReader(f)}
    assert rows["P002"]["ok"] == "False" and rows["P001"]["ok"] == "True"
    warning = [line for line in (out / LOG_NAME).read_text().splitlines() if "P002" in line]
    assert warning and "left out of the registered cohort" in warning[0] and "Dice" in warning[0]
    # --keep-flagged takes it in, without registering it again
    marker = out / "P002" / R.MARKER_NAME
    stamp = marker.stat().st_mtime_ns
    assert run_command(argv + ["--keep-flagged"]) == 0
    assert Cohort.load(out).ids == ["P001", "P002"] and marker.stat().st_mtime_ns == stamp
    assert Cohort.load(out).meta["registration"]["excluded"] == {}
    # the two spellings contradict each other
    capsys.readouterr()
    assert run_command(argv + ["--keep-flagged", "--exclude-flagged"]) == 2
    assert "contradict" in capsys.readouterr().err
    # when QC leaves nobody, exit status 2 names the patient
    alone = ["register", str(native.root), str(tmp_path / "alone")] + argv[3:] + ["--patients", "P002"]
    assert run_command(alone) == 2
    err = capsys.readouterr().err
    assert "P002" in err and "registered cohort is empty" in err
    assert Cohort.load(tmp_path / "alone").ids == []


@pytest.mark.assets
def test_register_refuses_a_registered_cohort_and_its_own_folder(need_assets, tmp_path):
    cohort = Cohort(root=tmp_path / "c", space="template")
    cohort.save()
    with pytest.raises(InputError, match="already"):
        R.register_cohort(cohort, tmp_path / "out")
    native = Cohort(root=tmp_path / "n")
    native.save()
    with pytest.raises(InputError, match="output folder"):
        R.register_cohort(native, tmp_path / "n")


@pytest.mark.assets
def test_study_template_from_two_patients(need_assets, tmp_path):
    cases = [_case(((6.0, -4.0, 3.0), (5.0, 5.0, -5.0)), seed=9),
             _case(((-5.0, 6.0, -3.0), (-6.0, 4.0, 5.0)), seed=10)]
    cohort = _write_cohort(tmp_path / "native", cases)
    template, info = R.build_study_template(cohort, spacing=SPACING, iterations=1)
    from RobustDeepLogic.registration.templates import fdg_template
    from RobustDeepLogic.registration.template_grid import template_grid

    grid = template_grid(SPACING)
    assert Grid.of(template).matches(grid)
    model = fdg_template(grid)
    r = Q.masked_correlation(template, model, R.TemplateSpace.default(SPACING).head_mask)
    assert r > 0.9 and info["patients"] == ["P001", "P002"]
    with pytest.raises(InputError, match="at least 2"):
        R.build_study_template(cohort, spacing=SPACING, patients=["P001"])


# -------------------------------------------------------------------------------------- QC --
def test_dice_and_summary_csv(tmp_path):
    a = np.zeros((10, 10, 10), bool)
    a[:5] = True
    b = np.zeros_like(a)
    b[:5, :5] = True
    assert math.isclose(Q.dice(a, b), 2 * 250 / (500 + 250))
    assert Q.dice(np.zeros(3), np.zeros(3)) == 1.0
    entry = Patient("P1", {"FD": "P1/FD.nii.gz"}, meta={"registration": {
        "reference": "FD", "seconds": 1.0,
        "qc": {"ok": False, "dice": 0.5, "correlation": 0.2, "flags": ["head-mask Dice 0.5 < 0.9"]}}})
    path = Q.write_summary_csv(Q.summary_rows([entry], {"P2": "patient P2: empty"}),
                               tmp_path / "qc.csv")
    rows = list(csv.DictReader(open(path)))
    assert rows[0]["ok"] == "False" and "Dice" in rows[0]["flags"]
    assert rows[1]["status"] == "error" and rows[1]["flags"] == "patient P2: empty"


@pytest.mark.assets
def test_qc_flags_a_misregistration(template4, case_a):
    """QC passes the right transform and flags the same image turned by 180 degrees."""
    good = R.register_rigid(template4.fdg, case_a.images["FD"],
                            R.RigidConfig(mask_processing_mode="ROI"), fixed_mask=template4.head_mask)
    options = R.RegistrationOptions()

    def qc_for(tx):
        img = R.resample_to_template(case_a.images["FD"], tx, template4.fdg)
        head = R.resample_to_template(R.foreground_mask(case_a.images["FD"], modality="FD"), tx,
                                      template4.fdg, label=True)
        return Q.patient_qc({"FD": img}, head, template4, {"FD": good}, reference="FD",
                            options=options)

    assert qc_for(good.transform)["ok"]
    flipped = R.compose_rigid(good.transform, R.rigid_transform((180, 0, 0), center=(0, 18, 18)))
    bad = qc_for(flipped)
    assert not bad["ok"] and bad["flags"]
    shifted = R.compose_rigid(good.transform, R.rigid_transform((0, 0, 0), (0, 15, 0)))
    assert qc_for(shifted)["correlation"] < qc_for(good.transform)["correlation"] - 0.05
