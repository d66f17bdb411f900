"""The MRML glue (``RobustDeep/RobustDeepLib/mrml_*.py``) against real MRML classes.

Runs in ``.venv-mrml`` (``bash scripts/setup_mrml_env.sh``), which has the ``slicer-core`` wheel:
``.venv-mrml/bin/python -m pytest Testing/MRML -q``. In the main environment, which has no MRML,
the whole module is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel (.venv-mrml)")
if not hasattr(slicer, "vtkMRMLScene"):  # an unrelated package called 'slicer'
    pytest.skip("the importable 'slicer' is not slicer-core", allow_module_level=True)

import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402

MODULE_DIR = Path(__file__).resolve().parents[2] / "RobustDeep"
if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from RobustDeepLib import mrml_segmentations, mrml_tables, mrml_views, mrml_volumes  # noqa: E402


@pytest.fixture
def scene():
    return slicer.vtkMRMLScene()


def oblique(shape=(6, 7, 9), dtype=np.float32, seed=0) -> sitk.Image:
    """A ``[z, y, x]`` image with anisotropic spacing, offset origin and an oblique direction."""
    rng = np.random.default_rng(seed)
    image = sitk.GetImageFromArray((rng.random(shape) * 1000).astype(dtype))
    image.SetSpacing((1.3, 0.7, 2.2))
    image.SetOrigin((-12.5, 33.25, 101.0))
    rotation = sitk.VersorRigid3DTransform()
    rotation.SetRotation((0.3, -0.5, 0.81), 0.35)
    image.SetDirection(rotation.GetMatrix())
    return image


def matrix_of(node) -> np.ndarray:
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


# --------------------------------------------------------------------------------------------------
# Volumes
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint8])
def test_image_node_image_round_trip_is_exact(scene, dtype):
    image = oblique(dtype=dtype)
    node = mrml_volumes.add_volume_node(scene, image, "v")
    back = mrml_volumes.volume_node_to_image(node)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert sitk.GetArrayFromImage(back).dtype == dtype
    np.testing.assert_allclose(back.GetOrigin(), image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(back.GetSpacing(), image.GetSpacing(), rtol=1e-12)
    np.testing.assert_allclose(back.GetDirection(), image.GetDirection(), atol=1e-12)
    assert node.GetDisplayNode() is not None


def test_node_geometry_is_ras_of_the_lps_image(scene):
    image = oblique()
    node = mrml_volumes.add_volume_node(scene, image, "v")
    ijk_to_ras = matrix_of(node)
    for index in [(0, 0, 0), (8, 6, 5), (3, 1, 4)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(index))
        ras = ijk_to_ras @ np.array([*index, 1.0])
        np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-9)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_files_written_by_simpleitk_load_in_mrml_with_the_geometry_we_compute(scene, tmp_path, suffix):
    """Slicer's own reader (a storage node) and our conversion agree on every file format."""
    image = oblique(dtype=np.int16)
    path = tmp_path / f"v{suffix}"
    sitk.WriteImage(image, str(path))
    node = slicer.vtkMRMLScalarVolumeNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    np.testing.assert_allclose(matrix_of(node), mrml_volumes.ijk_to_ras_matrix(image), atol=1e-5)
    np.testing.assert_array_equal(mrml_volumes.array_from_volume_node(node), sitk.GetArrayFromImage(image))


def test_a_node_saved_by_mrml_reads_back_in_simpleitk_unchanged(scene, tmp_path):
    image = oblique()
    node = mrml_volumes.add_volume_node(scene, image, "v")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    path = tmp_path / "saved.nrrd"
    storage.SetFileName(str(path))
    assert storage.WriteData(node) == 1
    read = sitk.ReadImage(str(path))
    np.testing.assert_allclose(read.GetOrigin(), image.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(read.GetDirection(), image.GetDirection(), atol=1e-5)
    np.testing.assert_allclose(read.GetSpacing(), image.GetSpacing(), rtol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image))


