"""MRML glue, volumes: volume nodes <-> SimpleITK images (RAS <-> LPS) for the RobustDeep module.

Everything here works on MRML nodes and a ``vtkMRMLScene`` and nothing else: no Qt, no
``slicer.util``, no ``slicer.app``. So it runs inside Slicer and, for tests, under the ``slicer-core``
wheel (``from slicer import vtkMRMLScene``), see ``Testing/MRML/``.

Geometry
--------
The engine's images are SimpleITK images: physical points in **LPS** millimetres, a direction matrix
whose columns are the LPS directions of the index axes, voxels ``[z, y, x]`` in numpy. Slicer's volume
nodes place voxels in **RAS**: ``RAS = F @ LPS`` with ``F = diag(-1, -1, 1)``. A voxel ``(i, j, k)``
is at ``origin + D @ diag(spacing) @ (i, j, k)`` in both, so converting flips the first two rows of the
origin and of the direction matrix and nothing else; the voxel buffer (x fastest, then y, then z) is
the same in VTK and in SimpleITK. :func:`image_to_volume_node` and :func:`volume_node_to_image` are
exact inverses (tested).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

import slicer

#: LPS <-> RAS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])

_SITK_TO_NUMPY = {
    sitk.sitkUInt8: np.uint8, sitk.sitkInt8: np.int8, sitk.sitkUInt16: np.uint16,
    sitk.sitkInt16: np.int16, sitk.sitkUInt32: np.uint32, sitk.sitkInt32: np.int32,
    sitk.sitkFloat32: np.float32, sitk.sitkFloat64: np.float64,
}


def ijk_to_ras_matrix(image: sitk.Image) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix of a 3D SimpleITK image (whose geometry is LPS).

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D image.

    Returns
    -------
    numpy.ndarray
        ``[4, 4]`` float: ``LPS_TO_RAS @ direction @ diag(spacing)`` and the origin in RAS (mm).

    Raises
    ------
    ValueError
        When the image is not 3D.
    """
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()}D")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    matrix = np.eye(4)
    matrix[:3, :3] = LPS_TO_RAS @ direction @ np.diag(spacing)
    matrix[:3, 3] = LPS_TO_RAS @ origin
    return matrix


def _to_vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def _from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=float)


def image_to_volume_node(image: sitk.Image, node: Any) -> Any:
    """Put a 3D scalar SimpleITK image (voxels and geometry) into a volume node; returns the node.

    The voxels keep the image's type (copied); the geometry is converted from LPS to RAS exactly.

    Parameters
    ----------
    image : SimpleITK.Image
        A 3D scalar image.
    node : vtkMRMLScalarVolumeNode
        The volume node (or a labelmap volume node) that receives it.

    Returns
    -------
    vtkMRMLScalarVolumeNode
        ``node``.

    Raises
    ------
    ValueError
        When the image is not 3D or not scalar.
    """
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError("image_to_volume_node needs a 3D scalar image")
    array = sitk.GetArrayFromImage(image)  # [z, y, x], a copy
    image_data = vtk.vtkImageData()
    image_data.SetDimensions(*[int(s) for s in image.GetSize()])
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(array).ravel(), deep=True)
    scalars.SetName("ImageScalars")
    image_data.GetPointData().SetScalars(scalars)
    node.SetAndObserveImageData(image_data)
    node.SetIJKToRASMatrix(_to_vtk_matrix(ijk_to_ras_matrix(image)))
    return node


def array_from_volume_node(node: Any) -> np.ndarray:
    """A ``[z, y, x]`` copy of a scalar volume node's voxels.

    Parameters
    ----------
    node : vtkMRMLScalarVolumeNode
        A scalar volume node.

    Returns
    -------
    numpy.ndarray
        ``[z, y, x]``, of the node's voxel type.

    Raises
    ------
    ValueError
        When the node is None or has no voxels, or its voxels are not scalars.
    """
    image_data = node.GetImageData() if node is not None else None
    if image_data is None:
        raise ValueError(f"volume node {getattr(node, 'GetName', lambda: None)()!r} has no voxels")
    if image_data.GetNumberOfScalarComponents() != 1:
        raise ValueError("only scalar volumes are supported")
    dims = image_data.GetDimensions()
    flat = numpy_support.vtk_to_numpy(image_data.GetPointData().GetScalars())
    return np.array(flat, copy=True).reshape(dims[2], dims[1], dims[0])


