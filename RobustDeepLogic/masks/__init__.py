"""Blending masks in template space (docs/method.md §4-5): 1 takes the first parent, 0 the second.

Modules: :mod:`.geometry` (MNI coordinates and shapes), :mod:`.regions` (masks of MNI structures),
:mod:`.presets` (the preset library, with stand-ins for the paper's masks #1 and #2, parametric
generators, mask specs), :mod:`.files` (masks painted or saved by users: validation, loading,
previews).
"""

from RobustDeepLogic.masks.files import load_mask, save_preview, validate_mask
from RobustDeepLogic.masks.geometry import (
    MNI152_2MM_GRID,
    MNI_BRAIN_CENTRE,
    Vector,
    blocks,
    direction_from_angles,
    ellipsoid,
    ellipsoid_head,
    half_space,
    head_centre,
    mni_coordinates,
    mni_to_index,
    random_blobs,
    sphere,
    stripes,
)
from RobustDeepLogic.masks.presets import (
    GENERATORS,
    PRESETS,
    Preset,
    looks_like_file,
    make_preset,
    mask_digest,
    mask_from_spec,
    mask_tag,
    parse_spec,
)
from RobustDeepLogic.masks.regions import STRUCTURES, Structure, region_mask

__all__ = [
    "validate_mask",
    "load_mask",
    "save_preview",
    "Vector",
    "MNI152_2MM_GRID",
    "MNI_BRAIN_CENTRE",
    "mni_coordinates",
    "mni_to_index",
    "head_centre",
    "direction_from_angles",
    "half_space",
    "blocks",
    "ellipsoid",
    "sphere",
    "stripes",
    "random_blobs",
    "ellipsoid_head",
    "Preset",
    "PRESETS",
    "make_preset",
    "GENERATORS",
    "parse_spec",
    "looks_like_file",
    "mask_from_spec",
    "mask_tag",
    "mask_digest",
    "Structure",
    "STRUCTURES",
    "region_mask",
]
