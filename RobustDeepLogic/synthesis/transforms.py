"""MONAI-style transforms that blend a sample with a partner (docs/method.md §4, §6).

:class:`LaplacianBlend` is the array transform (an image and its partner in, the blend out);
:class:`LaplacianBlendd` blends each key with a partner entry of the same sample under one mask;
:class:`RandLaplacianBlendd` blends, with some probability, with a partner and a mask drawn at random.
They follow MONAI's conventions (``keys``, channel-first values, ``set_random_state`` /
``randomize``) without importing MONAI, so they fit in a ``monai.transforms.Compose``: a MONAI
``MetaTensor`` comes back as a ``MetaTensor`` with the affine and metadata of the image blended into
(recognised by MONAI's ``copy_meta_from``, not by importing MONAI). The blend is
:func:`~RobustDeepLogic.blending.blend.laplacian_blend` or the naive baseline; a whole dataset of
blended pairs is :class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset`.
"""

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


def _has_meta(x: Any) -> bool:
    """Whether ``x`` is a tensor subclass that carries metadata the MONAI way (a ``MetaTensor``)."""
    torch = _torch()
    return isinstance(x, torch.Tensor) and type(x) is not torch.Tensor and hasattr(x, "copy_meta_from")


def _plain(x: Any) -> Any:
    """``x`` as a plain tensor (a view, no copy) when it carries metadata, else ``x`` itself."""
    return x.as_subclass(_torch().Tensor) if _has_meta(x) else x


def _with_meta_of(result: Any, like: Any) -> Any:
    """``result`` as the class of ``like`` with its metadata (affine, meta, applied operations) copied.

    The blend is not added to ``applied_operations``: it cannot be inverted, and MONAI's inverses
    check that the last operation recorded is their own.
    """
    if not _has_meta(like) or not isinstance(result, _torch().Tensor):
        return result
    out = result.as_subclass(type(like))
    out.copy_meta_from(like)
    return out


class LaplacianBlend:
    """A MONAI-style array transform: the blend of an image and its partner under a mask.

    ``LaplacianBlend(mask, levels)(img, partner)`` is ``laplacian_blend(img, partner, mask, levels)``
    (1 in the mask takes ``img``), with the mask's pyramid computed once and shared by every call.
    ``img`` and ``partner`` are numpy arrays or tensors, ``[z, y, x]`` or channel-first
    ``[C, z, y, x]``; the result is of the kind of ``img``, and a MONAI ``MetaTensor`` keeps its
    affine and metadata (those of ``img``). Does not import MONAI. In a ``monai.transforms.Compose``
    with ``unpack_items=True``, give it the tuple ``(img, partner)``.

    Parameters
    ----------
    mask : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` (or ``[y, x]``) weights in [0, 1] on the images' grid.
    levels : int, optional
        Pyramid levels (default 4; 0 is recorded for ``'naive'``).
    method : {'laplacian', 'naive'}, optional
        The Laplacian blend (default, docs/method.md §4) or the naive mask blend.

    Raises
    ------
    InputError
        No mask, ``method`` is unknown, or ``levels`` is too many for the mask's shape.
    """

    def __init__(self, mask: Any, levels: int = 4, *, method: str = "laplacian") -> None:
        if method not in METHODS:
            raise InputError(f"method must be one of {', '.join(METHODS)}")
        if mask is None:
            raise InputError("LaplacianBlend needs a mask ([z, y, x] weights in [0, 1])")
        self.method = method
        self.mask = _plain(mask)
        self.levels = check_levels(np.shape(self.mask), levels) if method == "laplacian" else 0
        self._pyramid = mask_pyramid(self.mask, self.levels) if method == "laplacian" else None

    def __call__(self, img: Any, partner: Any) -> Any:
        """Blend ``img`` with ``partner`` under the transform's mask.

        Parameters
        ----------
        img : numpy.ndarray or torch.Tensor
            ``[z, y, x]`` or ``[C, z, y, x]``, taken where the mask is 1. For a tensor, the mask
            pyramid is moved to its device (and kept there).
        partner : numpy.ndarray or torch.Tensor
            The partner, of the shape of ``img``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            float32, shaped like ``img`` and of its kind; a ``MetaTensor`` with ``img``'s affine and
            metadata (copied) when ``img`` is one.

        Raises
        ------
        InputError
            ``img`` and ``partner`` differ in shape or do not fit the mask.
        """
        a, b = _plain(img), _plain(partner)
        if self.method == "naive":
            return _with_meta_of(naive_blend(a, b, self.mask), img)
        torch = _torch()
        if isinstance(a, torch.Tensor) and self._pyramid[0].device != a.device:  # type: ignore[index]
            self._pyramid = [g.to(a.device) for g in self._pyramid]  # type: ignore[union-attr]
        y = laplacian_blend(a, b, self._pyramid[0], self.levels, mask_levels=self._pyramid)  # type: ignore[index]
        return _with_meta_of(y, img)


