"""The steps of the RobustDeep self-test: each panel's logic on a tiny simulated cohort (made by the
engine in a separate process).

``RobustDeepTest`` (``RobustDeep.py``) has one test method, ``test_RobustDeep``, without arguments:
ctest (``slicer_add_python_unittest``, through ``slicer.testing.runUnitTest`` and unittest's loader)
runs every ``test_*`` method on its own, so the steps, which hand their results on (the cohort, the
template, the mask), are not test methods. :func:`run_steps` chains them; each ``check_<name>`` gets
the test case itself (``test``: its asserts, ``delayDisplay``, ``skipTest``, ``SUBJECTS``, its work
folder) and, where needed, the module's Slicer logic class (``logic_class``,
``RobustDeep.RobustDeepLogic``: by that name, this package means the engine).

Steps that download (the engine's packages, the template assets) run only when pip's package index
answers (:func:`network_available`); offline they are reported and the steps that need them skipped.
"""

import pathlib
import tempfile
from typing import Any, Optional, Tuple

import vtk

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

from RobustDeepLib import engine as rdlib

from RobustDeepLib import command_lines as rdcmd
from RobustDeepLib import package_index
from RobustDeepLib.process import describe_error


def network_available() -> bool:
    """True when pip's package index answers (the steps that download can run)."""
    return package_index.package_index_reachable()


def run_steps(test, logic_class, rdengine: Any, import_error: Optional[str]) -> None:
    """The whole self-test, step after step, each handing its results to the next.

    Offline, a missing engine dependency skips the test (nothing runs without the engine's packages)
    and missing template assets skip the steps on the template (registration, masks, blend).
    """
    online = network_available()
    if not check_dependencies(test, logic_class, online):
        test.skipTest("offline: the engine's Python packages are missing and cannot be installed")
    check_engine_reachable(test, logic_class, rdengine, import_error)
    check_job_protocol(test, logic_class)
    check_geometry_round_trip(test)
    cohort = check_patients(test, logic_class)
    if check_assets(test, logic_class, online):
        template = check_registration(test, logic_class, cohort)
        segmentation, _ = check_masks(test, logic_class, template)
        check_blend(test, logic_class, cohort, template, segmentation)
    check_review(test, logic_class)
    check_widget(test)


def workdir(test) -> pathlib.Path:
    """The test's work folder (a new temporary folder, made once)."""
    if not hasattr(test, "_tmp"):
        test._tmp = pathlib.Path(tempfile.mkdtemp(prefix="RobustDeepTest-"))
    return test._tmp


def check_assets(test, logic_class, online: bool) -> bool:
    """The engine's template assets, prepared once (``robustdeep assets`` needs the package registry).

    Returns False (and says so) when they are missing and the registry cannot be reached."""
    from RobustDeepLogic.registration.assets import assets_ready

    if assets_ready():
        return True
    if not online:
        test.delayDisplay("offline and no template assets: registration, masks and blend not tested")
        return False
    test.delayDisplay("preparing the template assets (robustdeep assets)")
    job = logic_class().runEngineCommand(rdcmd.assets_command(), timeout=900)
    test.assertEqual(job.returncode, 0, describe_error(job.error or {}))
    return True


def has(test, command: str) -> bool:
    """True when the engine has ``command``; otherwise says that that part is not tested."""
    if command in rdlib.engine_commands():
        return True
    test.delayDisplay(f"engine has no '{command}' command: that part is not tested")
    return False


def check_dependencies(test, logic_class, online: bool = True) -> bool:
    """The engine's packages are there (installed without asking when missing) and the device is known.

    Returns False, installing nothing, when packages are missing and the registry cannot be reached."""
    from RobustDeepLib.dependencies import missing_requirements

    logic = logic_class()
    if missing_requirements() or not logic.computeInfo(importTorch=False).torch_version:
        if not online:
            test.delayDisplay("offline: the engine's dependencies are missing and cannot be installed")
            return False
        test.delayDisplay("installing the engine's dependencies")
        logic.installDependencies(ask=False)
    test.assertEqual(missing_requirements(), [])
    info = logic.computeInfo(importTorch=True)
    test.assertIsNotNone(info.torch_version)
    test.assertIn(info.device, ("cpu", "cuda", "mps"))
    return True