def test_a_parent_linear_transform_moves_the_exported_image(scene):
    image = oblique()
    node = mrml_volumes.add_volume_node(scene, image, "v")
    transform = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(transform)
    shift = vtk.vtkMatrix4x4()
    shift.SetElement(0, 3, 5.0)  # 5 mm to the Right (RAS x)
    shift.SetElement(2, 3, -3.0)  # 3 mm Inferior
    transform.SetMatrixTransformToParent(shift)
    node.SetAndObserveTransformNodeID(transform.GetID())
    moved = mrml_volumes.volume_node_to_image(node)
    expected = np.array(image.GetOrigin()) + np.array([-5.0, 0.0, -3.0])  # in LPS
    np.testing.assert_allclose(moved.GetOrigin(), expected, atol=1e-9)
    np.testing.assert_allclose(moved.GetDirection(), image.GetDirection(), atol=1e-12)


def test_a_storage_node_lets_mrml_save_the_volume(scene, tmp_path):
    """Issue 14 item 11: a volume the engine read saves like any loaded data (through its storage node)."""
    image = oblique()
    node = mrml_volumes.add_volume_node(scene, image, "v")
    assert node.GetStorageNode() is None
    storage = mrml_volumes.add_storage_node(node)
    assert mrml_volumes.add_storage_node(node) is storage  # once
    assert storage.IsA("vtkMRMLVolumeArchetypeStorageNode") and storage.GetScene() is scene
    assert not storage.GetFileName()  # never pointed at an original
    storage.SetFileName(str(tmp_path / "saved.nrrd"))
    assert storage.WriteData(node) == 1
    saved = sitk.ReadImage(str(tmp_path / "saved.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(saved), sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(saved.GetOrigin(), image.GetOrigin(), atol=1e-6)


def test_an_empty_node_is_an_error(scene):
    node = slicer.vtkMRMLScalarVolumeNode()
    scene.AddNode(node)
    with pytest.raises(ValueError, match="no voxels"):
        mrml_volumes.volume_node_to_image(node)


# --------------------------------------------------------------------------------------------------
# Masks and segmentations
# --------------------------------------------------------------------------------------------------
def template_and_mask(scene):
    template = oblique(shape=(10, 12, 14))
    mask_array = np.zeros((10, 12, 14), np.uint8)
    mask_array[2:7, 3:9, 4:11] = 1
    mask = sitk.GetImageFromArray(mask_array)
    mask.CopyInformation(template)
    return mrml_volumes.add_volume_node(scene, template, "template"), mask, mask_array


def test_mask_to_segmentation_and_back_on_the_template_grid(scene):
    template_node, mask, mask_array = template_and_mask(scene)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    segment_id = mrml_segmentations.mask_to_segmentation(mask, segmentation, segment_name="left")
    assert segmentation.GetSegmentation().GetSegment(segment_id).GetName() == "left"
    out = mrml_segmentations.segmentation_to_mask(segmentation, template_node)
    assert out.GetPixelID() == sitk.sitkUInt8
    assert out.GetSize() == mask.GetSize()
    np.testing.assert_allclose(out.GetOrigin(), mask.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(out.GetDirection(), mask.GetDirection(), atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), mask_array)
    # The temporary labelmap nodes are gone.
    assert scene.GetNodesByClass("vtkMRMLLabelMapVolumeNode").GetNumberOfItems() == 0


def test_segments_are_united_and_a_soft_mask_is_cut_at_one_half(scene):
    template_node, mask, mask_array = template_and_mask(scene)
    soft = np.zeros(mask_array.shape, np.float32)
    soft[:, :, :5] = 0.4  # below one half: not in the segment
    soft[:, :, 10:] = 0.9
    soft_image = sitk.GetImageFromArray(soft)
    soft_image.CopyInformation(mask)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    mrml_segmentations.mask_to_segmentation(mask, segmentation, segment_name="a")
    mrml_segmentations.mask_to_segmentation(soft_image, segmentation, segment_name="b")
    assert segmentation.GetSegmentation().GetNumberOfSegments() == 2
    union = sitk.GetArrayFromImage(mrml_segmentations.segmentation_to_mask(segmentation, template_node))
    expected = ((mask_array > 0) | (soft >= 0.5)).astype(np.uint8)
    np.testing.assert_array_equal(union, expected)


def test_a_mask_is_resampled_onto_a_reference_of_another_grid(scene):
    template_node, mask, mask_array = template_and_mask(scene)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    mrml_segmentations.mask_to_segmentation(mask, segmentation)
    fine = sitk.Resample(mrml_volumes.volume_node_to_image(template_node), [28, 24, 20], sitk.Transform(),
                         sitk.sitkLinear, mask.GetOrigin(), [s / 2 for s in mask.GetSpacing()],
                         mask.GetDirection())
    fine_node = mrml_volumes.add_volume_node(scene, fine, "fine")
    out = mrml_segmentations.segmentation_to_mask(segmentation, fine_node)
    assert out.GetSize() == (28, 24, 20)
    np.testing.assert_allclose(out.GetSpacing(), fine.GetSpacing(), rtol=1e-9)
    # Twice the resolution along every axis: about 8 times the voxels.
    ratio = sitk.GetArrayFromImage(out).sum() / mask_array.sum()
    assert 5.0 < ratio < 11.0


def test_segments_are_exported_with_the_reference_geometrys_extent(scene, monkeypatch):
    """Issue 14 item 11: the labelmap Slicer exports is on the reference's grid, not the segments' box."""
    template_node, mask, mask_array = template_and_mask(scene)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    # The segment is imported on the box around the mask only (as painting makes it): its own extent
    # is smaller than the template's.
    box = sitk.RegionOfInterest(mask, [7, 6, 5], [4, 3, 2])
    mrml_segmentations.mask_to_segmentation(box, segmentation)
    real = slicer.vtkSlicerSegmentationsModuleLogic
    exported = []

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def ExportSegmentsToLabelmapNode(*args):
            ok = real.ExportSegmentsToLabelmapNode(*args)
            exported.append((args[4:5], args[2].GetImageData().GetDimensions()))
            return ok

    monkeypatch.setattr(slicer, "vtkSlicerSegmentationsModuleLogic", Spy())
    out = mrml_segmentations.segmentation_to_mask(segmentation, template_node)
    # Slicer's default mode is EXTENT_UNION_OF_EFFECTIVE_SEGMENTS (the segments' box); slicer-core 5.11
    # happens to give the reference's extent here either way, so the mode asked for is checked too.
    assert exported == [((slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,), tuple(mask.GetSize()))]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), mask_array)


