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

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch
from scipy import ndimage

from .errors import InputError

#: Default training window (rows along y, columns along x), method.md §7.
DEFAULT_WINDOW: Tuple[int, int] = (112, 96)
#: Stored crops keep this margin (voxels in y and x) around the head bounding box.
CROP_MARGIN = 56


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


def head_mask(arrays: Sequence[np.ndarray], fraction: float = 0.05, sigma: float = 1.0) -> np.ndarray:
    """Head region of co-registered scaled ``[z, y, x]`` volumes: a bool ``[z, y, x]`` mask.

    A voxel is head when, in any volume, its Gaussian-smoothed value (``sigma`` voxels) exceeds
    ``fraction`` of that volume's 99th percentile; holes are filled slice by slice and the largest
    connected component is kept. Scaled backgrounds are near 0 (PET, MR, CT air at -1000 HU).
    """
    mask = None
    for a in arrays:
        a = np.asarray(a, dtype=np.float32)
        smooth = ndimage.gaussian_filter(a, sigma) if sigma > 0 else a
        level = float(np.percentile(smooth, 99))
        m = smooth > fraction * level if level > 0 else np.zeros(a.shape, bool)
        mask = m if mask is None else (mask | m)
    if mask is None or not mask.any():
        return np.zeros(np.asarray(arrays[0]).shape if len(arrays) else (0, 0, 0), bool)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
        mask = labels == (1 + int(np.argmax(sizes)))
    for z in range(mask.shape[0]):
        if mask[z].any():
            mask[z] = ndimage.binary_fill_holes(mask[z])
    return mask


def resample_onto(image, reference, default_value: float = 0.0):
    """``image`` (SimpleITK) resampled onto ``reference``'s grid with the header geometry alone.

    Identity transform, linear interpolation; points outside ``image`` get ``default_value`` (in the
    image's physical units). For modalities registered within a patient but on different grids.
    """
    import SimpleITK as sitk

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
        from .volumes import Grid, array_from_image

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
    from .synthesis import BlendedDataset, choose_pairs

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


@dataclass
class _Stored:
    """A subject cropped to its head (z: head slices; y, x: bounding box + margin)."""

    stack: np.ndarray  # [C+1, z, y, x] float32: inputs then target
    boxes: np.ndarray  # [z, 4] int: y0, y1, x0, x1 (exclusive ends) of the head in each stored slice

    @property
    def nbytes(self) -> int:
        return int(self.stack.nbytes)


def _store(subject: SubjectVolumes, modalities: Sequence[str], margin: int = CROP_MARGIN) -> _Stored:
    head = subject.head
    zs = np.flatnonzero(head.any(axis=(1, 2)))
    if zs.size == 0:
        raise InputError("no head voxels found (an empty or constant volume?)", patient=subject.id)
    ys = np.flatnonzero(head.any(axis=(0, 2)))
    xs = np.flatnonzero(head.any(axis=(0, 1)))
    y0, y1 = max(0, ys[0] - margin), min(head.shape[1], ys[-1] + 1 + margin)
    x0, x1 = max(0, xs[0] - margin), min(head.shape[2], xs[-1] + 1 + margin)
    stack = subject.stack(modalities)[:, zs][:, :, y0:y1, x0:x1]
    boxes = np.zeros((zs.size, 4), np.int64)
    for k, z in enumerate(zs):
        sl = head[z, y0:y1, x0:x1]
        yy = np.flatnonzero(sl.any(axis=1))
        xx = np.flatnonzero(sl.any(axis=0))
        boxes[k] = (yy[0], yy[-1] + 1, xx[0], xx[-1] + 1)
    return _Stored(np.ascontiguousarray(stack), boxes)


def _start(lo: int, hi: int, size: int, rng: np.random.Generator) -> int:
    """Random window start along one axis: cover [lo, hi) if it fits, else lie inside it."""
    extent = hi - lo
    a, b = (hi - size, lo) if extent <= size else (lo, hi - size)
    return int(rng.integers(a, b + 1))


def cut_window(slice_stack: np.ndarray, y0: int, x0: int, window: Tuple[int, int]) -> np.ndarray:
    """``slice_stack[:, y0:y0+h, x0:x0+w]`` with zeros where the window leaves the array."""
    c, ny, nx = slice_stack.shape
    h, w = window
    out = np.zeros((c, h, w), np.float32)
    ya, yb = max(0, y0), min(ny, y0 + h)
    xa, xb = max(0, x0), min(nx, x0 + w)
    if ya < yb and xa < xb:
        out[:, ya - y0:yb - y0, xa - x0:xb - x0] = slice_stack[:, ya:yb, xa:xb]
    return out