def world_ijk_to_ras(node: Any) -> np.ndarray:
    """The node's IJK-to-RAS matrix in world coordinates (a linear parent transform applied).

    Parameters
    ----------
    node : vtkMRMLScalarVolumeNode
        A volume node, perhaps under a transform.

    Returns
    -------
    numpy.ndarray
        ``[4, 4]`` float: voxel indices to world RAS (mm).

    Raises
    ------
    ValueError
        When the node is under a non-linear transform: harden it first.
    """
    m = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(m)
    matrix = _from_vtk_matrix(m)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise ValueError(
                f"volume {node.GetName()!r} is under a non-linear transform; harden the transform first"
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        matrix = _from_vtk_matrix(to_world) @ matrix
    return matrix


def volume_node_to_image(node: Any, dtype: Optional[Any] = None) -> sitk.Image:
    """A SimpleITK image (LPS geometry) of a scalar volume node, parent linear transform included.

    Parameters
    ----------
    node : vtkMRMLScalarVolumeNode
        A scalar volume node.
    dtype : numpy dtype, optional
        Cast the voxels to this type (e.g. ``np.float32``); None keeps the node's voxel type.

    Returns
    -------
    SimpleITK.Image
        The voxels with their geometry in world coordinates, LPS (mm).

    Raises
    ------
    ValueError
        When the node has no voxels, is not scalar, is under a non-linear transform or has a
        degenerate geometry.
    """
    array = array_from_volume_node(node)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    image = sitk.GetImageFromArray(array)
    matrix = world_ijk_to_ras(node)
    lps = LPS_TO_RAS @ matrix[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing <= 0):
        raise ValueError(f"volume {node.GetName()!r} has a degenerate geometry")
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (lps / spacing).ravel()])
    image.SetOrigin([float(v) for v in LPS_TO_RAS @ matrix[:3, 3]])
    return image


def add_volume_node(
    scene: Any, image: sitk.Image, name: str, *, labelmap: bool = False, node: Any = None
) -> Any:
    """A new (or the given) scalar or labelmap volume node in ``scene`` holding ``image``.

    A new node gets a name unique in the scene; a node without display nodes gets the default ones.

    Parameters
    ----------
    scene : vtkMRMLScene
        The scene.
    image : SimpleITK.Image
        A 3D scalar image (LPS geometry).
    name : str
        The new node's name (made unique in the scene).
    labelmap : bool, optional
        Make a labelmap volume node instead of a scalar volume node.
    node : vtkMRMLScalarVolumeNode, optional
        A node to fill instead of making one (``name`` and ``labelmap`` are then not used).

    Returns
    -------
    vtkMRMLScalarVolumeNode
        The node (a ``vtkMRMLLabelMapVolumeNode`` with ``labelmap``).

    Raises
    ------
    ValueError
        When the image is not 3D or not scalar.
    """
    if node is None:
        node = slicer.vtkMRMLLabelMapVolumeNode() if labelmap else slicer.vtkMRMLScalarVolumeNode()
        node.SetName(scene.GenerateUniqueName(name) if hasattr(scene, "GenerateUniqueName") else name)
        scene.AddNode(node)
    image_to_volume_node(image, node)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def add_storage_node(node: Any) -> Any:
    """Give a volume node in a scene its default storage node (once), so that it saves like any data.

    A volume read by the engine (not by Slicer's reader) has no storage node, and Slicer's *Save* does
    not offer to save it. No file name is set: the user chooses where it goes (an original is never
    overwritten by default).

    Parameters
    ----------
    node : vtkMRMLScalarVolumeNode
        A volume node (scalar or labelmap) in a scene.

    Returns
    -------
    vtkMRMLStorageNode
        Its storage node (the one it had, or a new ``vtkMRMLVolumeArchetypeStorageNode`` in the scene).

    Raises
    ------
    ValueError
        When the node is not in a scene.
    """
    scene = node.GetScene()
    if scene is None:
        raise ValueError(f"volume {node.GetName()!r} is not in a scene")
    storage = node.GetStorageNode()
    if storage is None:
        storage = node.CreateDefaultStorageNode()
        scene.AddNode(storage)
        storage.UnRegister(None)  # CreateDefaultStorageNode hands over a reference; the scene keeps one
        node.SetAndObserveStorageNodeID(storage.GetID())
    return storage


__all__ = [
    "LPS_TO_RAS",
    "add_storage_node",
    "add_volume_node",
    "array_from_volume_node",
    "ijk_to_ras_matrix",
    "image_to_volume_node",
    "volume_node_to_image",
    "world_ijk_to_ras",
]
