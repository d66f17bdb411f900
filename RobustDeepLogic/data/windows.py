"""Axial 2D training windows and whole validation volumes cut from volume sources (docs/method.md §7).

:class:`WindowDataset` draws, for every axial slice of the head of every subject, one window of
``window = (rows, columns)`` voxels (112 x 96 by default: rows along y, columns along x), placed at
random so that it covers the slice's head bounding box when that fits, and lies inside it otherwise.
Item ``i`` of epoch ``e`` is a deterministic function of ``(seed, e, i)``, so a resumed run draws the
same windows. Subjects are kept in memory cropped to their head slices and head bounding box plus
:data:`CROP_MARGIN` voxels (least recently used dropped beyond the cache size); the parts of a window
outside that crop are zero. :class:`EpochSampler` orders the items (subjects shuffled in blocks that
fit the cache, slices shuffled inside a block) and shards them over distributed ranks.
:func:`validation_volumes` loads the validation subjects whole.

The subjects come from a volume source (:mod:`RobustDeepLogic.data.sources`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import (
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np
import torch

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.data.sources import SubjectVolumes
from RobustDeepLogic.io.headmask import head_mask

#: Default training window (rows along y, columns along x), docs/method.md §7.
DEFAULT_WINDOW: Tuple[int, int] = (112, 96)

#: Stored crops keep this margin (voxels in y and x) around the head bounding box.
CROP_MARGIN = 56


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
    """Cut ``slice_stack[:, y0:y0+h, x0:x0+w]``, with zeros where the window leaves the array.

    Parameters
    ----------
    slice_stack : numpy.ndarray
        ``[C, y, x]`` channels of one axial slice.
    y0, x0 : int
        Corner of the window in voxels; may be negative or let the window pass the far edge.
    window : tuple of int
        ``(h, w)``: rows (along y) and columns (along x) of the window.

    Returns
    -------
    numpy.ndarray
        float32 ``[C, h, w]``, a copy.
    """
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

    Items are ``(x, y)`` torch tensors: ``x`` float32 ``[C, rows, cols]`` (the task's inputs, scaled),
    ``y`` float32 ``[1, rows, cols]`` (the target, scaled). Item ``i`` is slice ``items[i]``; its window
    is drawn with ``numpy.random.default_rng([seed, epoch, i])``. Every subject is loaded once when
    the dataset is built, to index its head slices.

    Parameters
    ----------
    source : VolumeSource
        Offers every id in ``ids`` (:mod:`RobustDeepLogic.data.sources`).
    ids : sequence of str
        Training subjects (already checked for leakage).
    inputs : sequence of str
        Input modalities of the task, in channel order.
    target : str
        Target modality of the task.
    window : tuple of int, optional
        ``(rows, cols)`` of a window in voxels; default :data:`DEFAULT_WINDOW` (112, 96).
    seed : int, optional
        Seed of the window draws.
    slices_per_subject : int, optional
        Use at most this many head slices per subject (evenly spaced; None: all), for reduced
        CPU profiles.
    cache_bytes : int, optional
        Bytes of cropped subjects held in memory (least recently used are dropped, the last one is
        always kept); default 4 GiB.
    progress : RobustDeepLogic.core.progress.Progress, optional
        Reports the stage ``"index training subjects"``.

    Raises
    ------
    InputError
        When a subject has no head voxels or lacks one of the modalities.
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
        """Set the epoch whose windows the items draw.

        Parameters
        ----------
        epoch : int
            Epoch number (the training loop counts from 1).
        """
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def subject_of(self, index: int) -> int:
        """The subject of item ``index``.

        Parameters
        ----------
        index : int
            Item index.

        Returns
        -------
        int
            Position of the item's subject in :attr:`ids`.
        """
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
    full shuffle. The order is drawn with ``numpy.random.default_rng([seed, epoch, 7919])``, the same on
    every rank; rank ``r`` takes every ``world``-th item from position ``r``.

    Parameters
    ----------
    dataset : WindowDataset
        The items to order.
    seed : int, optional
        Seed of the order.
    rank : int, optional
        This process's rank, ``0 <= rank < world``.
    world : int, optional
        Number of processes.
    block_subjects : int, optional
        Subjects per shuffled block; None (default): all subjects in one block.
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
        """Set the epoch whose order :meth:`order` and iteration give.

        Parameters
        ----------
        epoch : int
            Epoch number.
        """
        self.epoch = int(epoch)

    def order(self) -> List[int]:
        """This rank's item indices for the current epoch, in order.

        Returns
        -------
        list of int
            ``len(dataset) // world`` indices into ``dataset``.
        """
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
    """A validation subject: inputs ``[C, z, y, x]``, target ``[z, y, x]``, head mask, all scaled.

    Attributes
    ----------
    id : str
        Subject id.
    inputs : numpy.ndarray
        float32 ``[C, z, y, x]``: the task's inputs in scaled units, in channel order.
    target : numpy.ndarray
        float32 ``[z, y, x]``: the target in scaled units.
    head : numpy.ndarray
        Boolean ``[z, y, x]`` head mask: :func:`~RobustDeepLogic.io.headmask.head_mask` of ``target``,
        the region of the validation metrics (and of the evaluation's, for the same reference).
    """

    id: str
    inputs: np.ndarray
    target: np.ndarray
    head: np.ndarray


def validation_volumes(source, ids: Sequence[str], inputs: Sequence[str], target: str,
                       progress=None) -> List[ValidationVolume]:
    """Load the validation subjects whole (scaled), each with the head mask of its target.

    Parameters
    ----------
    source : VolumeSource
        Offers every id in ``ids`` (:mod:`RobustDeepLogic.data.sources`).
    ids : sequence of str
        Validation subjects.
    inputs : sequence of str
        Input modalities of the task, in channel order.
    target : str
        Target modality of the task.
    progress : RobustDeepLogic.core.progress.Progress, optional
        Reports the stage ``"load validation subjects"``.

    Returns
    -------
    list of ValidationVolume
        One per id, in the order of ``ids``.

    Raises
    ------
    InputError
        When a subject lacks one of ``inputs`` (or the source cannot load it).
    """
    progress = progress or Progress()
    out = []
    with progress.stage("load validation subjects", total=len(ids)) as st:
        for sid in ids:
            sub = source.load(sid)
            reference = sub.arrays[target].astype(np.float32)
            out.append(ValidationVolume(sid, sub.stack(inputs), reference, head_mask(reference)))
            st.advance()
    return out
