"""Prediction: the input's geometry and the target's units are kept; native space; export; CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.cohort.folds import FoldPlan
from RobustDeepLogic.network.model import NetworkSpec, build_network
from RobustDeepLogic.predict.ensemble import FoldAverage, load_models
from RobustDeepLogic.predict.export import export_model
from RobustDeepLogic.predict.volumes import predict_image, to_native
from RobustDeepLogic.training.runs import RunInfo, load_run, save_checkpoint, save_run
from RobustDeepLogic.io.volumes import Grid, image_from_array, write_volume


pytestmark = pytest.mark.usefixtures("one_torch_thread")


#: Fold k's network maps its inputs to ``a * input[channel] + b`` (scaled units): (a, b) per fold.
FOLD_MAPS = ((0.5, 0.1), (0.3, 0.05))

SCALING = {"LD": {"scale": 15.0, "offset": 0.0, "unit": "SUV"},
           "FD": {"scale": 15.0, "offset": 0.0, "unit": "SUV"},
           "T1": {"scale": 4.0, "offset": 0.0, "unit": "a.u."},
           "T2": {"scale": 4.0, "offset": 0.0, "unit": "a.u."},
           "CT": {"scale": 3000.0, "offset": -1000.0, "unit": "HU"}}


def known_map_network(spec: NetworkSpec, channel: int, a: float, b: float, shift: float = 10.0):
    """The project's network with weights set so that its output is ``a * x[channel] + b`` exactly.

    The first convolution copies input ``channel`` (+ ``shift``, so that the ReLU passes it) into its
    channel 0; every residual block is zero, hence the identity; the last convolution takes
    ``a * (that - shift) + b``. Only centre taps are non-zero, so borders are exact too.
    """
    net = build_network(spec)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.head.weight[0, channel, 1, 1] = 1.0
        net.head.bias[0] = shift
        net.tail.weight[0, 0, 1, 1] = a
        net.tail.bias[0] = b - a * shift
    return net


def make_run(run: Path, *, inputs=("LD",), target="FD", channel=None, scaling=None) -> Path:
    """A run folder with two fold networks of known maps (:data:`FOLD_MAPS`) of input ``channel``
    (default: the last input, so that the channel order matters)."""
    scaling = scaling or SCALING
    channel = len(inputs) - 1 if channel is None else channel
    spec = NetworkSpec(len(inputs), 1, (4, 4, 4))
    for fold, (a, b) in enumerate(FOLD_MAPS):
        net = known_map_network(spec, channel, a, b)
        save_checkpoint(run / f"fold{fold}" / "best.pt",
                        {"model": net.state_dict(), "network": spec.as_dict(), "epoch": 1, "step": 1})
    info = RunInfo(task={"name": "t", "inputs": list(inputs), "target": target},
                   scaling={m: scaling[m] for m in list(inputs) + [target]}, window=[16, 16],
                   network=spec.as_dict(), folds=FoldPlan(("P9",), (("P0",), ("P1",))).as_dict(),
                   space="template")
    save_run(run, info)
    return run


def expected(values, source="LD", target="FD", folds=(0, 1)):
    """The prediction, in the target's physical unit, of an input of ``values`` (physical units):
    the folds' maps averaged, in scaled units, by the documented constants."""
    src, tgt = SCALING[source], SCALING[target]
    x = (np.asarray(values, np.float64) - src["offset"]) / src["scale"]
    a = np.mean([FOLD_MAPS[f][0] for f in folds])
    b = np.mean([FOLD_MAPS[f][1] for f in folds])
    return (a * x + b) * tgt["scale"] + tgt["offset"]


def _physical_points(grid: Grid) -> np.ndarray:
    """``[z, y, x, 3]`` LPS points of every voxel: origin + direction @ (spacing * index)."""
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    idx = np.stack([x, y, z], axis=-1).astype(np.float64) * np.asarray(grid.spacing)
    return np.asarray(grid.origin) + idx @ np.asarray(grid.direction, np.float64).reshape(3, 3).T


