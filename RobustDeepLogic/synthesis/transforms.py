"""TODO docstring (RobustDeepLogic.synthesis)."""

from __future__ import annotations

from typing import (
    Any,
    Dict,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from RobustDeepLogic.blending.baselines import naive_blend
from RobustDeepLogic.blending.blend import laplacian_blend, mask_pyramid
from RobustDeepLogic.blending.pyramids import check_levels
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.synthesis.dataset import _torch
from RobustDeepLogic.synthesis.subjects import METHODS


class LaplacianBlendd:
    """A MONAI-style dictionary transform: blend ``data[key]`` with ``data[key + partner_suffix]``.

    All ``keys`` share one mask (and its pyramid), so paired modalities stay consistent. Values may be
    numpy arrays or tensors, ``[z, y, x]`` or channel-first ``[C, z, y, x]`` (MONAI's layout); the
    mask is ``[z, y, x]`` on the same grid. The partner entries are removed unless
    ``keep_partner=True``. Does not import MONAI; drop it into a ``monai.transforms.Compose``.
    """

    def __init__(
        self,
        keys: Union[str, Sequence[str]],
        mask: Any,
        levels: int = 4,
        *,
        partner_suffix: str = "_partner",
        method: str = "laplacian",
        keep_partner: bool = False,
    ) -> None:
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.mask = mask
        self.partner_suffix = partner_suffix
        self.method = method
        self.keep_partner = keep_partner
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}")
        self.levels = check_levels(np.shape(mask), levels) if method == "laplacian" else 0
        self._pyramid = mask_pyramid(mask, self.levels) if method == "laplacian" else None

    def blend(self, a: Any, b: Any) -> Any:
        if self.method == "naive":
            return naive_blend(a, b, self.mask)
        torch = _torch()
        if isinstance(a, torch.Tensor) and self._pyramid[0].device != a.device:  # type: ignore[index]
            self._pyramid = [g.to(a.device) for g in self._pyramid]  # type: ignore[union-attr]
        return laplacian_blend(a, b, self._pyramid[0], self.levels, mask_levels=self._pyramid)  # type: ignore[index]

    def __call__(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        d = dict(data)
        for key in self.keys:
            partner = key + self.partner_suffix
            if partner not in d:
                raise KeyError(f"LaplacianBlendd: no {partner!r} to blend {key!r} with")
            d[key] = self.blend(d[key], d[partner])
            if not self.keep_partner:
                d.pop(partner)
        return d


class RandLaplacianBlendd:
    """A random MONAI-style dictionary transform: with probability ``prob``, blend the sample with a
    partner drawn from ``partners`` under a mask drawn from ``masks`` (all ``keys`` share them).

    ``partners`` is a sequence of dictionaries with the same ``keys`` (e.g. other training patients of
    the same fold, already loaded), ``masks`` one mask or a list of ``[z, y, x]`` masks. The transform
    owns its random state (``set_random_state(seed)``); the choice is recorded under
    ``data["blend_provenance"]`` (``partner`` index, ``mask`` index, or None when not applied).
    """

    def __init__(
        self,
        keys: Union[str, Sequence[str]],
        partners: Sequence[Mapping[str, Any]],
        masks: Union[Any, Sequence[Any]],
        levels: int = 4,
        *,
        prob: float = 1.0,
        seed: Optional[int] = None,
        method: str = "laplacian",
    ) -> None:
        if not partners:
            raise InputError("RandLaplacianBlendd needs at least one partner")
        if not 0.0 <= prob <= 1.0:
            raise InputError(f"prob must lie in [0, 1], got {prob}")
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.partners = list(partners)
        mask_list = masks if isinstance(masks, (list, tuple)) else [masks]
        self._blenders = [LaplacianBlendd(self.keys, m, levels, method=method) for m in mask_list]
        self.prob = prob
        self.set_random_state(seed)
        self._choice: Optional[Tuple[int, int]] = None

    def set_random_state(self, seed: Optional[int] = None) -> "RandLaplacianBlendd":
        self.R = np.random.RandomState(seed)
        return self

    def randomize(self) -> None:
        if self.R.rand() < self.prob:
            self._choice = (int(self.R.randint(len(self.partners))), int(self.R.randint(len(self._blenders))))
        else:
            self._choice = None

    def __call__(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        self.randomize()
        d = dict(data)
        if self._choice is None:
            d["blend_provenance"] = None
            return d
        p, k = self._choice
        blender = self._blenders[k]
        for key in self.keys:
            d[key] = blender.blend(d[key], self.partners[p][key])
        d["blend_provenance"] = {"partner": p, "mask": k, "levels": blender.levels}
        return d
