"""Synthetic subjects blended on the fly as a volume source: :func:`on_the_fly_source` wraps a
:class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset` (the same parent pairs that
``robustdeep synthesize`` would choose) in :class:`TorchDatasetSource`, so training windows are cut
from subjects that never touch the disk. Cohort subjects are in :mod:`RobustDeepLogic.data.sources`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.data.sources import SubjectVolumes
from RobustDeepLogic.io.headmask import head_mask
from RobustDeepLogic.synthesis.dataset import BlendedDataset
from RobustDeepLogic.synthesis.pairs import choose_pairs


class TorchDatasetSource:
    """A map-style torch ``Dataset`` of subjects (``{modality: tensor [z, y, x]}``) as a source.

    Image keys are upper-cased to modality names. Without a ``"head"`` item the head mask is
    :func:`~RobustDeepLogic.io.headmask.head_mask` of the first (scaled) image: put the reference
    modality (the task's target) first, as :func:`on_the_fly_source` does.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        A map-style dataset (``len`` and integer indexing). Items are dicts of float tensors (or
        arrays) ``[z, y, x]`` per modality; optional keys ``"id"`` (str), ``"parents"`` (list of
        patient ids), ``"head"`` (bool ``[z, y, x]``) and ``"provenance"`` (a dict, e.g. from
        :class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset`, whose ``"parents"`` are used when
        the item has none of its own).
    scaling : mapping of str to RobustDeepLogic.cohort.Scaling, optional
        Constants to scale physical values to [0, 1], keyed by item key; images whose key is not in
        it are taken as already scaled. None (default) when all items are already scaled.
    parents : callable, optional
        ``parents(index) -> sequence of str`` when items do not carry ``"parents"``; this is needed
        before loading (to refuse subjects of held-out patients) and is called with the item index.
        Without it, a dataset with a ``pair_of(index)`` method (a ``BlendedDataset``) is asked, and
        otherwise the item is loaded.
    prefix : str, optional
        Subject ids are ``f"{prefix}{index:05d}"`` (default prefix ``"otf"``).
    """

    #: Item keys that are not images.
    NOT_IMAGES = frozenset({"id", "parents", "head", "provenance"})

    def __init__(self, dataset, *, scaling: Optional[Mapping[str, Any]] = None,
                 parents: Optional[Callable[[int], Sequence[str]]] = None,
                 prefix: str = "otf") -> None:
        self.dataset = dataset
        self.scaling = dict(scaling) if scaling is not None else None
        self._parents = parents
        self.prefix = prefix
        self.ids = [f"{prefix}{i:05d}" for i in range(len(dataset))]
        self._index = {sid: i for i, sid in enumerate(self.ids)}

    @staticmethod
    def _item_parents(item: Mapping[str, Any]) -> Tuple[str, ...]:
        parents = item.get("parents") or (item.get("provenance") or {}).get("parents") or ()
        return tuple(str(p) for p in parents)

    def parents(self, subject: str) -> Tuple[str, ...]:
        """The real patients ``subject`` descends from, without blending it where possible.

        Parameters
        ----------
        subject : str
            One of :attr:`ids`.

        Returns
        -------
        tuple of str
            From the ``parents`` callable if given, else the dataset's ``pair_of``, else the item's
            ``"parents"`` (or its provenance's); ``()`` when none of these is known.
        """
        i = self._index[subject]
        if self._parents is not None:
            return tuple(str(p) for p in self._parents(i))
        dataset_pairs = getattr(self.dataset, "pair_of", None)
        if callable(dataset_pairs):  # a BlendedDataset knows an item's parents without blending it
            return tuple(str(p) for p in dataset_pairs(i)[0])
        return self._item_parents(self.dataset[i])

    def load(self, subject: str) -> SubjectVolumes:
        """Get one item of the dataset as a scaled subject.

        Parameters
        ----------
        subject : str
            One of :attr:`ids`.

        Returns
        -------
        SubjectVolumes
            float32 ``[z, y, x]`` arrays keyed by upper-case modality, scaled with ``scaling`` where
            it has the key; the item's head mask or that of the first array; the parents. Its id
            is the item's ``"id"`` when it has one, else ``subject``; ``grid`` is None.
        """
        item = self.dataset[self._index[subject]]
        arrays = {}
        for key, value in item.items():
            if key in self.NOT_IMAGES:
                continue
            a = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            a = a.astype(np.float32, copy=False)
            if self.scaling is not None and key in self.scaling:
                a = np.asarray(self.scaling[key].to_scaled(a), np.float32)
            arrays[str(key).upper()] = a
        head = item.get("head")
        head = (np.asarray(head.cpu() if torch.is_tensor(head) else head, bool) if head is not None
                else head_mask(next(iter(arrays.values()))))
        parents = self._item_parents(item) or self.parents(subject)
        return SubjectVolumes(str(item.get("id", subject)), arrays, head, parents)


# --------------------------------------------------------------------------------------------------
# Synthetic subjects blended on the fly
# --------------------------------------------------------------------------------------------------
def on_the_fly_source(
    cohort,
    parents: Sequence[str],
    modalities: Sequence[str],
    *,
    count: int,
    masks: Any = None,
    method: str = "laplacian",
    levels: int = 4,
    seed: int = 0,
    device: Any = "cpu",
    prefix: Optional[str] = None,
) -> TorchDatasetSource:
    """``count`` synthetic subjects of ``parents`` blended when loaded, as a training source (no disk).

    With one mask (or none: ``'mixup'``, ``'cutmix'``), the pairs are exactly those
    :func:`~RobustDeepLogic.synthesis.disk.synthesize` would choose with ``patients=parents,
    count=count, seed=seed``, so an on-the-fly arm and an on-disk one can share their parents. With K
    masks, ``ceil(count / K)`` pairs are chosen and each is blended with every mask, ``count`` subjects
    in all. Volumes are scaled with the cohort's constants.

    Parameters
    ----------
    cohort : RobustDeepLogic.cohort.Cohort
        A registered cohort (space ``template``).
    parents : sequence of str
        The real patients that may be parents (a fold's training patients: held-out patients must not
        be here). Duplicates are dropped and the ids sorted.
    modalities : sequence of str
        The modalities to blend, e.g. ``["FD", "LD"]``.
    count : int
        Number of synthetic subjects, at least 1 and at most K N (N - 1) for N parents and K masks
        (K = 1 without masks).
    masks : str, array, or list of them, optional
        One mask or a list: mask specs (:func:`~RobustDeepLogic.masks.presets.mask_from_spec`) or
        float32 ``[z, y, x]`` weights in [0, 1] on the template grid. None for ``'mixup'`` and
        ``'cutmix'``.
    method : str, optional
        ``'laplacian'`` (default, docs/method.md §4), ``'naive'``, ``'mixup'`` or ``'cutmix'`` (the
        last two take no mask).
    levels : int, optional
        Pyramid levels of the Laplacian blend (default 4).
    seed : int, optional
        Chooses the pairs (and the MixUp / CutMix draws).
    device : str or torch.device, optional
        Where the parents are cached and blended (``'cuda'`` to blend on a GPU).
    prefix : str, optional
        Prefix of the subject ids; default ``f"otf-{method}-"``.

    Returns
    -------
    TorchDatasetSource
        A source over a :class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset`, scaled with the
        cohort's constants; each subject's parents are known without blending it.

    Raises
    ------
    InputError
        When masks are given to ``'mixup'`` or ``'cutmix'``, when ``count`` is below 1 or needs more
        ordered pairs than the parents give, or (from the dataset) when the cohort is not registered,
        a parent is synthetic or in the test split, or the method is unknown.

    References
    ----------
    docs/method.md §4 (blending) and §6 (synthetic subjects; those of a fold come only from its
    training patients).
    """
    pool = sorted({str(p) for p in parents})
    mask_list = [] if masks is None else (list(masks) if isinstance(masks, (list, tuple)) else [masks])
    if method in ("mixup", "cutmix") and mask_list:
        raise InputError(f"{method} takes no mask", hint="give masks only to laplacian or naive blending")
    k = max(1, len(mask_list))
    n_pairs = -(-int(count) // k)
    if int(count) < 1 or n_pairs > len(pool) * (len(pool) - 1):
        raise InputError(f"{count} subjects need {n_pairs} ordered pairs; {len(pool)} parents give "
                         f"{len(pool) * (len(pool) - 1)}", hint="ask for fewer synthetic subjects")
    pairs = choose_pairs(pool, count=n_pairs, seed=int(seed))
    dataset = BlendedDataset(cohort, pool, mask_list or None, levels=levels, modalities=list(modalities),
                             seed=int(seed), method=method, pairs=pairs, device=device, length=int(count))
    scaling = {m: cohort.scaling_for(m) for m in dataset.modalities}
    return TorchDatasetSource(dataset, scaling=scaling, prefix=prefix or f"otf-{method}-")
