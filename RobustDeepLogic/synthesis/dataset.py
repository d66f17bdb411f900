"""Synthetic subjects on the fly: a torch ``Dataset`` that blends pairs of parents when asked.

:class:`BlendedDataset` makes the subjects of docs/method.md §6 without writing them: each item
blends two real patients of a registered cohort, on the CPU or a GPU, with the Laplacian blend, the
naive blend, or the mask-free baselines MixUp and CutMix (:mod:`RobustDeepLogic.blending.baselines`),
so synthetic subjects cost no disk. MONAI-style transforms that blend inside a data pipeline are in
:mod:`RobustDeepLogic.synthesis.transforms`; subjects written to disk in
:mod:`RobustDeepLogic.synthesis.disk`.
"""

from __future__ import annotations

from typing import (
    Any,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
from torch.utils.data import Dataset

from RobustDeepLogic.blending.baselines import cutmix, mixup, naive_blend
from RobustDeepLogic.blending.blend import laplacian_blend, mask_pyramid
from RobustDeepLogic.blending.pyramids import check_levels
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.modalities import normalise_modality
from RobustDeepLogic.io.volumes import read_array
from RobustDeepLogic.masks.presets import mask_from_spec
from RobustDeepLogic.synthesis.disk import _template_grid
from RobustDeepLogic.synthesis.pairs import choose_pairs
from RobustDeepLogic.synthesis.subjects import MIX_ALPHA, ON_THE_FLY_METHODS


# --------------------------------------------------------------------------------------------------
# On the fly
# --------------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


class BlendedDataset(Dataset):
    """A torch ``Dataset`` of synthetic subjects blended on demand (no disk).

    Item ``i`` blends the ordered pair ``pairs[i % P]`` under mask ``masks[(i // P) % K]``, where the
    ``P = N (N - 1)`` ordered pairs of ``parents`` are shuffled once with ``seed`` (or ``pairs`` are
    given, e.g. the very pairs an on-disk synthesis chose); its length is ``P * K`` unless ``length``
    is given. Items are deterministic: the same index gives the same volumes.

    ``method`` ``'mixup'`` and ``'cutmix'`` are the mask-free baselines: all modalities of an item
    share one weight ``lam ~ Beta(alpha, alpha)`` (MixUp: ``lam x1 + (1 - lam) x2``) or one random
    box (CutMix: ``x2`` pasted into ``x1``), drawn from ``(seed, i)`` with the ``alpha`` of
    :data:`~RobustDeepLogic.synthesis.subjects.MIX_ALPHA`; ``masks`` may then be None.

    An item is a dict ``{modality: float32 tensor [z, y, x] on device, ..., "provenance": {"parents":
    [p1, p2], "mask": name, "levels": L, "seed": seed, "index": i, "method": method}}`` (the mask's
    name is None without masks), with ``"lam"`` added for MixUp and CutMix (the weight, or the
    fraction kept from ``x1``). Volumes keep the values stored in the cohort.

    Parameters
    ----------
    cohort : Cohort
        A registered :class:`~RobustDeepLogic.cohort.Cohort` (space ``template``).
    parents : sequence of str
        The patient ids that may be parents (a training fold: held-out patients must not be here;
        patients of the cohort's ``test`` split are refused).
    masks : array, tensor, str, or a list or tuple of them
        One mask or a list: float32 ``[z, y, x]`` arrays / tensors on the template grid, or mask specs
        (:func:`~RobustDeepLogic.masks.presets.mask_from_spec`) resolved on the cohort's grid.
    levels : int, optional
        Pyramid levels (default 4; methods other than ``'laplacian'`` ignore it and record 0).
    modalities : sequence of str, optional
        The modalities to blend, e.g. ``("LD", "FD")`` (default ``("FD",)``).
    seed : int, optional
        Shuffles the pairs (and draws the MixUp / CutMix weights); default 0.
    length : int, optional
        The number of items; indices past ``P * K`` wrap around the pairs. Default ``P * K``.
    method : {'laplacian', 'naive', 'mixup', 'cutmix'}, optional
        The blend (default ``'laplacian'``).
    pairs : sequence of (str, str), optional
        Explicit ordered ``(x1, x2)`` pairs instead of the shuffled all-pairs list (both parents must
        be in ``parents``).
    device : str or torch.device, optional
        Where parents are cached and blended (default ``'cpu'``; ``'cuda'`` to blend on a GPU).
    cache : bool, optional
        Keep the parents' volumes in memory after the first read (``N x C`` volumes; default True).

    Attributes
    ----------
    pairs : list of (str, str)
        The ordered pairs, in item order.
    mask_names : list of str
        The spec of each mask given as a string, ``"maskK"`` for an array.
    grid : Grid
        The template grid, read from the first parent's first modality.
    levels : int
        The pyramid levels used (0 for methods other than ``'laplacian'``).

    Raises
    ------
    InputError
        The cohort is not in template space; ``method`` is unknown; a parent is unknown, synthetic or
        in the cohort's ``test`` split (the message names every such patient);
        a pair is not two different parents, or no pair is given; fewer than 2 parents; no mask for a
        blend, or a mask off the cohort's grid; or ``levels`` is too many.
    """

    def __init__(
        self,
        cohort: Cohort,
        parents: Sequence[str],
        masks: Union[Any, Sequence[Any]],
        levels: int = 4,
        modalities: Sequence[str] = ("FD",),
        seed: int = 0,
        *,
        length: Optional[int] = None,
        method: str = "laplacian",
        pairs: Optional[Sequence[Tuple[str, str]]] = None,
        device: Union[str, Any] = "cpu",
        cache: bool = True,
    ) -> None:
        torch = _torch()

        if cohort.space != "template":
            raise InputError("BlendedDataset needs a registered cohort (space 'template')",
                             file=cohort.manifest_path)
        if method not in ON_THE_FLY_METHODS:
            raise InputError(f"method must be one of {', '.join(ON_THE_FLY_METHODS)}")
        self.cohort = cohort
        self.parents = sorted(set(parents))
        held_out = []
        for pid in self.parents:
            p = cohort.patient(pid)
            if p.is_synthetic:
                raise InputError("is synthetic; parents must be real", patient=pid)
            if p.split == "test":
                held_out.append(pid)
        if held_out:
            raise InputError(
                f"{', '.join(held_out)}: held-out test patient(s) cannot be parents of synthetic subjects "
                "(only training patients may be blended, docs/method.md §6)",
                file=cohort.manifest_path, patient=held_out[0],
                hint="give only patients outside the 'test' split (select_pool chooses them)")
        self.modalities = [normalise_modality(m) for m in modalities]
        self.seed = int(seed)
        self.method = method
        self.device = torch.device(device)
        self.cache = cache
        self._volumes: Dict[str, Any] = {}
        self.grid = _template_grid(cohort, self.parents[0], self.modalities[0]) if self.parents else None
        if pairs is not None:
            allowed = set(self.parents)
            self.pairs = [(str(a), str(b)) for a, b in pairs]
            for a, b in self.pairs:
                if a == b or a not in allowed or b not in allowed:
                    raise InputError(f"pair ({a}, {b}) is not two different patients of the parents",
                                     file=cohort.manifest_path, hint="parents: " + ", ".join(self.parents))
            if not self.pairs:
                raise InputError("BlendedDataset was given no pairs")
        else:
            rng = np.random.default_rng(self.seed)
            all_pairs = choose_pairs(self.parents, all_pairs=True)
            self.pairs = [all_pairs[i] for i in rng.permutation(len(all_pairs))]
        if masks is None and method in ("mixup", "cutmix"):
            masks = []
        mask_list = masks if isinstance(masks, (list, tuple)) else [masks]
        self.mask_names: List[str] = []
        self._masks = []

        for k, m in enumerate(mask_list):
            if isinstance(m, str):
                arr = mask_from_spec(m, self.grid)
                self.mask_names.append(m)
            else:
                arr = m
                self.mask_names.append(f"mask{k}")
            t = arr.to(self.device, torch.float32) if isinstance(arr, torch.Tensor) else torch.as_tensor(
                np.asarray(arr, np.float32), device=self.device)
            if self.grid is not None and tuple(t.shape) != self.grid.shape:
                raise InputError(f"mask {self.mask_names[-1]} has shape {tuple(t.shape)}, the cohort's grid "
                                 f"{self.grid.shape}")
            self._masks.append(t)
        if not self._masks and method not in ("mixup", "cutmix"):
            raise InputError("BlendedDataset needs at least one mask")
        self.levels = check_levels(self._masks[0].shape, levels) if method == "laplacian" else 0
        self._pyramids = [mask_pyramid(m, self.levels) for m in self._masks] if method == "laplacian" else []
        n_masks = max(1, len(self._masks))
        self.length = len(self.pairs) * n_masks if length is None else int(length)

    def __len__(self) -> int:
        return self.length

    def _parent(self, pid: str):
        torch = _torch()
        if pid in self._volumes:
            return self._volumes[pid]

        arrays = []
        for mod in self.modalities:
            arr, g = read_array(self.cohort.path(pid, mod), patient=pid)
            if self.grid is not None and not g.matches(self.grid):
                raise InputError(f"{mod} is not on the template grid", file=self.cohort.path(pid, mod),
                                 patient=pid)
            arrays.append(arr)
        t = torch.from_numpy(np.stack(arrays)).to(self.device)
        if self.cache:
            self._volumes[pid] = t
        return t

    def pair_of(self, index: int) -> Tuple[Tuple[str, str], int]:
        """The parents and the mask number of item ``index``.

        Parameters
        ----------
        index : int
            An item index, from 0 to ``len(self) - 1``.

        Returns
        -------
        pair : tuple of (str, str)
            The parents ``(x1, x2)``.
        mask : int
            The index of the mask in ``masks`` (0 when there are none).

        Raises
        ------
        IndexError
            ``index`` is out of range.
        """
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.pairs[index % len(self.pairs)], (index // len(self.pairs)) % max(1, len(self._masks))

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """Item ``index``: its blended modalities and its provenance (see the class description).

        A parent volume off the template grid raises :class:`InputError` when it is first read.
        """
        (p1, p2), k = self.pair_of(int(index))
        x1, x2 = self._parent(p1), self._parent(p2)
        mask_name: Optional[str] = self.mask_names[k] if self._masks else None
        lam: Optional[float] = None
        if self.method in ("mixup", "cutmix"):
            rng = np.random.default_rng([self.seed, int(index), 29])
            mix = mixup if self.method == "mixup" else cutmix
            y, lam = mix(x1, x2, alpha=MIX_ALPHA[self.method], rng=rng)
        elif self.method == "naive":
            y = naive_blend(x1, x2, self._masks[k])
        else:
            y = laplacian_blend(x1, x2, self._masks[k], self.levels, mask_levels=self._pyramids[k])
        item: Dict[str, Any] = {m: y[c] for c, m in enumerate(self.modalities)}
        item["provenance"] = {"parents": [p1, p2], "mask": mask_name, "levels": self.levels,
                              "seed": self.seed, "index": int(index), "method": self.method}
        if lam is not None:
            item["provenance"]["lam"] = lam
        return item