def check_engine_reachable(test, logic_class, rdengine: Any, import_error: Optional[str]) -> None:
    """The engine is importable despite the logic class's name, and is the one beside us.

    ``rdengine`` and ``import_error``: ``RobustDeep.py``'s engine alias and the error of its import."""
    test.assertIsNotNone(rdengine, import_error)
    test.assertTrue(hasattr(rdengine, "__version__"))
    test.assertTrue(issubclass(logic_class, ScriptedLoadableModuleLogic))
    test.assertIsNot(logic_class, rdengine)
    test.assertTrue(logic_class().engineInfo().startswith("Engine"))


def check_job_protocol(test, logic_class) -> None:
    """A real engine command that fails on input gives an error event and exit status 2."""
    logic = logic_class()
    job = logic.runEngineCommand(rdcmd.cohort_check_command(workdir(test) / "no-such-cohort"), timeout=120)
    test.assertEqual(job.returncode, 2)
    test.assertIsNotNone(job.error)
    test.assertEqual(job.error["kind"], "input")


def check_geometry_round_trip(test) -> None:
    """An oblique LPS image goes into a node and back unchanged."""
    import numpy as np
    import SimpleITK as sitk
    from RobustDeepLib import mrml_volumes

    image = sitk.GetImageFromArray(np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6))
    image.SetSpacing((1.5, 2.0, 2.5))
    image.SetOrigin((10.0, -20.0, 30.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    node = mrml_volumes.add_volume_node(slicer.mrmlScene, image, "round trip")
    back = mrml_volumes.volume_node_to_image(node)
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    # Slicer's RAS: origin x and y flip sign.
    test.assertAlmostEqual(node.GetOrigin()[0], -10.0)
    test.assertAlmostEqual(node.GetOrigin()[1], 20.0)


def check_patients(test, logic_class) -> Optional[pathlib.Path]:
    """Simulate a tiny cohort in the background, list it, load one patient."""
    if not has(test, "simulate"):
        return None
    logic = logic_class()
    folder = workdir(test) / "cohort"
    job = logic.runEngineCommand(rdcmd.simulate_command(folder, subjects=test.SUBJECTS), timeout=600)
    test.assertEqual(job.returncode, 0, describe_error(job.error or {}))
    test.assertIsNotNone(job.last_progress)
    columns, rows = logic.patientTable(folder)
    test.assertEqual(len(rows), test.SUBJECTS)
    test.assertIn("FD", columns)
    nodes = logic.loadPatient(folder, rows[0][0])
    test.assertIn("FD", nodes)
    test.assertIsNotNone(nodes["FD"].GetImageData())
    return folder


def check_registration(test, logic_class, cohort: Optional[pathlib.Path]) -> Any:
    """The template loads; BRAINSFit registers one patient rigidly; the engine registers the cohort."""
    import numpy as np

    logic = logic_class()
    template = logic.loadTemplate(None)
    test.assertIsNotNone(template.GetImageData())
    if cohort is None:
        return template
    nodes = logic.loadPatient(cohort, logic.patientTable(cohort)[1][0][0], ["FD", "CT"])
    transform = logic.transformNodeFor(nodes["FD"])
    cliNode = logic.runBRAINSFit(template, nodes["FD"], transform, samplingPercentage=0.2)
    test.assertEqual(cliNode.GetStatusString(), "Completed")
    matrix = vtk.vtkMatrix4x4()
    transform.GetMatrixTransformToParent(matrix)
    rotation = np.array([[matrix.GetElement(r, c) for c in range(3)] for r in range(3)])
    test.assertAlmostEqual(float(np.linalg.det(rotation)), 1.0, places=3)  # rigid
    test.assertEqual(sorted(logic.applyTransformToFamily(transform, nodes)), ["CT", "FD"])
    logic.showOverTemplate(template, nodes["FD"])
    if has(test, "register"):
        out = workdir(test) / "registered"
        job = logic.runEngineCommand(rdcmd.register_command(cohort, out), timeout=900)
        test.assertEqual(job.returncode, 0, describe_error(job.error or {}))
        columns, rows = logic.qcTable(out, job.result)
        test.assertEqual(len(rows), test.SUBJECTS)
        test.registered = out
    return template


def check_masks(test, logic_class, template: Any) -> Tuple[Any, pathlib.Path]:
    """A mask made (preset or painted), saved on the template grid and loaded back."""
    import numpy as np
    import SimpleITK as sitk
    from RobustDeepLib import mrml_segmentations, mrml_volumes

    logic = logic_class()
    segmentation = logic.newMaskSegmentation(template)
    choices = logic.maskChoices()
    if "simple" in choices:
        logic.makeMask("simple", "", template, segmentation)
    else:  # no engine masks yet: a painted-like half-head mask
        image = mrml_volumes.volume_node_to_image(template)
        array = np.zeros(sitk.GetArrayFromImage(image).shape, np.uint8)
        array[:, :, : array.shape[2] // 2] = 1
        half = sitk.GetImageFromArray(array)
        half.CopyInformation(image)
        mrml_segmentations.mask_to_segmentation(half, segmentation, segment_name="half")
    test.assertEqual(segmentation.GetSegmentation().GetNumberOfSegments(), 1)
    path = workdir(test) / "mask.nii.gz"
    logic.saveMask(segmentation, template, path)
    test.assertTrue(path.is_file())
    saved = sitk.ReadImage(str(path))
    test.assertEqual(saved.GetSize(), mrml_volumes.volume_node_to_image(template).GetSize())
    test.assertGreater(int(sitk.GetArrayFromImage(saved).sum()), 0)
    loaded = logic.newMaskSegmentation(template)
    logic.loadMask(path, loaded)
    test.assertEqual(loaded.GetSegmentation().GetNumberOfSegments(), 1)
    return segmentation, path


def check_blend(test, logic_class, cohort: Optional[pathlib.Path], template: Any, segmentation: Any) -> None:
    """Laplacian and naive blends of two registered patients on the template grid."""
    import numpy as np
    from RobustDeepLib import mrml_volumes

    source = getattr(test, "registered", None)
    if source is None:
        test.delayDisplay("no registered cohort: blend preview not tested")
        return
    logic = logic_class()
    ids = [row[0] for row in logic.patientTable(source)[1]]
    mask = logic.maskImage(segmentation, template)
    nodes = logic.blendPreview(source, ids[0], ids[1], "FD", mask, levels=3, naive=True)
    laplacian = mrml_volumes.array_from_volume_node(nodes["laplacian"])
    naive = mrml_volumes.array_from_volume_node(nodes["naive"])
    a = mrml_volumes.array_from_volume_node(nodes["A"])
    b = mrml_volumes.array_from_volume_node(nodes["B"])
    test.assertEqual(laplacian.shape, a.shape)
    test.assertFalse(np.allclose(laplacian, naive))
    test.assertTrue(np.all(laplacian <= max(a.max(), b.max()) * 1.5 + 1e-3))
    logic.showBlends(nodes)


def check_review(test, logic_class) -> None:
    """A prediction 5 % above its reference gives a +5 % bias map, a fit of slope 1.05, a table."""
    import numpy as np
    import SimpleITK as sitk
    from RobustDeepLib import mrml_volumes

    reference = np.full((8, 10, 12), 2.0, np.float32)
    reference[2:6, 3:7, 3:9] = 6.0
    ref = sitk.GetImageFromArray(reference)
    pred = sitk.GetImageFromArray(reference * 1.05)
    refNode = mrml_volumes.add_volume_node(slicer.mrmlScene, ref, "reference")
    predNode = mrml_volumes.add_volume_node(slicer.mrmlScene, pred, "prediction")
    review = logic_class().review(predNode, refNode, windowPercent=10.0)
    bias = mrml_volumes.array_from_volume_node(review["bias"])
    test.assertAlmostEqual(float(np.median(bias)), 5.0, places=3)
    test.assertAlmostEqual(review["figures"]["fit"]["slope"], 1.05, places=3)
    test.assertGreater(review["table"].GetNumberOfRows(), 0)
    display = review["bias"].GetDisplayNode()
    test.assertAlmostEqual(display.GetWindow(), 20.0, places=6)
    test.assertAlmostEqual(display.GetLevel(), 0.0, places=6)
    logic_class.showReview(review)


def check_widget(test) -> None:
    """The panel loads and is bound to the parameter node."""
    slicer.util.selectModule("RobustDeep")
    widget = slicer.modules.RobustDeepWidget
    test.assertIsNotNone(widget._parameterNode)
    widget._parameterNode.blendLevels = 3
    test.assertEqual(widget.ui.blendLevelsSpinBox.value, 3)
    widget._parameterNode.task = "mr2ct"
    test.assertEqual(widget.ui.taskComboBox.currentText, "mr2ct")
