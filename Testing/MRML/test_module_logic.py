"""``RobustDeepLogic`` (the Slicer logic class of ``RobustDeep.py``) on a real MRML scene.

Runs in ``.venv-mrml``: slicer-core provides the MRML classes; the parts of Slicer that need the
application (``slicer.util``, ``slicer.app``, the Qt modules) are replaced by small stand-ins, so
only logic that works on the scene is exercised here. The widget, BRAINSFit and the slice views are
covered by the self-test in a real Slicer.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (.venv-mrml)")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the importable 'slicer' is not slicer-core", allow_module_level=True)

import SimpleITK as sitk  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _install_application_stand_ins() -> None:
    """What RobustDeep.py imports from Slicer's application layer, reduced to no-ops."""

    def module(name: str) -> types.ModuleType:
        m = types.ModuleType(name)
        sys.modules[name] = m
        return m

    class _Anything(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            return type(name, (), {"__init__": lambda self, *a, **k: None})

    for name in ("qt", "ctk"):
        sys.modules.setdefault(name, _Anything(name))
    i18n = module("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    pnw = module("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    pnw.Choice = pnw.WithinRange = type("Validator", (), {"__init__": lambda self, *a, **k: None})
    slm = module("slicer.ScriptedLoadableModule")
    for base in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic",
                 "ScriptedLoadableModuleTest"):
        setattr(slm, base, type(base, (), {"__init__": lambda self, *a, **k: None}))
    util = module("slicer.util")
    util.VTKObservationMixin = type("VTKObservationMixin", (), {})
    util.startupEnvironment = lambda: None
    slicer.util = util

    class App:
        temporaryPath = tempfile.mkdtemp(prefix="rd-mrml-")

        def processEvents(self) -> None:
            pass

    slicer.app = App()


@pytest.fixture(scope="module")
def RD():
    _install_application_stand_ins()
    spec = importlib.util.spec_from_file_location("RobustDeep", REPO / "RobustDeep" / "RobustDeep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["RobustDeep"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def logic(RD):
    slicer.mrmlScene = slicer.vtkMRMLScene()
    return RD.RobustDeepLogic()


def _oblique(shape=(6, 7, 8), seed=0) -> sitk.Image:
    image = sitk.GetImageFromArray(np.random.default_rng(seed).random(shape).astype(np.float32) * 10)
    image.SetSpacing((2.0, 2.5, 3.0))
    image.SetOrigin((-30.0, 12.0, 40.0))
    rotation = sitk.VersorRigid3DTransform()
    rotation.SetRotation((0.0, 0.3, 1.0), 0.4)
    image.SetDirection(rotation.GetMatrix())
    return image


@pytest.fixture
def cohort_dir(tmp_path) -> Path:
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.patient import Patient
    from RobustDeepLogic.io.volumes import write_volume

    cohort = Cohort(root=tmp_path / "cohort")
    for i in range(3):
        pid = f"P{i + 1}"
        mods = {}
        for m, seed in (("FD", i), ("CT", 10 + i), ("T1", 20 + i)):
            write_volume(_oblique(seed=seed), cohort.root / pid / f"{m}.nii.gz")
            mods[m] = f"{pid}/{m}.nii.gz"
        cohort.add(Patient(pid, mods))
    cohort.save()
    return cohort.root


def test_the_logic_class_and_the_engine_coexist(RD, logic):
    assert RD.rdengine is sys.modules["RobustDeepLogic"]
    assert RD.RobustDeepLogic.engine() is RD.rdengine
    assert logic.engineInfo().startswith("Engine ")


def test_patient_table_reports_modalities_and_missing_files(logic, cohort_dir):
    (cohort_dir / "P2" / "CT.nii.gz").unlink()
    columns, rows = logic.patientTable(cohort_dir)
    assert columns[:3] == ["patient", "kind", "split"] and columns[-1] == "status"
    by_id = {row[0]: dict(zip(columns, row)) for row in rows}
    assert sorted(by_id) == ["P1", "P2", "P3"]
    assert by_id["P1"]["FD"] == "yes" and by_id["P1"]["LD"] == "" and by_id["P1"]["status"] == "ok (native)"
    assert by_id["P2"]["CT"] == "missing" and by_id["P2"]["status"] == "missing CT"


def test_a_loaded_patient_has_the_files_geometry_and_tags(logic, cohort_dir):
    nodes = logic.loadPatient(cohort_dir, "P1")
    assert sorted(nodes) == ["CT", "FD", "T1"]
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    slicer.mrmlScene.AddNode(storage)
    storage.SetFileName(str(cohort_dir / "P1" / "FD.nii.gz"))
    reference = slicer.vtkMRMLScalarVolumeNode()
    slicer.mrmlScene.AddNode(reference)
    assert storage.ReadData(reference) == 1
    import vtk

    a, b = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    nodes["FD"].GetIJKToRASMatrix(a)
    reference.GetIJKToRASMatrix(b)
    np.testing.assert_allclose([[a.GetElement(r, c) for c in range(4)] for r in range(4)],
                               [[b.GetElement(r, c) for c in range(4)] for r in range(4)], atol=1e-5)
    assert nodes["CT"].GetAttribute("RobustDeep.patient") == "P1"
    assert nodes["CT"].GetAttribute("RobustDeep.modality") == "CT"
    # Issue 14 item 11: loaded volumes have storage nodes, so Slicer's Save offers them.
    for node in [*nodes.values(), logic.loadVolumeFile(cohort_dir / "P1" / "CT.nii.gz", "ct file")]:
        assert node.GetStorageNode() is not None and node.GetStorageNode().GetScene() is slicer.mrmlScene


def test_the_petct_family_follows_the_transform_and_mr_does_not(logic, cohort_dir):
    nodes = logic.loadPatient(cohort_dir, "P1")
    transform = logic.transformNodeFor(nodes["FD"])
    assert logic.transformNodeFor(nodes["FD"]) is transform  # one per volume
    assert sorted(logic.applyTransformToFamily(transform, nodes)) == ["CT", "FD"]
    assert nodes["CT"].GetTransformNodeID() == transform.GetID()
    assert nodes["T1"].GetTransformNodeID() is None


def test_brainsfit_gets_the_engines_rigid_options(logic, cohort_dir):
    nodes = logic.loadPatient(cohort_dir, "P1", ["FD", "CT"])
    transform = logic.transformNodeFor(nodes["FD"])
    params = logic.brainsFitParameters(nodes["CT"], nodes["FD"], transform, samplingPercentage=0.05,
                                       initializeTransformMode="useCenterOfHeadAlign")
    assert params["useRigid"] is True and params["useAffine"] is False
    assert params["fixedVolume"] == nodes["CT"].GetID() and params["movingVolume"] == nodes["FD"].GetID()
    assert params["linearTransform"] == transform.GetID()
    assert params["samplingPercentage"] == 0.05
    assert params["initializeTransformMode"] == "useCenterOfHeadAlign"


def test_masks_are_made_saved_and_loaded_on_the_template_grid(RD, logic, tmp_path):
    if not RD.rdlib.engine_has("masks"):
        pytest.skip("the engine has no masks module")
    from RobustDeepLogic.registration.template_grid import grid_image, template_grid
    from RobustDeepLib import mrml_volumes

    template = mrml_volumes.add_volume_node(slicer.mrmlScene, grid_image(template_grid(6.0)), "template")
    segmentation = logic.newMaskSegmentation(template)
    assert "simple" in logic.maskChoices()
    logic.makeMask("sphere", "centre=0,-18,10; radius=30", template, segmentation)
    logic.makeMask("simple", "", template, segmentation)  # replaces the sphere
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 1
    path = logic.saveMask(segmentation, template, tmp_path / "mask.nii.gz")
    saved = sitk.ReadImage(str(path))
    reference = mrml_volumes.volume_node_to_image(template)
    assert saved.GetSize() == reference.GetSize()
    np.testing.assert_allclose(saved.GetOrigin(), reference.GetOrigin(), atol=1e-5)
    values = sitk.GetArrayFromImage(saved)
    assert set(np.unique(values)) == {0, 1}
    # The engine's 'simple' preset takes the left hemisphere (x_MNI < 0) from parent 1.
    from RobustDeepLogic import masks
    from RobustDeepLogic.io.volumes import Grid

    expected = masks.mask_from_spec("simple", Grid.of(reference)) >= 0.5
    assert np.mean(values.astype(bool) == expected) > 0.99
    loaded = logic.newMaskSegmentation(template)
    logic.loadMask(path, loaded)
    assert loaded.GetSegmentation().GetNumberOfSegments() == 1
    np.testing.assert_array_equal(sitk.GetArrayFromImage(logic.maskImage(loaded, template)), values)


def test_the_qc_table_is_read_from_the_registration_output(logic, tmp_path):
    with open(tmp_path / "registration_qc.csv", "w", newline="") as f:
        csv.writer(f).writerows([["patient", "status", "dice"], ["P1", "ok", "0.93"], ["P2", "flagged", "0.7"]])
    columns, rows = logic.qcTable(tmp_path)
    assert columns == ["patient", "status", "dice"] and rows[1] == ["P2", "flagged", "0.7"]
    other = tmp_path / "elsewhere.csv"
    other.write_text("a,b\n1,2\n")
    assert logic.qcTable(tmp_path / "nowhere", {"outputs": {"qc": str(other)}}) == (["a", "b"], [["1", "2"]])


def test_an_engine_command_runs_in_its_own_process(logic, tmp_path):
    job = logic.runEngineCommand(["cohort", "check", str(tmp_path / "missing")], timeout=120)
    assert job.returncode == 2
    assert job.error["kind"] == "input" and job.error["file"] == str(tmp_path / "missing")
    with pytest.raises(RuntimeError, match="no 'nonsense' command"):
        logic.startEngineJob(["nonsense"])


def test_job_outputs_that_are_volumes_are_loaded(logic, cohort_dir):
    result = {"outputs": {"prediction": str(cohort_dir / "P1" / "FD.nii.gz"),
                          "log": str(cohort_dir / "manifest.json")}}
    nodes = logic.loadOutputs(result)
    assert len(nodes) == 1 and nodes[0].GetImageData() is not None


def test_blend_preview_makes_the_laplacian_and_naive_blends(RD, logic, tmp_path):
    pytest.importorskip("torch", reason="the engine's blending needs torch")
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.patient import Patient
    from RobustDeepLogic.io.volumes import write_volume
    from RobustDeepLib import mrml_volumes

    grid_ref = _oblique(shape=(12, 14, 16))
    cohort = Cohort(root=tmp_path / "registered", space="template")
    for i in range(2):
        image = _oblique(shape=(12, 14, 16), seed=i)
        write_volume(image, cohort.root / f"P{i}" / "FD.nii.gz")
        cohort.add(Patient(f"P{i}", {"FD": f"P{i}/FD.nii.gz"}))
    cohort.save()
    half = np.zeros((12, 14, 16), np.uint8)
    half[:, :, :8] = 1
    mask = sitk.GetImageFromArray(half)
    mask.CopyInformation(grid_ref)
    nodes = logic.blendPreview(cohort.root, "P0", "P1", "FD", mask, levels=2, naive=True)
    assert sorted(nodes) == ["A", "B", "laplacian", "naive"]
    a = mrml_volumes.array_from_volume_node(nodes["A"])
    naive = mrml_volumes.array_from_volume_node(nodes["naive"])
    np.testing.assert_allclose(naive[:, :, :8], a[:, :, :8], atol=1e-6)
    assert not np.allclose(mrml_volumes.array_from_volume_node(nodes["laplacian"]), naive)
    with pytest.raises(ValueError, match="two different patients"):
        logic.blendPreview(cohort.root, "P0", "P0", "FD", mask, levels=2)


def test_review_shows_a_windowed_bias_map_a_metrics_table_and_a_plot(RD, logic):
    if not RD.rdlib.engine_has("evaluate.metrics"):
        pytest.skip("the engine has no metrics module")
    from RobustDeepLib import mrml_tables, mrml_views, mrml_volumes

    reference = np.zeros((8, 10, 12), np.float32)
    reference[1:7, 2:8, 2:10] = 3.0
    reference[3:5, 4:6, 4:8] = 9.0  # two uptake levels: the fit has a slope to find
    ref_image = _oblique(shape=(8, 10, 12))
    ref = sitk.GetImageFromArray(reference)
    ref.CopyInformation(ref_image)
    pred = sitk.GetImageFromArray(reference * 0.92)
    pred.CopyInformation(ref_image)
    ref_node = mrml_volumes.add_volume_node(slicer.mrmlScene, ref, "FD reference")
    pred_node = mrml_volumes.add_volume_node(slicer.mrmlScene, pred, "FD prediction")
    review = logic.review(pred_node, ref_node, modality="FD", windowPercent=10.0)
    bias = mrml_volumes.array_from_volume_node(review["bias"])
    np.testing.assert_allclose(bias[reference > 0], -8.0, atol=1e-3)
    display = review["bias"].GetDisplayNode()
    assert display.GetWindow() == pytest.approx(20.0) and display.GetLevel() == pytest.approx(0.0)
    assert display.GetColorNodeID() == mrml_views.diverging_color_node(slicer.mrmlScene).GetID()
    names, rows = mrml_tables.table_rows(review["table"])
    values = {row[0]: row[1] for row in rows}
    assert values["fit slope (physical units)"] == pytest.approx(0.92, rel=1e-6)
    assert values["mean_rel_error_pct"] == pytest.approx(-8.0, abs=1e-3)
    assert review["chart"].GetNumberOfPlotSeriesNodes() == 2
    # The bias map has the reference's geometry.
    np.testing.assert_allclose(mrml_volumes.volume_node_to_image(review["bias"]).GetOrigin(), ref.GetOrigin(), atol=1e-9)
