"""Training: the loss falls, resuming equals an uninterrupted run, no leakage across folds, configs."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.training.runs import load_checkpoint, load_run, read_history
from RobustDeepLogic.training.loop import train_run

from test_datasets import make_tiny_cohort

TINY = dict(folds=2, window=[16, 16], widths=[4, 4, 4], slices_per_subject=4, test_ids=["P07"],
            tensorboard=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    return make_tiny_cohort(root, n=8, synthetic_pairs=[("S01", "P00", "P01"), ("S02", "P00", "P07"),
                                                        ("S03", "P02", "P03")])


def test_training_lowers_the_loss_and_writes_the_run(cohort, tmp_path):
    run = tmp_path / "run"
    out = train_run(cohort.root, run, {**TINY, "fold": 0, "epochs": 4, "lr": 3e-3,
                                       "slices_per_subject": 8})
    rows = read_history(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < 0.7 * rows[0]["train_loss"]
    assert all(r["val_rmse"] is not None and np.isfinite(r["val_psnr"]) for r in rows)
    with open(run / "history.csv") as fh:
        assert next(csv.reader(fh))[:6] == ["epoch", "step", "train_loss", "val_rmse", "val_psnr",
                                           "val_ssim"]
    info = load_run(run)
    assert info.inputs == ["LD"] and info.target == "FD"
    assert info.scaling["FD"]["scale"] == 15.0 and info.window == [16, 16]
    assert info.network["widths"] == [4, 4, 4] and info.network["in_channels"] == 1
    assert (run / "fold0" / "best.pt").is_file() and (run / "fold0" / "last.pt").is_file()
    assert not (run / "fold1").exists()
    best = load_checkpoint(run / "fold0" / "best.pt")
    assert best["best"]["val_rmse"] == min(r["val_rmse"] for r in rows)
    assert out["folds"][0]["epoch"] == 4


def test_resume_gives_the_same_result(cohort, tmp_path):
    cfg = {**TINY, "fold": 1, "epochs": 3}
    train_run(cohort.root, tmp_path / "a", cfg)

    class Interrupt(Exception):
        pass

    def stop(fold, epoch, row):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(cohort.root, tmp_path / "b", cfg, on_epoch_end=stop)
    assert load_checkpoint(tmp_path / "b" / "fold1" / "last.pt")["epoch"] == 1
    train_run(cohort.root, tmp_path / "b", cfg)
    a = load_checkpoint(tmp_path / "a" / "fold1" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "fold1" / "last.pt")
    assert a["step"] == b["step"] and b["epoch"] == 3
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    ha, hb = read_history(tmp_path / "a"), read_history(tmp_path / "b")
    assert [r["train_loss"] for r in ha] == [r["train_loss"] for r in hb]
    assert [r["val_rmse"] for r in ha] == [r["val_rmse"] for r in hb]


def test_a_finished_fold_is_not_loaded_again_but_more_epochs_continue_it(cohort, tmp_path, monkeypatch):
    from RobustDeepLogic.training import loop as train_module

    cfg = {**TINY, "fold": 0, "epochs": 1}
    first = train_run(cohort.root, tmp_path / "r", cfg)
    real_windows = train_module.WindowDataset
    built = []

    def windows_spy(*args, **kwargs):
        built.append(1)
        return real_windows(*args, **kwargs)

    monkeypatch.setattr(train_module, "WindowDataset", windows_spy)
    again = train_run(cohort.root, tmp_path / "r", cfg)  # finished: returns without indexing a subject
    assert built == [] and again["folds"][0] == first["folds"][0]
    more = train_run(cohort.root, tmp_path / "r", {**cfg, "epochs": 2})  # asked for more: it continues
    assert built == [1] and more["folds"][0]["epoch"] == 2
    assert [r["epoch"] for r in read_history(tmp_path / "r")] == [1, 2]


def test_resume_refuses_a_changed_configuration(cohort, tmp_path):
    train_run(cohort.root, tmp_path / "r", {**TINY, "fold": 0, "epochs": 1})
    with pytest.raises(InputError, match="different configuration"):
        train_run(cohort.root, tmp_path / "r", {**TINY, "fold": 0, "epochs": 1, "widths": [4, 4, 8]})


def test_fixed_steps_mode(cohort, tmp_path):
    # fold 0: 3 training patients x 4 slices / batch 2 = 6 steps per epoch; 8 steps end in epoch 2
    train_run(cohort.root, tmp_path / "s", {**TINY, "fold": 0, "steps": 8, "batch_size": 2})
    rows = read_history(tmp_path / "s")
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 6), (2, 8)]


def test_no_leakage_across_folds(cohort, tmp_path, monkeypatch):
    """Every fold is trained, on exactly its training patients and the synthetic subjects whose
    parents are all among them, and validated on exactly its validation patients."""
    from RobustDeepLogic.cohort.folds import FoldPlan
    from RobustDeepLogic.training import loop as train_module

    trained, validated = {}, {}
    real_windows, real_validation = train_module.WindowDataset, train_module.validation_volumes

    def windows_spy(source, ids, *args, seed, **kwargs):
        fold = (seed - TINY.get("seed", 0)) // 1000  # train_fold seeds fold k's windows with seed + 1000 k
        assert fold not in trained
        trained[fold] = list(ids)
        return real_windows(source, ids, *args, seed=seed, **kwargs)

    def validation_spy(source, ids, *args, **kwargs):
        validated[len(validated)] = list(ids)  # folds are trained in order
        return real_validation(source, ids, *args, **kwargs)

    monkeypatch.setattr(train_module, "WindowDataset", windows_spy)
    monkeypatch.setattr(train_module, "validation_volumes", validation_spy)
    train_run(cohort.root, tmp_path / "leak", {**TINY, "epochs": 1, "synthetic": True,
                                               "slices_per_subject": 1})
    plan = FoldPlan.from_dict(load_run(tmp_path / "leak").folds)
    # the plan: P07 held out (test_ids), the other seven split into two disjoint folds
    development = {f"P{i:02d}" for i in range(7)}
    assert plan.test == ("P07",) and plan.k == 2
    assert set(plan.folds[0]) | set(plan.folds[1]) == development
    assert not set(plan.folds[0]) & set(plan.folds[1])
    parents = {"S01": {"P00", "P01"}, "S02": {"P00", "P07"}, "S03": {"P02", "P03"}}
    assert sorted(trained) == [0, 1] and sorted(validated) == [0, 1]  # every fold trained
    for fold in (0, 1):
        validation = set(plan.folds[fold])
        training = development - validation  # built here, not asked of the plan
        synthetic = {sid for sid, ps in parents.items() if ps <= training}
        assert sorted(trained[fold]) == sorted(training | synthetic)
        assert sorted(validated[fold]) == sorted(validation)
        used = set(trained[fold])
        assert not used & (validation | {"P07"})
        assert not set().union(*(parents.get(sid, {sid}) for sid in used)) & (validation | {"P07"})
        assert "S02" not in used  # P07 is a test patient


def test_an_extra_source_with_held_out_parents_is_refused(cohort, tmp_path):
    from RobustDeepLogic.data.sources import CohortSource

    def factory(fold, training_ids):
        return _Renamed(CohortSource(cohort, ["P07"], ["FD", "LD"]), "otf-")  # P07 is held out

    with pytest.raises(InputError, match="leak"):
        train_run(cohort.root, tmp_path / "x", {**TINY, "fold": 0, "epochs": 1}, extra_source=factory)


class _Renamed:
    """A source whose ids are prefixed (so that they do not collide with the cohort's)."""

    def __init__(self, source, prefix):
        self.source, self.prefix = source, prefix
        self.ids = [prefix + i for i in source.ids]

    def parents(self, sid):
        return self.source.parents(sid[len(self.prefix):])

    def load(self, sid):
        return self.source.load(sid[len(self.prefix):])


def test_scenario_checks_the_cohort_space(cohort, tmp_path):
    with pytest.raises(InputError, match="native"):
        train_run(cohort.root, tmp_path / "pu", {**TINY, "scenario": "PU", "epochs": 1})


def test_multi_input_task_declared_in_config(cohort, tmp_path):
    cfg = {**TINY, "fold": 0, "epochs": 1, "task": "pet2ct",
           "tasks": {"pet2ct": {"inputs": ["FD", "T1"], "target": "CT"}}}
    train_run(cohort.root, tmp_path / "t", cfg)
    info = load_run(tmp_path / "t")
    assert info.inputs == ["FD", "T1"] and info.network["in_channels"] == 2
    assert info.scaling["CT"] == {"scale": 3000.0, "offset": -1000.0, "unit": "HU"}


def test_cli_train_with_json_progress(cohort, tmp_path):
    from RobustDeepLogic.cli.main import main

    code = main(["train", str(cohort.root), "--out", str(tmp_path / "cli"), "--folds", "2", "--fold", "0",
                 "--epochs", "1", "--window", "16", "16", "--widths", "4", "4", "4",
                 "--slices-per-subject", "2", "--test-ids", "P07", "--progress", "none"])
    assert code == 0
    assert (tmp_path / "cli" / "robustdeep-train.config.yaml").is_file()
    assert read_history(tmp_path / "cli")[0]["epoch"] == 1


@pytest.mark.slow
def test_distributed_training_on_cpu_with_two_processes(cohort, tmp_path):
    """DDP with gloo, started by torchrun: same command and config."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "RobustDeepLogic.cli", "train", str(cohort.root), "--out", str(tmp_path / "ddp"),
           "--folds", "2", "--fold", "0", "--epochs", "2", "--window", "16", "16", "--widths", "4", "4",
           "4", "--slices-per-subject", "4", "--test-ids", "P07", "--progress", "none", "--no-tensorboard"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = read_history(tmp_path / "ddp")
    assert [r["epoch"] for r in rows] == [1, 2]
    # 3 training patients x 4 slices = 12 windows over 2 ranks: 6 per rank, batch 5 -> 2 steps an epoch
    assert rows[-1]["step"] == 4
    ckpt = load_checkpoint(tmp_path / "ddp" / "fold0" / "last.pt")
    assert not any(k.startswith("module.") for k in ckpt["model"])


def test_on_the_fly_synthesis_from_the_config_trains_and_is_recorded(cohort, tmp_path):
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.patient import Patient
    from RobustDeepLogic.cohort.folds import FoldPlan

    cfg = {**TINY, "fold": 0, "epochs": 1, "synthetic": False,
           "on_the_fly": {"count": 3, "method": "cutmix", "seed": 4}}
    train_run(cohort.root, tmp_path / "otf", cfg)
    info = load_run(tmp_path / "otf")
    assert info.config["on_the_fly"]["method"] == "cutmix" and info.config["on_the_fly"]["count"] == 3
    rows = read_history(tmp_path / "otf")
    # fold 0 trains on its real patients (3 of the 6 development ones) + 3 blended subjects, 4 slices each
    plan = FoldPlan.from_dict(info.folds)
    n_windows = (len(plan.training(0)) + 3) * 4
    assert rows[-1]["step"] == -(-n_windows // 5)
    with pytest.raises(InputError, match="method"):
        train_run(cohort.root, tmp_path / "bad", {**cfg, "on_the_fly": {"count": 3, "method": "blur"}})
    with pytest.raises(InputError, match="masks"):
        train_run(cohort.root, tmp_path / "bad", {**cfg, "on_the_fly": {"count": 3, "method": "naive"}})
    native = Cohort.load(cohort.root)
    native.space = "native"
    native.root = tmp_path / "native"
    native.patients = [Patient(p.id, {m: str(cohort.path(p, m)) for m in p.modalities}) for p in native.patients
                       if not p.is_synthetic]
    native.save()
    with pytest.raises(InputError, match="registered"):
        train_run(native.root, tmp_path / "nat", cfg)


def test_validation_on_evenly_spaced_slices(cohort, tmp_path):
    from RobustDeepLogic.data.sources import CohortSource
    from RobustDeepLogic.data.windows import validation_volumes
    from RobustDeepLogic.network.model import build_network
    from RobustDeepLogic.training.validation import head_metrics, validate

    source = CohortSource(cohort, ["P03"], ["FD", "LD"])
    vols = validation_volumes(source, ["P03"], ["LD"], "FD", None)
    torch.manual_seed(0)
    net = build_network(in_channels=1, widths=[4, 4, 4])
    full = validate(net, vols, device=torch.device("cpu"))
    some = validate(net, vols, device=torch.device("cpu"), max_slices=3)
    zs = np.flatnonzero(vols[0].head.any(axis=(1, 2)))
    chosen = zs[np.unique(np.linspace(0, zs.size - 1, 3).round().astype(int))]
    from RobustDeepLogic.network.inference import predict_array

    pred = predict_array(net, vols[0].inputs, slices=chosen)
    expect = head_metrics(vols[0].target[chosen], pred[chosen], vols[0].head[chosen])
    assert some["rmse"] == pytest.approx(expect["rmse"], rel=1e-5)
    assert zs.size > 3 and some["rmse"] != pytest.approx(full["rmse"], rel=1e-9)


def _mr_constant(cohort, ids, modality):
    """The documented MR constant, computed here: median over ``ids`` of each 99.5th percentile > 0."""
    import SimpleITK as sitk

    values = []
    for pid in ids:
        arr = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort.path(cohort.patient(pid), modality))))
        values.append(np.percentile(arr[arr > 0], 99.5))
    return float(np.median(values))


def test_mr_constants_come_from_the_training_patients_only(tmp_path):
    import SimpleITK as sitk

    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.mr_constants import mr_scaling, store_mr_scaling
    from RobustDeepLogic.core.progress import Progress
    from RobustDeepLogic.training.plan import prepare
    from RobustDeepLogic.training.settings import _check_config

    cohort = make_tiny_cohort(tmp_path / "c", n=6)
    store_mr_scaling(cohort)  # data-derived, as `cohort import` and `simulate` store them
    cohort.save()
    cfg = _check_config({**TINY, "task": "mr2ct", "test_ids": ["P05"]})
    development = ["P00", "P01", "P02", "P03", "P04"]

    def run_constants(name):
        plan, info = prepare(cohort.root, cfg, tmp_path / name, Progress())
        assert plan.cohort.scaling_for("T1").scale == info.scaling["T1"]["scale"]
        assert sorted(info.meta["mr_scaling"]["patients"]) == development
        return info.scaling["T1"]["scale"], info.scaling["T2"]["scale"]

    before = run_constants("a")
    assert before[0] == pytest.approx(_mr_constant(cohort, development, "T1"), rel=1e-6)
    assert before[1] == pytest.approx(_mr_constant(cohort, development, "T2"), rel=1e-6)
    # the test patient's MR becomes 50 times brighter, and the manifest's constants follow it ...
    for m in ("T1", "T2"):
        path = cohort.path(cohort.patient("P05"), m)
        image = sitk.ReadImage(str(path))
        bright = sitk.GetImageFromArray(sitk.GetArrayFromImage(image) * 50.0)
        bright.CopyInformation(image)
        sitk.WriteImage(bright, str(path))
    cohort = Cohort.load(cohort.root)
    manifest_before = cohort.scaling["T1"].scale
    store_mr_scaling(cohort)
    cohort.save()
    assert cohort.scaling["T1"].scale != manifest_before
    # ... but the run's constants do not move
    assert run_constants("b") == before
    # a manifest split marks the test patient: the cohort's own constants leave it out
    cohort.patient("P05").split = "test"
    assert mr_scaling(cohort)["T1"].scale == pytest.approx(_mr_constant(cohort, development, "T1"),
                                                         rel=1e-6)


def test_a_hand_written_mr_constant_is_kept(tmp_path):
    from RobustDeepLogic.core.progress import Progress
    from RobustDeepLogic.training.plan import prepare
    from RobustDeepLogic.training.settings import _check_config

    cohort = make_tiny_cohort(tmp_path / "c", n=6)  # T1 = T2 = 4.0, written by hand (no record)
    cfg = _check_config({**TINY, "task": "mr2ct", "test_ids": ["P05"]})
    _, info = prepare(cohort.root, cfg, tmp_path / "r", Progress())
    assert info.scaling["T1"]["scale"] == 4.0 and "mr_scaling" not in info.meta


def test_validation_metrics_cover_exactly_the_evaluated_head(tmp_path):
    """Training's validation region is evaluate's default head mask of the same reference, voxel for
    voxel, so a known prediction scores the same RMSE, PSNR and global SSIM in both."""
    import SimpleITK as sitk

    from RobustDeepLogic.cohort.scaling import Scaling
    from RobustDeepLogic.data.sources import CohortSource
    from RobustDeepLogic.data.windows import validation_volumes
    from RobustDeepLogic.evaluate.cases import Case
    from RobustDeepLogic.evaluate.evaluation import evaluate_case
    from RobustDeepLogic.training.validation import validate

    cohort = make_tiny_cohort(tmp_path / "c", n=2)
    ref_path = cohort.path(cohort.patient("P01"), "FD")
    # the input reaches beyond the target's head: a region of any other rule would show it
    ld = sitk.ReadImage(str(cohort.path(cohort.patient("P01"), "LD")))
    arr = sitk.GetArrayFromImage(ld)
    arr[:, :4, :] = 1.0
    wide = sitk.GetImageFromArray(arr)
    wide.CopyInformation(ld)
    sitk.WriteImage(wide, str(cohort.path(cohort.patient("P01"), "LD")))
    vol = validation_volumes(CohortSource(cohort, ["P01"], ["FD", "LD"]), ["P01"], ["LD"], "FD")[0]

    net = torch.nn.Conv2d(1, 1, 1)  # a known map: prediction = 0.7 * LD + 0.01 (scaled)
    with torch.no_grad():
        net.weight.fill_(0.7)
        net.bias.fill_(0.01)
    val = validate(net, [vol], device="cpu", channels_last=False)

    pred = sitk.GetImageFromArray((0.7 * arr / 15.0 + 0.01) * 15.0)  # the same map, in SUV
    pred.CopyInformation(ld)
    pred_path = tmp_path / "pred.nii.gz"
    sitk.WriteImage(pred, str(pred_path))
    result = evaluate_case(Case("ld2fd", "X", "P01", ref_path, pred_path, modality="FD"),
                           Scaling(15.0, 0.0, "SUV"), out_dir=tmp_path / "eval")
    evaluated = sitk.GetArrayFromImage(sitk.ReadImage(result.files["mask"])) > 0
    assert evaluated.any() and not evaluated.all()
    assert np.array_equal(vol.head, evaluated)
    row = next(r for r in result.rows if r["units"] == "scaled" and r["region"] == "head")
    assert val["rmse"] == pytest.approx(row["rmse"], rel=1e-5)
    assert val["psnr"] == pytest.approx(row["psnr"], rel=1e-5)
    assert val["ssim"] == pytest.approx(row["ssim_global"], rel=1e-5)


def test_missing_tensorboard_is_said_once_and_recorded(cohort, tmp_path, monkeypatch, caplog):
    import logging

    from RobustDeepLogic.core.progress import Progress

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import now fails

    class Events(Progress):
        def __init__(self):
            super().__init__()
            self.events = []

        def emit(self, event):
            self.events.append(event)

    events = Events()
    cfg = {**TINY, "epochs": 1, "slices_per_subject": 1, "tensorboard": True}
    train_run(cohort.root, tmp_path / "a", cfg, progress=events)  # both folds
    warnings = [e for e in events.events if e.get("event") == "log" and e.get("level") == "WARNING"]
    assert len(warnings) == 1
    assert "tensorboard" in warnings[0]["message"] and "robustdeep[tensorboard]" in warnings[0]["message"]
    record = load_run(tmp_path / "a").meta["tensorboard"]
    assert record["written"] is False and "torch.utils.tensorboard" in record["error"]
    assert not (tmp_path / "a" / "tensorboard").exists()
    # with a logger, the warning goes to it
    with caplog.at_level(logging.WARNING, logger="rd-test"):
        train_run(cohort.root, tmp_path / "b", {**cfg, "fold": 0}, log=logging.getLogger("rd-test"))
    assert [r.levelname for r in caplog.records if "robustdeep[tensorboard]" in r.getMessage()] == ["WARNING"]
    # turned off, nothing is said
    quiet = Events()
    train_run(cohort.root, tmp_path / "c", {**cfg, "fold": 0, "tensorboard": False}, progress=quiet)
    assert not [e for e in quiet.events if e.get("level") == "WARNING"]
    assert "tensorboard" not in load_run(tmp_path / "c").meta