class LaplacianBlendd:
    """A MONAI-style dictionary transform: blend ``data[key]`` with ``data[key + partner_suffix]``.

    All ``keys`` share one mask (and its pyramid), so paired modalities stay consistent. Values may be
    numpy arrays or tensors, ``[z, y, x]`` or channel-first ``[C, z, y, x]`` (MONAI's layout); the
    mask is ``[z, y, x]`` on the same grid. A MONAI ``MetaTensor`` value comes back as a
    ``MetaTensor`` with the affine and metadata of ``data[key]``. The partner entries are removed
    unless ``keep_partner=True``. Does not import MONAI; drop it into a ``monai.transforms.Compose``.
    The blend of each key is :class:`LaplacianBlend`.

    Parameters
    ----------
    keys : str or sequence of str
        The entries to blend; 1 in the mask takes ``data[key]``.
    mask : numpy.ndarray or torch.Tensor
        ``[z, y, x]`` (or ``[y, x]``) weights in [0, 1].
    levels : int, optional
        Pyramid levels (default 4; 0 is recorded for ``'naive'``).
    partner_suffix : str, optional
        Appended to a key to name its partner entry (default ``"_partner"``).
    method : {'laplacian', 'naive'}, optional
        The Laplacian blend (default) or the naive mask blend.
    keep_partner : bool, optional
        Keep the partner entries in the output (default False: they are removed).

    Raises
    ------
    InputError
        ``method`` is unknown, or ``levels`` is too many for the mask's shape.
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
        self.partner_suffix = partner_suffix
        self.keep_partner = keep_partner
        self.blender = LaplacianBlend(mask, levels, method=method)
        self.method = method
        self.mask = self.blender.mask
        self.levels = self.blender.levels

    def blend(self, a: Any, b: Any) -> Any:
        """Blend one value with its partner under the transform's mask (:class:`LaplacianBlend`).

        Parameters
        ----------
        a : numpy.ndarray or torch.Tensor
            ``[z, y, x]`` or ``[C, z, y, x]``, taken where the mask is 1. For a tensor, the mask pyramid is
            moved to its device (and kept there).
        b : numpy.ndarray or torch.Tensor
            The partner, of the shape of ``a``.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            float32, shaped like ``a`` and of its kind (a ``MetaTensor`` keeps ``a``'s metadata).

        Raises
        ------
        InputError
            ``a`` and ``b`` differ in shape or do not fit the mask.
        """
        return self.blender(a, b)

    def __call__(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        """Blend every key of ``data`` with its partner entry.

        Parameters
        ----------
        data : mapping
            A sample holding every ``key`` and ``key + partner_suffix``.

        Returns
        -------
        dict
            A shallow copy of ``data`` with the keys blended (and, unless ``keep_partner``, no partners).

        Raises
        ------
        KeyError
            A partner entry is missing.
        """
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
    """A random MONAI-style dictionary transform: blend the sample with a random partner and mask.

    With probability ``prob``, the sample is blended with a partner drawn from ``partners`` under a
    mask drawn from ``masks`` (all ``keys`` share them). ``partners`` is a sequence of dictionaries with
    the same ``keys`` (e.g. other training patients of the same fold, already loaded). The transform
    owns its random state (``set_random_state(seed)``); the choice is recorded under
    ``data["blend_provenance"]``: ``{"partner": index, "mask": index, "levels": L}``, or None when
    the sample was left as it was. A MONAI ``MetaTensor`` value keeps its affine and metadata.

    Parameters
    ----------
    keys : str or sequence of str
        The entries to blend; 1 in the mask takes the sample's value.
    partners : sequence of mapping
        Samples to blend with, each holding every key on the sample's grid.
    masks : array or tensor, or a list or tuple of them
        One mask or several, ``[z, y, x]`` weights in [0, 1].
    levels : int, optional
        Pyramid levels (default 4).
    prob : float, optional
        The probability of blending a sample, in [0, 1] (default 1).
    seed : int, optional
        Seed of the transform's ``numpy.random.RandomState``; None (default) seeds it from the system.
    method : {'laplacian', 'naive'}, optional
        The Laplacian blend (default) or the naive mask blend.

    Raises
    ------
    InputError
        No partner is given, ``prob`` is outside [0, 1], ``method`` is unknown, or ``levels`` is too
        many for a mask.
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
        """Seed the transform's random state, as MONAI's ``Randomizable.set_random_state`` does.

        Parameters
        ----------
        seed : int, optional
            Seed of a new ``numpy.random.RandomState`` (stored as ``R``); None seeds it from the system.

        Returns
        -------
        RandLaplacianBlendd
            The transform itself.
        """
        self.R = np.random.RandomState(seed)
        return self

    def randomize(self) -> None:
        """Draw whether the next sample is blended and, if so, its partner and mask."""
        if self.R.rand() < self.prob:
            self._choice = (int(self.R.randint(len(self.partners))), int(self.R.randint(len(self._blenders))))
        else:
            self._choice = None

    def __call__(self, data: Mapping[str, Any]) -> Dict[str, Any]:
        """Blend a sample with a random partner under a random mask (see the class description).

        Parameters
        ----------
        data : mapping
            A sample holding every key.

        Returns
        -------
        dict
            A shallow copy of ``data`` with the keys blended (or not) and ``"blend_provenance"`` set.
        """
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