def ramp(grid: Grid, offset: float = 2.0, slope=(0.05, 0.03, 0.02)) -> sitk.Image:
    """A volume linear in the physical (LPS mm) point: ``offset + slope . p``."""
    return image_from_array((offset + _physical_points(grid) @ np.asarray(slope)).astype(np.float32), grid)


def _oblique_image(shape=(10, 30, 26), value=None, seed=0) -> sitk.Image:
    rng = np.random.default_rng(seed)
    a = np.zeros(shape, np.float32)
    a[2:8, 6:24, 5:21] = 3.0 + rng.random((6, 18, 16)).astype(np.float32)  # a "head" in SUV
    if value is not None:
        a[:] = value
    c, s = np.cos(0.3), np.sin(0.3)
    direction = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
    return image_from_array(a, Grid(size=shape[::-1], spacing=(1.5, 2.0, 3.0), origin=(10.0, -20.0, 5.0),
                                    direction=direction))


def test_prediction_keeps_geometry_and_units(tmp_path):
    info, models = load_models(make_run(tmp_path / "run"))
    assert sorted(models) == [0, 1]
    image = _oblique_image()
    pred = predict_image(info, models, [image], crop_head=False)
    assert Grid.of(pred).matches(Grid.of(image))
    assert pred.GetDirection() == pytest.approx(image.GetDirection())
    a = sitk.GetArrayFromImage(pred)
    assert a.dtype == np.float32
    ld = sitk.GetArrayFromImage(image)
    np.testing.assert_allclose(a, expected(ld), rtol=1e-5, atol=1e-5)  # the mean of the folds, in SUV
    single = sitk.GetArrayFromImage(predict_image(info, models, [image], average=False, crop_head=False))
    np.testing.assert_allclose(single, expected(ld, folds=(0,)), rtol=1e-5, atol=1e-5)


def test_crop_head_leaves_the_background_value(tmp_path):
    info, models = load_models(make_run(tmp_path / "run"))
    image = _oblique_image(shape=(16, 30, 26))  # head in slices 2-7
    a = sitk.GetArrayFromImage(predict_image(info, models, [image], crop_head=True))
    ld = sitk.GetArrayFromImage(image)
    np.testing.assert_allclose(a[2:8], expected(ld[2:8]), rtol=1e-5, atol=1e-5)  # whole head slices
    assert np.all(a[:2] == 0.0) and np.all(a[8:] == 0.0)  # no head in these slices: 0 SUV


def test_hu_target_is_scaled_back(tmp_path):
    info, models = load_models(make_run(tmp_path / "run", inputs=("T1", "T2"), target="CT"))
    t1, t2 = _oblique_image(seed=1), _oblique_image(seed=2)
    a = sitk.GetArrayFromImage(predict_image(info, models, [t1, t2], crop_head=False))
    # the networks read the second input, T2 (a.u. / 4); the CT comes back in HU
    np.testing.assert_allclose(a, expected(sitk.GetArrayFromImage(t2), "T2", "CT"), rtol=1e-5, atol=1e-3)
    assert not np.allclose(a, expected(sitk.GetArrayFromImage(t1), "T2", "CT"), rtol=1e-3)


def test_inputs_on_another_grid_are_resampled_onto_the_reference(tmp_path):
    info, models = load_models(make_run(tmp_path / "run", inputs=("LD", "T1")))
    grid = Grid.of(_oblique_image())
    fine = Grid(size=tuple(2 * n for n in grid.size), spacing=tuple(s / 2 for s in grid.spacing),
                origin=grid.origin, direction=grid.direction)
    ld, t1 = ramp(grid, 1.0, (0.0, 0.0, 0.0)), ramp(fine)  # T1 on a finer grid, linear in space
    pred = predict_image(info, models, [ld, t1], crop_head=False)
    assert pred.GetSize() == ld.GetSize()
    # T1 at LD's voxel centres: the same linear function of the physical point (exact for linear
    # interpolation inside the fine grid, which ends half a fine voxel short of the last coarse centre)
    want = expected(sitk.GetArrayFromImage(ramp(grid)), "T1", "FD")
    got = sitk.GetArrayFromImage(pred)
    np.testing.assert_allclose(got[:-1, :-1, :-1], want[:-1, :-1, :-1], rtol=1e-4)


