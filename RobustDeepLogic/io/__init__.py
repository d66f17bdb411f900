"""Reading and writing medical images with their geometry: volumes (NIfTI, NRRD, MetaImage),
DICOM series (PET to SUV, CT to HU), ITK transform files, and head masks of volumes.

Modules: :mod:`.volumes` (``Grid``, ``read_volume``, ``write_volume``), :mod:`.dicom` (reading a
series; writing PET, CT and MR series), :mod:`.units` (SUV and HU from DICOM), :mod:`.transforms`
(ITK ``.tfm`` / ``.h5`` files), :mod:`.headmask` (the head region of a volume), :mod:`.file_checks`
(what ITK does not check of a file: truncation, NIfTI spacing). Scaling to [0, 1] is
not here but in :mod:`RobustDeepLogic.cohort.scaling`.
"""

from RobustDeepLogic.io.dicom import (
    CT_SOP_CLASS,
    MR_SOP_CLASS,
    PET_SOP_CLASS,
    DicomSeries,
    read_dicom_series,
    write_ct_series,
    write_mr_series,
    write_pet_series,
)
from RobustDeepLogic.io.file_checks import check_volume_file, nifti_header_geometry
from RobustDeepLogic.io.headmask import HEAD_CLOSING, HEAD_THRESHOLD, head_mask
from RobustDeepLogic.io.transforms import read_transform, write_transform
from RobustDeepLogic.io.units import (
    SuvInfo,
    hu_from_dicom,
    read_physical,
    suv_factor,
    suv_from_dicom,
)
from RobustDeepLogic.io.volumes import (
    Grid,
    array_from_image,
    geometry_summary,
    image_from_array,
    is_volume_path,
    read_array,
    read_volume,
    write_array,
    write_volume,
)

__all__ = [
    "PET_SOP_CLASS",
    "CT_SOP_CLASS",
    "MR_SOP_CLASS",
    "DicomSeries",
    "read_dicom_series",
    "write_pet_series",
    "write_ct_series",
    "write_mr_series",
    "head_mask",
    "check_volume_file",
    "nifti_header_geometry",
    "HEAD_THRESHOLD",
    "HEAD_CLOSING",
    "write_transform",
    "read_transform",
    "SuvInfo",
    "suv_factor",
    "suv_from_dicom",
    "hu_from_dicom",
    "read_physical",
    "Grid",
    "image_from_array",
    "array_from_image",
    "read_volume",
    "read_array",
    "write_volume",
    "write_array",
    "is_volume_path",
    "geometry_summary",
]
