"""Gaussian and Laplacian pyramids and Laplacian-pyramid blending (docs/method.md §4).

Modules: :mod:`.pyramids` (reduce / expand, pyramids, levels), :mod:`.buffers` (reused work
buffers), :mod:`.blend` (``laplacian_blend`` and its K-parent form), :mod:`.baselines` (naive blend,
MixUp, CutMix, seam roughness).
"""

from RobustDeepLogic.blending.baselines import (
    cutmix,
    cutmix_box,
    mixup,
    naive_blend,
    seam_roughness,
)
from RobustDeepLogic.blending.blend import (
    blend_many,
    laplacian_blend,
    mask_pyramid,
    two_pyramid_blend,
)
from RobustDeepLogic.blending.buffers import BufferPool, default_pool, release_buffers
from RobustDeepLogic.blending.pyramids import (
    BINOMIAL_KERNEL,
    DEFAULT_LEVELS,
    MIN_REDUCE_SIZE,
    ArrayLike,
    check_levels,
    collapse_pyramid,
    expand,
    gaussian_pyramid,
    laplacian_pyramid,
    level_shapes,
    max_levels,
    reduce,
)

__all__ = [
    "naive_blend",
    "mixup",
    "cutmix_box",
    "cutmix",
    "seam_roughness",
    "mask_pyramid",
    "laplacian_blend",
    "blend_many",
    "two_pyramid_blend",
    "BufferPool",
    "default_pool",
    "release_buffers",
    "ArrayLike",
    "BINOMIAL_KERNEL",
    "DEFAULT_LEVELS",
    "MIN_REDUCE_SIZE",
    "level_shapes",
    "max_levels",
    "check_levels",
    "reduce",
    "expand",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "collapse_pyramid",
]