class WindowDataset(torch.utils.data.Dataset):
    """One random window per head slice per subject, per epoch (see the module doc).

    Items are ``(x, y)``: ``x`` float32 ``[C, rows, cols]`` (the task's inputs, scaled), ``y`` float32
    ``[1, rows, cols]`` (the target, scaled).

    Parameters
    ----------
    source:
        A :class:`VolumeSource` offering every id in ``ids``.
    ids:
        Training subjects (already checked for leakage).
    inputs, target:
        Modalities of the task.
    slices_per_subject:
        Use at most this many head slices per subject (evenly spaced; None: all), for reduced
        CPU profiles.
    cache_bytes:
        Memory for subjects held in memory (least recently used are dropped).
    """

    def __init__(self, source, ids: Sequence[str], inputs: Sequence[str], target: str, *,
                 window: Tuple[int, int] = DEFAULT_WINDOW, seed: int = 0,
                 slices_per_subject: Optional[int] = None, cache_bytes: int = 4 << 30,
                 progress=None) -> None:
        self.source = source
        self.ids = list(ids)
        self.modalities = list(inputs) + [target]
        self.window = (int(window[0]), int(window[1]))
        self.seed = int(seed)
        self.epoch = 0
        self.cache_bytes = int(cache_bytes)
        self._cache: "OrderedDict[str, _Stored]" = OrderedDict()
        self._cached = 0
        self.items: List[Tuple[int, int]] = []  # (subject index, stored slice index)
        self.subject_bytes: List[int] = []
        from .progress import Progress

        progress = progress or Progress()
        with progress.stage("index training subjects", total=len(self.ids)) as st:
            for s, sid in enumerate(self.ids):
                stored = self._get(sid)
                n = stored.stack.shape[1]
                ks = np.arange(n)
                if slices_per_subject is not None and n > slices_per_subject:
                    ks = np.unique(np.linspace(0, n - 1, int(slices_per_subject)).round().astype(int))
                self.items.extend((s, int(k)) for k in ks)
                self.subject_bytes.append(stored.nbytes)
                st.advance()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def subject_of(self, index: int) -> int:
        return self.items[index][0]

    def _get(self, sid: str) -> _Stored:
        stored = self._cache.get(sid)
        if stored is not None:
            self._cache.move_to_end(sid)
            return stored
        stored = _store(self.source.load(sid), self.modalities)
        self._cache[sid] = stored
        self._cached += stored.nbytes
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return stored

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        s, k = self.items[index]
        stored = self._get(self.ids[s])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        y0, y1, x0, x1 = (int(v) for v in stored.boxes[k])
        ys = _start(y0, y1, self.window[0], rng)
        xs = _start(x0, x1, self.window[1], rng)
        w = cut_window(stored.stack[:, k], ys, xs, self.window)
        return torch.from_numpy(w[:-1]), torch.from_numpy(w[-1:])


class EpochSampler(torch.utils.data.Sampler):
    """Seeded item order for one epoch, sharded over ``world`` ranks (equal lengths, tail dropped).

    Subjects are shuffled, grouped into blocks of ``block_subjects`` (as many as the cache holds), and
    the slices of a block are shuffled together: with a cache large enough for all subjects this is a
    full shuffle.
    """

    def __init__(self, dataset: WindowDataset, *, seed: int = 0, rank: int = 0, world: int = 1,
                 block_subjects: Optional[int] = None) -> None:
        self.dataset = dataset
        self.seed = int(seed)
        self.rank = int(rank)
        self.world = int(world)
        self.block = block_subjects
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def order(self) -> List[int]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        by_subject: Dict[int, List[int]] = {}
        for i, (s, _) in enumerate(self.dataset.items):
            by_subject.setdefault(s, []).append(i)
        subjects = list(rng.permutation(sorted(by_subject)))
        block = self.block or len(subjects) or 1
        order: List[int] = []
        for b in range(0, len(subjects), block):
            members = [i for s in subjects[b:b + block] for i in by_subject[int(s)]]
            order.extend(int(members[j]) for j in rng.permutation(len(members)))
        per_rank = len(order) // self.world
        return order[self.rank:per_rank * self.world:self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.order())

    def __len__(self) -> int:
        return len(self.dataset) // self.world


# --------------------------------------------------------------------------------------------------
# Whole volumes for validation
# --------------------------------------------------------------------------------------------------
@dataclass
class ValidationVolume:
    """A validation subject: inputs ``[C, z, y, x]``, target ``[z, y, x]``, head mask, all scaled."""

    id: str
    inputs: np.ndarray
    target: np.ndarray
    head: np.ndarray


def validation_volumes(source, ids: Sequence[str], inputs: Sequence[str], target: str,
                       progress=None) -> List[ValidationVolume]:
    """Load the validation subjects whole (scaled)."""
    from .progress import Progress

    progress = progress or Progress()
    out = []
    with progress.stage("load validation subjects", total=len(ids)) as st:
        for sid in ids:
            sub = source.load(sid)
            out.append(ValidationVolume(sid, sub.stack(inputs), sub.arrays[target].astype(np.float32),
                                        sub.head))
            st.advance()
    return out
