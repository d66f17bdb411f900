"""Datasets and folds: windows, scaling, resampling onto the PET grid, patient-level folds, leakage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from scipy import ndimage

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.data.sources import CohortSource, ConcatSource
from RobustDeepLogic.data.on_the_fly import TorchDatasetSource
from RobustDeepLogic.data.windows import EpochSampler, WindowDataset, cut_window
from RobustDeepLogic.io.headmask import head_mask
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.cohort.folds import allowed_synthetic, assign_folds, check_no_leakage
from RobustDeepLogic.io.volumes import Grid, image_from_array, write_volume

SHAPE = (24, 40, 36)  # z, y, x


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _head(shape=SHAPE) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return (z / 0.9) ** 2 + (y / 0.8) ** 2 + (x / 0.75) ** 2 <= 1.0


def make_tiny_cohort(root: Path, n: int = 8, *, seed: int = 0, space: str = "template",
                     mr_on_other_grid: bool = False, synthetic_pairs=()) -> Cohort:
    """A tiny cohort of random smooth heads with learnable relations (all in physical units).

    LD: smooth texture in the head (SUV 0-4); FD = 2 * smooth(LD); NAC = LD * 0.4 (a MAC/ NAC pair
    with MAC = FD); T1 / T2 from the same texture; CT = 600 * smooth(T1) - 1000 in the head, -1000 out.
    ``mr_on_other_grid`` writes T1 / T2 on a 2x finer in-plane grid shifted by half a voxel (PU).
    ``synthetic_pairs``: (id, parent_a, parent_b) synthetic subjects (their images are those of a).
    """
    rng = np.random.default_rng(seed)
    cohort = Cohort(root=Path(root), space=space)
    from RobustDeepLogic.cohort.scaling import Scaling

    cohort.scaling.update({"T1": Scaling(4.0, 0.0, "a.u."), "T2": Scaling(4.0, 0.0, "a.u.")})
    grid = Grid(size=(SHAPE[2], SHAPE[1], SHAPE[0]), spacing=(2.0, 2.0, 2.5), origin=(-36.0, -40.0, -30.0))
    head = _head()
    for i in range(n):
        pid = f"P{i:02d}"
        tex = ndimage.gaussian_filter(rng.random(SHAPE).astype(np.float32), 1.5)
        tex = (tex - tex.min()) / (tex.max() - tex.min())
        ld = (4.0 * tex * head).astype(np.float32)
        fd = (2.0 * ndimage.gaussian_filter(ld, 1.0)).astype(np.float32)
        t1 = (3.0 * (1 - tex) * head).astype(np.float32)
        t2 = (2.0 * tex * head).astype(np.float32)
        ct = np.where(head, 600 * ndimage.gaussian_filter(t1, 1.0) - 1000, -1000).astype(np.float32)
        images = {"LD": ld, "FD": fd, "NAC": 0.4 * ld, "MAC": fd, "CT": ct}
        pdir = Path(root) / pid
        mods = {}
        for m, a in images.items():
            write_volume(image_from_array(a, grid), pdir / f"{m}.nii.gz")
            mods[m] = f"{pid}/{m}.nii.gz"
        for m, a in (("T1", t1), ("T2", t2)):
            image = image_from_array(a, grid)
            if mr_on_other_grid:
                fine = Grid(size=(SHAPE[2] * 2, SHAPE[1] * 2, SHAPE[0]), spacing=(1.0, 1.0, 2.5),
                            origin=(-36.5, -40.5, -30.0))
                ref = image_from_array(np.zeros(fine.shape, np.float32), fine)
                image = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, 0.0)
            write_volume(image, pdir / f"{m}.nii.gz")
            mods[m] = f"{pid}/{m}.nii.gz"
        cohort.add(Patient(pid, mods))
    for sid, a, b in synthetic_pairs:
        parent = cohort.patient(a)
        cohort.add(Patient(sid, dict(parent.modalities),
                           provenance={"kind": "synthetic", "parents": [a, b], "mask": "half"}))
    cohort.save()
    return Cohort.load(root)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_cohort(tmp_path_factory.mktemp("tiny"), n=4)


def test_cohort_source_scales_with_fixed_constants(tiny):
    src = CohortSource(tiny, tiny.ids[:1], ["FD", "LD"])
    sub = src.load(tiny.ids[0])
    fd = sitk.GetArrayFromImage(tiny.read(tiny.ids[0], "FD"))
    np.testing.assert_allclose(sub.arrays["FD"], fd / 15.0, rtol=1e-6)  # SUV / 15, not min-max
    assert sub.head.dtype == bool and sub.head.any() and not sub.head.all()
    assert sub.parents == (tiny.ids[0],)


def test_ct_scaling_keeps_air_at_zero(tiny):
    sub = CohortSource(tiny, tiny.ids[:1], ["CT"]).load(tiny.ids[0])
    assert abs(float(sub.arrays["CT"][0, 0, 0])) < 1e-6  # -1000 HU -> 0


def test_mr_is_resampled_onto_the_pet_grid(tmp_path):
    c = make_tiny_cohort(tmp_path / "pu", n=1, space="native", mr_on_other_grid=True)
    assert sitk.ReadImage(str(c.path(c.ids[0], "T1"))).GetSize() != sitk.ReadImage(
        str(c.path(c.ids[0], "FD"))).GetSize()
    sub = CohortSource(c, c.ids, ["FD", "LD", "T1", "T2"]).load(c.ids[0])
    assert sub.arrays["T1"].shape == sub.arrays["FD"].shape == SHAPE
    # the fine MR was made from the coarse one: back on the coarse grid it agrees inside the head
    ref = make_tiny_cohort(tmp_path / "pr", n=1)
    t1 = sitk.GetArrayFromImage(ref.read(ref.ids[0], "T1")) / 4.0
    inner = ndimage.binary_erosion(_head(), iterations=2)
    assert np.abs(sub.arrays["T1"][inner] - t1[inner]).mean() < 0.05


def test_missing_modality_is_an_input_error(tiny, tmp_path):
    c = Cohort(root=tmp_path, patients=[Patient("X", {"LD": "X/LD.nii.gz"})])
    with pytest.raises(InputError, match="FD"):
        CohortSource(c, ["X"], ["FD", "LD"])


def test_head_mask_fills_and_keeps_largest():
    a = np.zeros((5, 30, 30), np.float32)
    a[:, 5:25, 5:25] = 1.0
    a[:, 12:18, 12:18] = 0.0  # a hole
    a[:, 0, 29] = 1.0  # a speck
    m = head_mask([a])
    assert m[:, 15, 15].all() and not m[:, 0, 29].any()


def _ellipsoid(shape, centre, axes):
    zz, yy, xx = np.indices(shape, dtype=np.float64)
    return sum(((g - c) / r) ** 2 for g, c, r in zip((zz, yy, xx), centre, axes)) <= 1.0


def test_head_mask_policy_on_a_synthetic_head():
    """An ellipsoid head (a closed cavity, a cavity open to the neck) and a detached brighter blob."""
    shape = (32, 44, 40)
    head = _ellipsoid(shape, (16, 22, 20), (11.0, 16.0, 13.0))
    vol = np.where(head, 0.4, 0.0).astype(np.float32)
    vol[_ellipsoid(shape, (16, 22, 20), (5.0, 7.0, 6.0))] = 0.01  # a closed cavity below the threshold
    vol[6:16, 20:25, 18:23] = 0.0  # a channel from the cavity down through the neck: open in 3D
    vol[_ellipsoid(shape, (3, 3, 3), (2.0, 2.0, 2.0))] = 0.9  # a detached blob, 7 voxels from the head
    vol[0, 43, 39] = 0.019  # just below the threshold, away from everything
    mask = head_mask(vol)
    # expected, built independently: the full ellipsoid (every cavity filled, the blob dropped)
    assert mask.dtype == bool and np.array_equal(mask, head)
    # the same policy on several volumes: a voxel above the threshold in any of them
    other = np.zeros(shape, np.float32)
    other[_ellipsoid(shape, (16, 22, 35), (3.0, 3.0, 4.0))] = 0.3  # touches and extends the head
    union = head | (other > 0)
    both = head_mask([vol, other])
    # both shapes, plus at most what the closing (radius 2) adds in the concave seam between them
    assert np.all(both >= union) and not np.any(both & ~ndimage.binary_dilation(union, iterations=2))
    assert (both & ~union).sum() < 0.01 * union.sum()
    assert not head_mask(np.full(shape, 0.02, np.float32)).any()  # not above the threshold


def test_cut_window_pads_outside():
    s = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    w = cut_window(s, -1, 3, (3, 4))
    assert w.shape == (2, 3, 4)
    assert w[0, 0].sum() == 0 and w[0, 1, 0] == s[0, 0, 3] and w[0, 1, 2] == 0


def test_windows_shape_channels_and_determinism(tiny):
    src = CohortSource(tiny, tiny.ids, ["FD", "LD", "T1", "T2"])
    ds = WindowDataset(src, tiny.ids[:2], ["LD", "T1", "T2"], "FD", window=(16, 12), seed=3)
    x, y = ds[5]
    assert x.shape == (3, 16, 12) and y.shape == (1, 16, 12) and x.dtype == torch.float32
    ds.set_epoch(1)
    a = ds[5][0].clone()
    ds.set_epoch(2)
    b = ds[5][0].clone()
    ds.set_epoch(1)
    assert torch.equal(a, ds[5][0])
    assert len(ds) <= 2 * SHAPE[0]
    # windows come from the head: most hold signal (the smoothed mask reaches a voxel or two beyond)
    nonzero = [float(ds[i][0].abs().sum()) > 0 for i in range(len(ds))]
    assert np.mean(nonzero) > 0.75
    assert not torch.equal(a, b) or len(ds) == 0


def test_slices_per_subject_limits_items(tiny):
    src = CohortSource(tiny, tiny.ids, ["FD", "LD"])
    ds = WindowDataset(src, tiny.ids[:3], ["LD"], "FD", window=(16, 16), slices_per_subject=4)
    assert len(ds) == 12


def test_sampler_shards_without_overlap(tiny):
    src = CohortSource(tiny, tiny.ids, ["FD", "LD"])
    ds = WindowDataset(src, tiny.ids, ["LD"], "FD", window=(16, 16), slices_per_subject=5)
    shards = [EpochSampler(ds, seed=1, rank=r, world=2, block_subjects=2).order() for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(ds) // 2
    assert not set(shards[0]) & set(shards[1])
    full = EpochSampler(ds, seed=1)
    full.set_epoch(0)
    o0 = full.order()
    full.set_epoch(1)
    assert sorted(o0) == list(range(len(ds))) and o0 != full.order()


def test_torch_dataset_source_plugs_in():
    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            v = torch.rand(SHAPE, generator=g) * torch.from_numpy(_head())
            return {"LD": v * 15.0, "FD": v * 30.0, "parents": ["P00", "P01"]}

    from RobustDeepLogic.cohort.scaling import DEFAULT_SCALING

    src = TorchDatasetSource(Pairs(), scaling=DEFAULT_SCALING, prefix="syn")
    assert src.ids == ["syn00000", "syn00001"] and src.parents("syn00001") == ("P00", "P01")
    sub = src.load("syn00000")
    assert float(sub.arrays["LD"].max()) <= 1.0 + 1e-6 and sub.head.any()
    ds = WindowDataset(src, src.ids, ["LD"], "FD", window=(16, 16))
    x, y = ds[0]
    torch.testing.assert_close(y, 2 * x)


def test_concat_source_rejects_duplicate_ids(tiny):
    a = CohortSource(tiny, tiny.ids[:2], ["FD"])
    with pytest.raises(InputError, match="two sources"):
        ConcatSource([a, CohortSource(tiny, tiny.ids[1:3], ["FD"])])


# -- folds ----------------------------------------------------------------------------------------
def test_folds_are_patient_level_and_disjoint():
    ids = [f"P{i:02d}" for i in range(45)]
    plan = assign_folds(ids, k=5, seed=0)
    assert len(plan.test) == 10 and plan.k == 5
    assert sorted(plan.development + list(plan.test)) == sorted(ids)
    for f in range(5):
        assert not set(plan.training(f)) & set(plan.validation(f))
        assert not set(plan.training(f)) & set(plan.test)
        assert len(plan.training(f)) == 28
    assert assign_folds(ids, k=5, seed=0) == plan != assign_folds(ids, k=5, seed=1)


def test_preset_splits_and_folds_are_used():
    ids = [f"P{i}" for i in range(6)]
    plan = assign_folds(ids, k=2, preset_splits={"P0": "test", "P1": "train"},
                        preset_folds={p: i % 2 for i, p in enumerate(ids)})
    assert plan.test == ("P0",)
    assert plan.validation(1) == ["P1", "P3", "P5"]


def test_too_few_patients_for_folds():
    with pytest.raises(InputError, match="folds"):
        assign_folds(["a", "b"], k=3, test=[])


def test_synthetic_subjects_follow_their_parents():
    allowed, refused = allowed_synthetic({"S1": ["A", "B"], "S2": ["A", "C"], "S3": []}, ["A", "B"])
    assert allowed == ["S1"] and refused == ["S2", "S3"]
    check_no_leakage("S1", ["A", "B"], ["C"])
    with pytest.raises(InputError, match="leak"):
        check_no_leakage("S2", ["A", "C"], ["C"], fold=1)