def test_an_empty_mask_or_segmentation_is_an_error(scene):
    template_node, mask, mask_array = template_and_mask(scene)
    segmentation = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(segmentation)
    with pytest.raises(ValueError, match="no segments"):
        mrml_segmentations.segmentation_to_mask(segmentation, template_node)
    empty = sitk.Image(mask.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(mask)
    with pytest.raises(ValueError, match="empty"):
        mrml_segmentations.mask_to_segmentation(empty, segmentation)


# --------------------------------------------------------------------------------------------------
# Views, colours, tables, plots
# --------------------------------------------------------------------------------------------------
def test_slice_layers_are_set_in_every_view(scene):
    composites = []
    for _ in range(3):
        composite = slicer.vtkMRMLSliceCompositeNode()
        scene.AddNode(composite)
        composites.append(composite)
    background = mrml_volumes.add_volume_node(scene, oblique(), "bg")
    foreground = mrml_volumes.add_volume_node(scene, oblique(seed=1), "fg")
    assert mrml_views.set_slice_layers(scene, background=background, foreground=foreground,
                                       foreground_opacity=0.6) == 3
    for composite in composites:
        assert composite.GetBackgroundVolumeID() == background.GetID()
        assert composite.GetForegroundVolumeID() == foreground.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.6)


def test_diverging_colour_table_is_blue_white_red_and_made_once(scene):
    color = mrml_views.diverging_color_node(scene)
    n = color.GetNumberOfColors()
    rgba = [0.0] * 4
    color.GetColor(0, rgba)
    assert rgba[2] > 0.5 and rgba[0] < 0.1  # blue
    color.GetColor(n - 1, rgba)
    assert rgba[0] > 0.6 and rgba[2] < 0.2  # red
    color.GetColor(n // 2, rgba)
    assert min(rgba[:3]) > 0.95  # white around zero
    assert mrml_views.diverging_color_node(scene) is color


def _slice_rgba(scene, volume_node):
    """What Slicer's own slice pipeline (vtkMRMLSliceLogic, background layer) makes of a volume: the
    RGBA image of the axial slice through its middle, fitted to the view."""
    from vtk.util.numpy_support import vtk_to_numpy

    slicer.vtkMRMLSliceNode.AddDefaultSliceOrientationPresets(scene, True)
    logic = slicer.vtkMRMLSliceLogic()
    logic.SetMRMLScene(scene)
    node = logic.AddSliceNode("Red")
    node.SetOrientation("Axial")
    logic.GetSliceCompositeNode().SetBackgroundVolumeID(volume_node.GetID())
    node.SetDimensions(70, 60, 1)
    logic.FitSliceToBackground()
    logic.SnapSliceOffsetToIJK()
    producer = logic.GetBackgroundLayer().GetImageDataConnection().GetProducer()
    producer.Update()
    image = producer.GetOutputDataObject(0)
    width, height, _ = image.GetDimensions()
    return vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)


