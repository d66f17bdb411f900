"""Tests of RobustDeepLogic.synthesis: pairs, synthesis on disk, provenance, on-the-fly blending."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from RobustDeepLogic import synthesis as S
from RobustDeepLogic.blending.blend import laplacian_blend
from RobustDeepLogic.cli.main import main
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.masks.presets import make_preset
from RobustDeepLogic.io.volumes import Grid, read_array, write_array

# A small template-space grid (8 mm MNI voxels, RAS-oriented like the MNI152 files).
GRID = Grid(size=(23, 27, 16), spacing=(8.0, 8.0, 8.0), origin=(90.0, 126.0, -60.0),
            direction=(-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
#        id      split    fold
PATIENTS = [("P01", "train", 0), ("P02", "train", 0), ("P03", "train", 0),
            ("P04", "train", 1), ("P05", "train", 1), ("T01", "test", None)]


def make_cohort(root, seed=0, space="template"):
    """Random smooth FD volumes and CT = 2 FD - 1 (a fixed linear relation between modalities)."""
    rng = np.random.default_rng(seed)
    cohort = Cohort(root=root, space=space)
    for pid, split, fold in PATIENTS:
        fd = (ndimage.gaussian_filter(rng.standard_normal(GRID.shape), 1.5) * 4 + rng.uniform(1, 3))
        fd = fd.astype(np.float32)
        write_array(fd, GRID, root / pid / "FD.nii.gz")
        write_array(2 * fd - 1, GRID, root / pid / "CT.nii.gz")
        cohort.add(Patient(pid, {"FD": f"{pid}/FD.nii.gz", "CT": f"{pid}/CT.nii.gz"}, split=split, fold=fold))
    cohort.save()
    return cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("registered"))


# -------------------------------------------------------------------------------------------------
# Pairs and pools
# -------------------------------------------------------------------------------------------------
def test_choose_pairs():
    ids = ["a", "b", "c", "d", "e"]
    every = S.choose_pairs(ids, all_pairs=True)
    assert len(every) == 20 == len(set(every)) and all(p != q for p, q in every)
    some = S.choose_pairs(ids, count=7, seed=3)
    assert len(set(some)) == 7 and set(some) <= set(every)
    assert some == S.choose_pairs(list(reversed(ids)), count=7, seed=3)
    assert some != S.choose_pairs(ids, count=7, seed=4)
    balanced = S.choose_pairs(ids, per_patient=3, seed=1)
    assert len(set(balanced)) == 15 and all(p != q for p, q in balanced)
    for pid in ids:
        assert sum(p == pid for p, _ in balanced) == 3 and sum(q == pid for _, q in balanced) == 3
    for kwargs in ({"count": 21}, {"per_patient": 5}, {}, {"count": 2, "all_pairs": True}):
        with pytest.raises(InputError):
            S.choose_pairs(ids, **kwargs)


def test_pools_never_hold_test_patients(cohort):
    assert S.select_pool(cohort) == ["P01", "P02", "P03", "P04", "P05"]
    assert S.select_pool(cohort, folds=[1]) == ["P04", "P05"]
    assert S.select_pool(cohort, patients=["P01", "P04"]) == ["P01", "P04"]
    with pytest.raises(InputError, match="held-out") as info:
        S.select_pool(cohort, patients=["P01", "T01"])
    assert info.value.patient == "T01"


# -------------------------------------------------------------------------------------------------
# Synthesis on disk
# -------------------------------------------------------------------------------------------------
def test_synthesize_writes_subjects_with_provenance_and_resumes(cohort, tmp_path):
    out = tmp_path / "synthetic"
    report = S.synthesize(cohort, out, ["simple", "complex"], count=3, seed=7, folds=[0], levels=2)
    assert report.made == 6 and report.skipped == 0 and report.pool == ["P01", "P02", "P03"]
    syn = Cohort.load(out)
    assert syn.space == "template" and len(syn) == 6
    for p in syn:
        prov = p.provenance
        assert p.is_synthetic and p.split == "train"
        assert set(prov["parents"]) <= {"P01", "P02", "P03"} and prov["parents"][0] != prov["parents"][1]
        assert prov["levels"] == 2 and prov["seed"] == 7 and prov["mask"] in ("simple", "complex")
        assert prov["version"] and len(prov["mask_sha256"]) == 64
        fd, grid = read_array(syn.path(p, "FD"))
        ct, _ = read_array(syn.path(p, "CT"))
        assert grid.matches(GRID)
        # the same mask and parents for every modality: the linear relation CT = 2 FD - 1 survives
        np.testing.assert_allclose(ct, 2 * fd - 1, atol=1e-4)
        # and it is the Laplacian blend of the parents under the recorded mask
        a, _ = read_array(cohort.path(prov["parents"][0], "FD"))
        b, _ = read_array(cohort.path(prov["parents"][1], "FD"))
        np.testing.assert_array_equal(fd, laplacian_blend(a, b, make_preset(prov["mask"], GRID), 2))
    # provenance regenerates every volume bit for bit
    first = syn.patients[0]
    again = S.regenerate(out, first.id)
    for mod in ("FD", "CT"):
        np.testing.assert_array_equal(again[mod], read_array(syn.path(first, mod))[0])
    # resumable and idempotent: nothing is recomputed, nothing changes
    stamps = {f: f.stat().st_mtime_ns for f in out.rglob("*.nii.gz")}
    manifest = json.loads((out / "manifest.json").read_text())
    report = S.synthesize(cohort, out, ["simple", "complex"], count=3, seed=7, folds=[0], levels=2)
    assert report.made == 0 and report.skipped == 6
    assert {f: f.stat().st_mtime_ns for f in out.rglob("*.nii.gz")} == stamps
    assert json.loads((out / "manifest.json").read_text())["patients"] == manifest["patients"]
    # a subject lost in a crash (no provenance marker) is remade
    (out / first.id / "provenance.json").unlink()
    report = S.synthesize(cohort, out, ["simple", "complex"], count=3, seed=7, folds=[0], levels=2)
    assert report.made == 1 and report.skipped == 5
    # other settings for the same subjects are refused
    with pytest.raises(InputError, match="different provenance"):
        S.synthesize(cohort, out, ["simple"], count=3, seed=7, folds=[0], levels=1)


def test_folds_share_a_folder_and_reuse_pairs_drawn_with_another_seed(cohort, tmp_path):
    # Two trained folds draw from overlapping pools with their own seeds into one folder (as a study
    # does): a pair drawn twice is the same blend, kept once, with the provenance of its first draw.
    out = tmp_path / "PM1"
    first = S.synthesize(cohort, out, ["simple"], all_pairs=True, seed=1, patients=["P01", "P02", "P03"],
                         modalities=["FD"], levels=2)
    stamps = {f: f.stat().st_mtime_ns for f in out.rglob("*.nii.gz")}
    second = S.synthesize(cohort, out, ["simple"], all_pairs=True, seed=2,
                          patients=["P01", "P02", "P03", "P04"], modalities=["FD"], levels=2)
    assert first.made == 6 and second.planned == 12
    assert second.skipped == 6 and second.made == 6  # the 6 pairs of P01..P03 are the same blends
    syn = Cohort.load(out)
    assert len(syn) == 12
    for f, stamp in stamps.items():
        assert f.stat().st_mtime_ns == stamp
    for p in syn:
        with_p04 = "P04" in p.provenance["parents"]
        assert p.provenance["seed"] == (2 if with_p04 else 1)
        a, _ = read_array(cohort.path(p.provenance["parents"][0], "FD"))
        b, _ = read_array(cohort.path(p.provenance["parents"][1], "FD"))
        np.testing.assert_array_equal(read_array(syn.path(p, "FD"))[0],
                                      laplacian_blend(a, b, make_preset("simple", GRID), 2))
    # what makes the voxels still has to agree
    with pytest.raises(InputError, match="different provenance"):
        S.synthesize(cohort, out, ["simple"], all_pairs=True, seed=3, patients=["P01", "P02"],
                     modalities=["FD"], levels=1)


def test_restricted_pool_and_all_pairs(cohort, tmp_path):
    report = S.synthesize(cohort, tmp_path / "o", ["coronal"], all_pairs=True, seed=0,
                          patients=["P04", "P05"], modalities=["FD"], levels=1, method="naive")
    assert report.made == 2
    syn = Cohort.load(tmp_path / "o")
    assert sorted(tuple(p.provenance["parents"]) for p in syn) == [("P04", "P05"), ("P05", "P04")]
    assert all(set(p.modalities) == {"FD"} and p.provenance["method"] == "naive" for p in syn)


def test_synthesize_rejects_bad_input(cohort, tmp_path):
    native = make_cohort(tmp_path / "native", space="native")
    with pytest.raises(InputError, match="template space"):
        S.synthesize(native, tmp_path / "o1", ["simple"], count=1, seed=0)
    with pytest.raises(InputError, match="levels"):
        S.synthesize(cohort, tmp_path / "o2", ["simple"], count=1, seed=0, levels=9)
    bad = tmp_path / "bad_mask.nii.gz"
    write_array(np.zeros(GRID.shape, np.float32), GRID, bad)
    with pytest.raises(InputError, match="empty") as info:
        S.synthesize(cohort, tmp_path / "o3", [str(bad)], count=1, seed=0, levels=2)
    assert info.value.file == str(bad)


def test_cli_synthesize(cohort, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["synthesize", str(cohort.root), str(out), "--mask", "simple", "--per-patient", "1",
               "--seed", "5", "--folds", "1", "--levels", "2", "--progress", "none"])
    assert rc == 0
    syn = Cohort.load(out)
    assert len(syn) == 2 and all(set(p.parents) == {"P04", "P05"} for p in syn)
    assert (out / "masks" / "simple.nii.gz").is_file()
    assert main(["synthesize", str(cohort.root), str(tmp_path / "x"), "--mask", "simple", "--count", "2",
                 "--progress", "none"]) == 2
    assert "--seed" in capsys.readouterr().err
    assert main(["synthesize", str(cohort.root), str(tmp_path / "x"), "--mask", str(tmp_path / "no.nii.gz"), "--levels", "2",
                 "--count", "2", "--seed", "1", "--progress", "none"]) == 2
    assert "no.nii.gz" in capsys.readouterr().err
    assert main(["synthesize", str(cohort.root), str(tmp_path / "x"), "--mask", "simple", "--count", "2",
                 "--seed", "1", "--patients", "P01", "T01", "--progress", "none"]) == 2
    assert "T01" in capsys.readouterr().err


@pytest.mark.slow
def test_parallel_processes_match_in_process(cohort, tmp_path):
    serial = S.synthesize(cohort, tmp_path / "serial", ["complex"], count=4, seed=2, levels=2)
    parallel = S.synthesize(cohort, tmp_path / "parallel", ["complex"], count=4, seed=2, levels=2, workers=2)
    assert sorted(serial.subjects) == sorted(parallel.subjects) and parallel.made == 4
    for sid in serial.subjects:
        a = read_array(tmp_path / "serial" / sid / "FD.nii.gz")[0]
        np.testing.assert_array_equal(a, read_array(tmp_path / "parallel" / sid / "FD.nii.gz")[0])


def test_manifest_order_does_not_depend_on_which_worker_finishes_first(cohort, tmp_path, monkeypatch):
    """Parallel workers finish in any order; the synthetic cohort lists its subjects in plan order."""
    serial = S.synthesize(cohort, tmp_path / "serial", ["simple"], count=4, seed=2, levels=2)
    from RobustDeepLogic.synthesis import disk

    in_order = disk._run_jobs

    def reversed_jobs(jobs, workers, scheduler):
        yield from reversed(list(in_order(jobs, workers, scheduler)))

    monkeypatch.setattr(disk, "_run_jobs", reversed_jobs)
    shuffled = S.synthesize(cohort, tmp_path / "shuffled", ["simple"], count=4, seed=2, levels=2)
    assert shuffled.subjects == serial.subjects[::-1]  # the jobs did finish in the other order
    assert Cohort.load(tmp_path / "shuffled").ids == Cohort.load(tmp_path / "serial").ids == serial.subjects


@pytest.mark.slow
def test_dask_local_cluster(cohort, tmp_path):
    pytest.importorskip("dask.distributed")
    report = S.synthesize(cohort, tmp_path / "dask", ["simple"], count=3, seed=2, levels=2, workers=2,
                          scheduler="dask")
    assert report.made == 3
    ref = S.regenerate(tmp_path / "dask", report.subjects[0])
    np.testing.assert_array_equal(ref["FD"], read_array(tmp_path / "dask" / report.subjects[0] / "FD.nii.gz")[0])


# -------------------------------------------------------------------------------------------------
# On the fly
# -------------------------------------------------------------------------------------------------
def test_blended_dataset(cohort):
    simple = make_preset("simple", GRID)
    ds = S.BlendedDataset(cohort, ["P01", "P02", "P04"], [simple, "complex"], levels=2,
                          modalities=["FD", "CT"], seed=3)
    assert len(ds) == 6 * 2
    parents = set()
    for i in range(len(ds)):
        (p1, p2), k = ds.pair_of(i)
        parents |= {p1, p2}
    assert parents == {"P01", "P02", "P04"}
    item = ds[7]
    prov = item["provenance"]
    assert prov["index"] == 7 and prov["levels"] == 2 and prov["mask"] == "complex"
    assert item["FD"].dtype == torch.float32 and tuple(item["FD"].shape) == GRID.shape
    a, _ = read_array(cohort.path(prov["parents"][0], "FD"))
    b, _ = read_array(cohort.path(prov["parents"][1], "FD"))
    np.testing.assert_allclose(item["FD"].numpy(), laplacian_blend(a, b, make_preset("complex", GRID), 2),
                               atol=1e-6)
    np.testing.assert_allclose(item["CT"].numpy(), 2 * item["FD"].numpy() - 1, atol=1e-4)
    np.testing.assert_array_equal(ds[7]["FD"].numpy(), item["FD"].numpy())
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert tuple(batch["FD"].shape) == (2,) + GRID.shape
    with pytest.raises(InputError):
        S.BlendedDataset(cohort, ["P01", "P02"], np.zeros((3, 3, 3), np.float32))


def test_blended_dataset_refuses_test_patients_as_parents(cohort):
    assert cohort.patient("T01").split == "test"
    with pytest.raises(InputError, match="held-out test patient") as info:
        S.BlendedDataset(cohort, ["P01", "T01", "P02"], "complex", levels=2)
    assert info.value.patient == "T01" and "T01" in str(info.value)
    with pytest.raises(InputError, match="T01"):  # also for the mask-free baselines and given pairs
        S.BlendedDataset(cohort, ["P01", "T01"], None, method="mixup", pairs=[("T01", "P01")])


def test_dictionary_transforms(rng):
    shape = (9, 12, 10)
    m = np.zeros(shape, np.float32)
    m[..., :5] = 1
    x = {"LD": rng.random((1,) + shape).astype(np.float32), "FD": rng.random((1,) + shape).astype(np.float32)}
    y = {k: rng.random((1,) + shape).astype(np.float32) for k in ("LD", "FD")}
    t = S.LaplacianBlendd(["LD", "FD"], m, levels=2)
    out = t({**x, "LD_partner": y["LD"], "FD_partner": y["FD"], "other": 1})
    assert set(out) == {"LD", "FD", "other"}
    np.testing.assert_allclose(out["LD"], laplacian_blend(x["LD"], y["LD"], m, 2), atol=1e-6)
    with pytest.raises(KeyError):
        t(x)
    rand = S.RandLaplacianBlendd(["LD", "FD"], [y], [m, 1 - m], levels=2, prob=1.0, seed=0)
    first = rand(dict(x))
    prov = first["blend_provenance"]
    mask = m if prov["mask"] == 0 else 1 - m
    np.testing.assert_allclose(first["FD"], laplacian_blend(x["FD"], y["FD"], mask, 2), atol=1e-6)
    rand.set_random_state(0)
    np.testing.assert_array_equal(rand(dict(x))["FD"], first["FD"])
    never = S.RandLaplacianBlendd("FD", [y], m, prob=0.0, seed=0, levels=2)
    assert never(dict(x))["blend_provenance"] is None
    tens = t({"LD": torch.from_numpy(x["LD"]), "LD_partner": torch.from_numpy(y["LD"]),
              "FD": torch.from_numpy(x["FD"]), "FD_partner": torch.from_numpy(y["FD"])})
    assert isinstance(tens["LD"], torch.Tensor)


def test_blended_dataset_mixing_baselines_and_explicit_pairs(cohort):
    pairs = [("P02", "P01"), ("P01", "P03")]
    mix = S.BlendedDataset(cohort, ["P01", "P02", "P03"], None, modalities=["FD", "CT"], seed=5,
                           method="mixup", pairs=pairs)
    assert len(mix) == 2 and [mix.pair_of(i)[0] for i in range(2)] == pairs
    item = mix[1]
    lam = item["provenance"]["lam"]
    assert 0.0 <= lam <= 1.0 and item["provenance"]["mask"] is None
    a, _ = read_array(cohort.path("P01", "FD"))
    b, _ = read_array(cohort.path("P03", "FD"))
    np.testing.assert_allclose(item["FD"].numpy(), lam * a + (1 - lam) * b, atol=1e-5)
    np.testing.assert_allclose(item["CT"].numpy(), 2 * item["FD"].numpy() - 1, atol=1e-4)  # one weight
    np.testing.assert_array_equal(mix[1]["FD"].numpy(), item["FD"].numpy())  # seeded by (seed, index)
    cut = S.BlendedDataset(cohort, ["P01", "P02", "P03"], None, modalities=["FD", "CT"], seed=5,
                           method="cutmix", pairs=pairs)
    y = cut[1]["FD"].numpy()
    from_a, from_b = np.isclose(y, a), np.isclose(y, b)
    assert (from_a | from_b).all() and from_a.any() and from_b.any()
    np.testing.assert_allclose(cut[1]["CT"].numpy(), 2 * y - 1, atol=1e-4)  # the same box for all
    with pytest.raises(InputError, match="pair"):
        S.BlendedDataset(cohort, ["P01", "P02"], None, method="mixup", pairs=[("P01", "P04")])
    with pytest.raises(InputError, match="mask"):
        S.BlendedDataset(cohort, ["P01", "P02"], None, method="naive")
    with pytest.raises(InputError, match="method"):
        S.BlendedDataset(cohort, ["P01", "P02"], None, method="smudge")


def test_on_the_fly_source_uses_the_pairs_synthesize_chooses(cohort, tmp_path):
    from RobustDeepLogic.data.on_the_fly import on_the_fly_source

    report = S.synthesize(cohort, tmp_path / "disk", ["complex"], count=4, seed=9,
                          patients=["P01", "P02", "P03"], levels=2)
    disk_pairs = sorted(tuple(Cohort.load(tmp_path / "disk").patient(s).parents) for s in report.subjects)
    src = on_the_fly_source(cohort, ["P03", "P01", "P02"], ["FD", "CT"], count=4, masks=["complex"],
                            levels=2, seed=9)
    assert sorted(src.parents(sid) for sid in src.ids) == disk_pairs
    first = src.ids[0]
    subject = src.load(first)
    assert subject.parents == src.parents(first) and set(subject.arrays) == {"FD", "CT"}
    on_disk = [s for s in report.subjects if tuple(Cohort.load(tmp_path / "disk").patient(s).parents)
               == subject.parents][0]
    fd, _ = read_array(tmp_path / "disk" / on_disk / "FD.nii.gz")
    np.testing.assert_allclose(subject.arrays["FD"], cohort.scaling_for("FD").to_scaled(fd), atol=1e-6)
    two = on_the_fly_source(cohort, ["P01", "P02", "P03"], ["FD"], count=5, masks=["complex", "simple"],
                            levels=2, seed=9)
    assert len(two.ids) == 5  # 3 pairs under both masks, 5 subjects in all
    assert len({two.parents(s) for s in two.ids}) == 3
    with pytest.raises(InputError, match="pairs"):
        on_the_fly_source(cohort, ["P01", "P02"], ["FD"], count=3, masks=["complex"], seed=9)
    with pytest.raises(InputError, match="no mask"):
        on_the_fly_source(cohort, ["P01", "P02"], ["FD"], count=2, masks=["complex"], method="mixup")
