"""Training data for a task: volume sources, head masks, and axial 2D windows (method.md §3, §7).

Two layers:

*Volume sources* yield one subject at a time as a :class:`SubjectVolumes`: a dict of 3D float32
``[z, y, x]`` arrays in scaled units (the cohort's fixed constants, never per-image min-max), a head
mask, and the subject's parents (itself for a real patient). Any object with ``ids``,
``parents(id)`` and ``load(id)`` is a source (:class:`VolumeSource`); two are provided:

- :class:`CohortSource` reads a cohort folder. The first modality of ``modalities`` (the task's
  target) is the reference grid; another modality on a different grid (T1 / T2 beside PET in native
  space, the PU scenario) is resampled onto it with the header geometry (identity transform, linear).
- :class:`TorchDatasetSource` wraps a map-style torch ``Dataset`` whose items are
  ``{modality: float32 tensor [z, y, x], ...}`` (optionally also ``"id"``, ``"parents"``,
  ``"head"``), e.g. on-the-fly Laplacian-blended pairs from the synthesis stage.

*Windows*: :class:`WindowDataset` draws, for every axial slice of the head of every subject, one
window of ``window = (rows, columns)`` voxels (112 x 96 by default: rows along y, columns along x),
placed at random so that it covers the slice's head bounding box when that fits. Item ``i`` of epoch
``e`` is a deterministic function of ``(seed, e, i)``, so a resumed run draws the same windows.
:class:`EpochSampler` orders the items (subjects shuffled in blocks that fit the cache, slices shuffled
inside a block) and shards them over distributed ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
)

import numpy as np
import SimpleITK as sitk
import torch

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.headmask import head_mask
from RobustDeepLogic.io.volumes import Grid, array_from_image
from RobustDeepLogic.synthesis.dataset import BlendedDataset
from RobustDeepLogic.synthesis.pairs import choose_pairs


# --------------------------------------------------------------------------------------------------
# Subjects and sources
# --------------------------------------------------------------------------------------------------
@dataclass
class SubjectVolumes:
    """One subject: scaled float32 ``[z, y, x]`` arrays per modality on one grid, and a head mask."""

    id: str
    arrays: Dict[str, np.ndarray]
    head: np.ndarray
    parents: Tuple[str, ...] = ()
    grid: Any = None  # a volumes.Grid when known

    def stack(self, modalities: Sequence[str]) -> np.ndarray:
        """``[C, z, y, x]`` float32 of ``modalities`` in order."""
        missing = [m for m in modalities if m not in self.arrays]
        if missing:
            raise InputError(f"has no {', '.join(missing)} image", patient=self.id)
        return np.stack([self.arrays[m] for m in modalities]).astype(np.float32, copy=False)


class VolumeSource(Protocol):
    """Anything that lists subject ids and loads one subject (see the module doc)."""

    ids: Sequence[str]

    def parents(self, subject: str) -> Tuple[str, ...]:
        ...

    def load(self, subject: str) -> SubjectVolumes:
        ...


def resample_onto(image, reference, default_value: float = 0.0):
    """``image`` (SimpleITK) resampled onto ``reference``'s grid with the header geometry alone.

    Identity transform, linear interpolation; points outside ``image`` get ``default_value`` (in the
    image's physical units). For modalities registered within a patient but on different grids.
    """
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, float(default_value),
                         sitk.sitkFloat32)


class CohortSource:
    """Subjects of a cohort folder, scaled with the cohort's constants, on the first modality's grid.

    Parameters
    ----------
    cohort:
        A :class:`~RobustDeepLogic.cohort.Cohort`.
    ids:
        Subjects to offer (real or synthetic).
    modalities:
        Modalities to load; the first is the reference grid (put the task's target first).
    scaling:
        Constants per modality; default ``cohort.scaling_for``.
    """

    def __init__(self, cohort, ids: Sequence[str], modalities: Sequence[str],
                 scaling: Optional[Mapping[str, Any]] = None) -> None:
        self.cohort = cohort
        self.ids = list(ids)
        self.modalities = list(modalities)
        self.scaling = dict(scaling) if scaling is not None else {
            m: cohort.scaling_for(m) for m in self.modalities}
        for pid in self.ids:
            p = cohort.patient(pid)
            missing = [m for m in self.modalities if m not in p.modalities]
            if missing:
                raise InputError(f"has no {', '.join(missing)} image, needed by the task",
                                 file=cohort.manifest_path, patient=pid)

    def parents(self, subject: str) -> Tuple[str, ...]:
        return tuple(self.cohort.patient(subject).parents)

    def load(self, subject: str) -> SubjectVolumes:
        reference = self.cohort.read(subject, self.modalities[0])
        grid = Grid.of(reference)
        arrays: Dict[str, np.ndarray] = {}
        for m in self.modalities:
            image = reference if m == self.modalities[0] else self.cohort.read(subject, m)
            if not Grid.of(image).matches(grid):
                image = resample_onto(image, reference, self.scaling[m].to_physical(0.0))
            arrays[m] = np.asarray(self.scaling[m].to_scaled(array_from_image(image)), np.float32)
        return SubjectVolumes(subject, arrays, head_mask(list(arrays.values())),
                              self.parents(subject), grid)


class TorchDatasetSource:
    """A map-style torch ``Dataset`` of subjects (``{modality: tensor [z, y, x]}``) as a source.

    Parameters
    ----------
    dataset:
        Items are dicts of float tensors ``[z, y, x]`` per modality; optional keys ``"id"`` (str),
        ``"parents"`` (list of patient ids), ``"head"`` (bool ``[z, y, x]``) and ``"provenance"`` (a
        dict, e.g. from :class:`~RobustDeepLogic.synthesis.BlendedDataset`, whose ``"parents"`` are
        used when the item has none of its own).
    scaling:
        Constants to scale physical values to [0, 1]; None when the items are already scaled.
    parents:
        ``parents(index) -> ids`` when items do not carry ``"parents"``; this is needed before loading
        (to refuse subjects of held-out patients) and is called with the item index.
    prefix:
        Subject ids are ``f"{prefix}{index:05d}"``.
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
        i = self._index[subject]
        if self._parents is not None:
            return tuple(str(p) for p in self._parents(i))
        dataset_pairs = getattr(self.dataset, "pair_of", None)
        if callable(dataset_pairs):  # a BlendedDataset knows an item's parents without blending it
            return tuple(str(p) for p in dataset_pairs(i)[0])
        return self._item_parents(self.dataset[i])

    def load(self, subject: str) -> SubjectVolumes:
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
                else head_mask(list(arrays.values())))
        parents = self._item_parents(item) or self.parents(subject)
        return SubjectVolumes(str(item.get("id", subject)), arrays, head, parents)


class ConcatSource:
    """Several sources as one (ids must be unique across them)."""

    def __init__(self, sources: Sequence[Any]) -> None:
        self.sources = list(sources)
        self._owner: Dict[str, Any] = {}
        for s in self.sources:
            for sid in s.ids:
                if sid in self._owner:
                    raise InputError("the same subject id appears in two sources", patient=sid)
                self._owner[sid] = s
        self.ids = list(self._owner)

    def parents(self, subject: str) -> Tuple[str, ...]:
        return self._owner[subject].parents(subject)

    def load(self, subject: str) -> SubjectVolumes:
        return self._owner[subject].load(subject)


# --------------------------------------------------------------------------------------------------
# Windows
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
    :func:`~RobustDeepLogic.synthesis.synthesize` would choose with ``patients=parents, count=count,
    seed=seed``, so an on-the-fly arm and an on-disk one can share their parents. With K masks,
    ``ceil(count / K)`` pairs are chosen and each is blended with every mask, ``count`` subjects in all.
    ``count`` may not exceed K N (N - 1) for N parents. ``method`` is ``'laplacian'``, ``'naive'``,
    ``'mixup'`` or ``'cutmix'`` (the last two take no mask). Volumes are scaled with the cohort's
    constants. ``cohort`` is a registered :class:`~RobustDeepLogic.cohort.Cohort`.
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