def test_wrong_number_of_inputs(tmp_path):
    info, models = load_models(make_run(tmp_path / "run", inputs=("LD", "T1", "T2")))
    with pytest.raises(InputError, match="3 input"):
        predict_image(info, models, [_oblique_image()])


def test_not_a_run_folder(tmp_path):
    with pytest.raises(InputError, match="run.json"):
        load_run(tmp_path)


def _blob(grid: Grid, center_mm) -> np.ndarray:
    image = image_from_array(np.zeros(grid.shape, np.float32), grid)
    idx = image.TransformPhysicalPointToContinuousIndex(center_mm)
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij")
    return np.exp(-((x - idx[0]) ** 2 + (y - idx[1]) ** 2 + (z - idx[2]) ** 2) / 4.0).astype(np.float32)


def _centroid_mm(image: sitk.Image) -> np.ndarray:
    a = sitk.GetArrayFromImage(image).astype(np.float64)
    z, y, x = np.meshgrid(*[np.arange(n) for n in a.shape], indexing="ij")
    w = a / a.sum()
    idx = [float((x * w).sum()), float((y * w).sum()), float((z * w).sum())]
    return np.array(image.TransformContinuousIndexToPhysicalPoint(idx))


def test_to_native_uses_the_inverse_of_the_resampling_transform():
    template = Grid(size=(40, 40, 30), spacing=(2.0, 2.0, 2.0), origin=(-40.0, -40.0, -30.0))
    native = Grid(size=(50, 50, 36), spacing=(2.0, 2.0, 2.0), origin=(-40.0, -50.0, -36.0))
    shift = (8.0, -6.0, 4.0)
    transform = sitk.TranslationTransform(3, shift)  # template point q -> native point q + shift
    q0 = (2.0, 4.0, -2.0)
    pred = image_from_array(_blob(template, q0), template)
    ref = image_from_array(np.zeros(native.shape, np.float32), native)
    back = to_native(pred, ref, transform)
    assert back.GetSize() == ref.GetSize() and back.GetOrigin() == ref.GetOrigin()
    np.testing.assert_allclose(_centroid_mm(back), np.add(q0, shift), atol=0.2)
    fwd = to_native(pred, ref, transform, direction="forward")
    np.testing.assert_allclose(_centroid_mm(fwd), np.subtract(q0, shift), atol=0.2)
    # consistency with registration: native -> template with the transform, then back
    native_img = image_from_array(_blob(native, np.add(q0, shift)), native)
    in_template = sitk.Resample(native_img, pred, transform, sitk.sitkLinear, 0.0)
    np.testing.assert_allclose(_centroid_mm(in_template), q0, atol=0.2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_export_matches_the_fold_average(tmp_path):
    run = make_run(tmp_path / "run")
    path = export_model(run, tmp_path / "exp" / "model.pt")
    extra = {"run.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["run.json"])["task"]["target"] == "FD"
    assert json.loads((tmp_path / "exp" / "model.pt.run.json").read_text())["scaling"]["FD"]["scale"] == 15
    x = torch.rand(2, 1, 24, 20)
    _, models = load_models(run, channels_last=False)
    torch.testing.assert_close(loaded(x), FoldAverage(list(models.values()))(x))
    torch.testing.assert_close(loaded(x), 0.4 * x + 0.075)  # the mean of the folds' maps, scaled


def test_onnx_export_needs_onnx(tmp_path):
    run = make_run(tmp_path / "run")
    try:
        import onnx  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="onnx"):
            export_model(run, tmp_path / "m.onnx")
        return
    path = export_model(run, tmp_path / "m.onnx")
    assert path.is_file() and path.stat().st_size > 1000


def _template_value_at(points: np.ndarray, grid: Grid) -> np.ndarray:
    """Continuous ``[..., 3]`` (x, y, z) indices of LPS ``points`` on ``grid`` (orthonormal direction)."""
    d = np.asarray(grid.direction, np.float64).reshape(3, 3)
    return ((points - np.asarray(grid.origin)) @ d) / np.asarray(grid.spacing)


def test_cli_predict_files_and_cohort(tmp_path):
    from RobustDeepLogic.cli.main import main
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.patient import Patient

    run = make_run(tmp_path / "run")
    image = _oblique_image()
    ld = sitk.GetArrayFromImage(image)
    write_volume(image, tmp_path / "in" / "LD.nrrd")
    code = main(["predict", str(run), str(tmp_path / "in" / "LD.nrrd"), "--out", str(tmp_path / "o"),
                 "--no-crop-head", "--progress", "none"])
    assert code == 0
    out = sitk.ReadImage(str(tmp_path / "o" / "LD_FD.nii.gz"))
    assert Grid.of(out).matches(Grid.of(image))
    np.testing.assert_allclose(sitk.GetArrayFromImage(out), expected(ld), rtol=1e-5, atol=1e-5)

    # a cohort and a patient id; NRRD output; the target's grid is the reference
    c = Cohort(root=tmp_path / "c", space="template")
    write_volume(image, tmp_path / "c" / "P1" / "LD.nii.gz")
    c.add(Patient("P1", {"LD": "P1/LD.nii.gz"}))
    c.save()
    code = main(["predict", str(run), str(tmp_path / "c"), "P1", "--out", str(tmp_path / "o2"),
                 "--format", "nrrd", "--progress", "none", "--fold", "1"])
    assert code == 0
    out = sitk.ReadImage(str(tmp_path / "o2" / "P1_FD.nrrd"))
    assert Grid.of(out).matches(Grid.of(image))
    assert sitk.GetArrayFromImage(out)[5, 15, 12] == pytest.approx(expected(ld[5, 15, 12], folds=(1,)),
                                                                   rel=1e-5)

    # back to native space with a transform file: template point q -> native point q + (3, 0, 0) mm,
    # so the native voxel at p shows the template prediction at p - (3, 0, 0)
    template = Grid.of(image)
    write_volume(ramp(template), tmp_path / "in" / "ramp.nii.gz")
    sitk.WriteTransform(sitk.TranslationTransform(3, (3.0, 0.0, 0.0)), str(tmp_path / "t.tfm"))
    native = _oblique_image(shape=(12, 32, 28))
    write_volume(native, tmp_path / "native.nii.gz")
    code = main(["predict", str(run), str(tmp_path / "in" / "ramp.nii.gz"), "--out", str(tmp_path / "o3"),
                 "--native-reference", str(tmp_path / "native.nii.gz"), "--transform",
                 str(tmp_path / "t.tfm"), "--progress", "none"])
    assert code == 0
    back = sitk.ReadImage(str(tmp_path / "o3" / "ramp_FD.nii.gz"))
    assert Grid.of(back).matches(Grid.of(native))
    source = _physical_points(Grid.of(native)) - np.array([3.0, 0.0, 0.0])
    idx = _template_value_at(source, template)
    inside = np.all((idx >= 0) & (idx <= np.asarray(template.size) - 1), axis=-1)
    assert inside.sum() > 1000
    want = expected(2.0 + source @ np.array([0.05, 0.03, 0.02]))
    np.testing.assert_allclose(sitk.GetArrayFromImage(back)[inside], want[inside], rtol=1e-4)
    # wrong input count is an input error (exit 2)
    assert main(["predict", str(run), str(tmp_path / "in" / "LD.nrrd"), str(tmp_path / "in" / "LD.nrrd"),
                 "--out", str(tmp_path / "o4"), "--progress", "none"]) == 2