def test_bias_map_is_transparent_outside_the_head_in_slicers_slice_pipeline(scene):
    """Issue 13: the review's bias map shows the reference through outside the head, and a bias of 0
    inside the head (a perfect voxel) as opaque white. Asked of Slicer's slice pipeline itself."""
    from RobustDeepLib.bias import bias_for_display

    bias = np.full((5, 6, 7), 5.0, np.float32)
    bias[:, :, 3] = 0.0  # perfect voxels inside the head
    head = np.ones(bias.shape, np.uint8)
    head[:, :, :2] = 0  # outside the head: the engine's map holds 0 there too
    bias[:, :, :2] = 0.0
    bias_image, head_image = sitk.GetImageFromArray(bias), sitk.GetImageFromArray(head)
    shown = bias_for_display(bias_image, head_image)
    assert np.isnan(sitk.GetArrayFromImage(shown)[:, :, :2]).all()
    assert np.isfinite(sitk.GetArrayFromImage(shown)[:, :, 2:]).all()

    node = mrml_volumes.add_volume_node(scene, shown, "bias")
    color = mrml_views.diverging_color_node(scene)
    mrml_views.show_bias_map(node, color, window=10.0)
    rgba = _slice_rgba(scene, node)
    row = rgba[rgba.shape[0] // 2]
    opaque = row[:, 3] == 255
    assert (row[:, 3][~opaque] == 0).all()  # fully transparent or fully opaque
    # 2 of the 7 columns are outside the head: about 2/7 of the row is transparent.
    assert 0.2 < (~opaque).mean() < 0.37, (~opaque).mean()
    white = opaque & (row[:, :3].min(axis=1) > 240)
    red = opaque & (row[:, 0] > row[:, 2] + 40)
    assert white.any() and red.any()  # 0 % white and +5 % reddish, both shown
    # Without the threshold the NaN voxels would be painted opaque: the threshold is what hides them.
    other = slicer.vtkMRMLScene()
    plain = mrml_volumes.add_volume_node(other, shown, "bias")
    mrml_views.show_bias_map(plain, mrml_views.diverging_color_node(other), window=10.0,
                             transparent_outside=False)
    assert (_slice_rgba(other, plain)[rgba.shape[0] // 2][:, 3] == 255).all()
    with pytest.raises(ValueError, match="odd"):
        mrml_views.diverging_color_node(slicer.vtkMRMLScene(), size=256)


def test_bias_map_display_is_windowed_symmetrically(scene):
    node = mrml_volumes.add_volume_node(scene, oblique(), "bias")
    color = mrml_views.diverging_color_node(scene)
    mrml_views.show_bias_map(node, color, window=10.0)
    display = node.GetDisplayNode()
    assert display.GetColorNodeID() == color.GetID()
    assert not display.GetAutoWindowLevel()
    assert display.GetWindow() == pytest.approx(20.0)
    assert display.GetLevel() == pytest.approx(0.0)


def test_table_node_round_trip_keeps_numbers_and_text(scene):
    node = mrml_tables.table_node(scene, "metrics", ["metric", "value"], [["RMSE", 0.25], ["PSNR", 31.5]])
    assert node.GetNumberOfRows() == 2
    names, rows = mrml_tables.table_rows(node)
    assert names == ["metric", "value"]
    assert rows == [["RMSE", 0.25], ["PSNR", 31.5]]
    mrml_tables.table_node(scene, "metrics", ["a"], [[1.0]], node=node)  # refilled in place
    assert mrml_tables.table_rows(node) == (["a"], [[1.0]])


def test_joint_histogram_chart_has_points_and_the_fit_line(scene):
    x = np.linspace(0.0, 10.0, 50)
    chart = mrml_tables.scatter_fit_chart(scene, x, 1.05 * x + 0.2, slope=1.05, intercept=0.2)
    assert chart.GetNumberOfPlotSeriesNodes() == 2
    points = chart.GetNthPlotSeriesNode(0)
    line = chart.GetNthPlotSeriesNode(1)
    assert points.GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter
    assert points.GetLineStyle() == slicer.vtkMRMLPlotSeriesNode.LineStyleNone
    # Issue 14 item 4: a PlotTypeLine series ignores its X column (it plots against the row index),
    # so the fit is a scatter series drawn with a solid line, over the points' X range.
    assert line.GetPlotType() == slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter
    assert line.GetLineStyle() == slicer.vtkMRMLPlotSeriesNode.LineStyleSolid
    assert line.GetMarkerStyle() == slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone
    assert line.GetXColumnName() == points.GetXColumnName() != ""
    _, rows = mrml_tables.table_rows(line.GetTableNode())
    assert rows == [[0.0, pytest.approx(0.2)], [10.0, pytest.approx(10.7)]]
    assert points.GetTableNode().GetNumberOfRows() == 50
    with pytest.raises(ValueError):
        mrml_tables.scatter_fit_chart(scene, x, x[:-1], slope=1.0, intercept=0.0)


def test_the_glue_imports_in_a_program_without_slicer_s_application(tmp_path):
    """Shared with RobustDeep Studio (trame-slicer on slicer-core): the ``mrml_*`` glue imports from the
    module's folder with only slicer-core, pulling in neither Qt nor Slicer's GUI utilities."""
    import subprocess

    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import numpy, SimpleITK as sitk, vtk, vtk.util.numpy_support, slicer\n"
        "before = set(sys.modules)\n"
        "from RobustDeepLib import mrml_segmentations, mrml_tables, mrml_views, mrml_volumes\n"
        "new = sorted(m for m in set(sys.modules) - before if not m.startswith('RobustDeepLib'))\n"
        "scene = slicer.vtkMRMLScene()\n"
        "node = mrml_volumes.add_volume_node(scene, sitk.Image([4, 5, 6], sitk.sitkFloat32), 'v')\n"
        "bad = [m for m in ('qt', 'ctk', 'PythonQt', 'RobustDeep') if m in sys.modules]\n"
        "print(','.join(new + bad) or 'clean', node.GetClassName())\n" % str(MODULE_DIR)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    # Nothing beyond slicer-core, vtk, SimpleITK and numpy (and the standard library's typing helpers).
    assert out.stdout.split()[-2:] == ["clean", "vtkMRMLScalarVolumeNode"], out.stdout
