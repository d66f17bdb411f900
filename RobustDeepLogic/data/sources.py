"""Volume sources: the subjects a network trains on, one at a time, on one grid (docs/method.md §3, §7).

A source yields one subject at a time as a :class:`SubjectVolumes`: a dict of 3D float32 ``[z, y, x]``
arrays in scaled units (the cohort's fixed constants, docs/method.md §3.2, never per-image min-max), a
head mask, and the subject's parents (itself for a real patient). Any object with ``ids``,
``parents(id)`` and ``load(id)`` is a source (:class:`VolumeSource`); this module provides:

- :class:`CohortSource` reads a cohort folder. The first modality of ``modalities`` (the task's
  target) is the reference grid; another modality on a different grid (T1 / T2 beside PET in native
  space, the PU scenario) is resampled onto it with the header geometry (identity transform, linear).
- :class:`TorchDatasetSource` wraps a map-style torch ``Dataset`` whose items are
  ``{modality: float32 tensor [z, y, x], ...}`` (optionally also ``"id"``, ``"parents"``,
  ``"head"``), e.g. on-the-fly Laplacian-blended pairs from the synthesis stage.
- :class:`ConcatSource` offers several sources as one.
- :func:`on_the_fly_source` makes a :class:`TorchDatasetSource` of synthetic subjects blended when
  they are loaded (:class:`~RobustDeepLogic.synthesis.dataset.BlendedDataset`), with no disk.

The head mask of a subject is :func:`RobustDeepLogic.io.headmask.head_mask` of its scaled reference
volume (the first modality: the task's target), the region of the evaluation's metrics too. The
2D training windows cut from these subjects, their sampler and the validation volumes are in
:mod:`RobustDeepLogic.data.windows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import (
    Any,
    Dict,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
)

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.io.headmask import head_mask
from RobustDeepLogic.io.volumes import Grid, array_from_image


# --------------------------------------------------------------------------------------------------
# Subjects and sources
# --------------------------------------------------------------------------------------------------
@dataclass
class SubjectVolumes:
    """One subject: scaled float32 ``[z, y, x]`` arrays per modality on one grid, and a head mask.

    Attributes
    ----------
    id : str
        Subject id (a patient id, or a synthetic subject's id).
    arrays : dict of str to numpy.ndarray
        Modality name (``"FD"``, ``"CT"``, ...) to a float32 ``[z, y, x]`` array in scaled units (the
        cohort's fixed constants, docs/method.md §3.2). All arrays share one grid.
    head : numpy.ndarray
        Boolean ``[z, y, x]`` head mask on the same grid.
    parents : tuple of str
        The real patients the subject descends from: ``(id,)`` for a real patient, the blended
        parents for a synthetic one; ``()`` when unknown.
    grid : RobustDeepLogic.io.volumes.Grid or None
        The geometry of the arrays when known (sources built on SimpleITK images set it).
    """

    id: str
    arrays: Dict[str, np.ndarray]
    head: np.ndarray
    parents: Tuple[str, ...] = ()
    grid: Any = None  # a volumes.Grid when known

    def stack(self, modalities: Sequence[str]) -> np.ndarray:
        """Stack the arrays of ``modalities``, in that order, into one channel-first array.

        Parameters
        ----------
        modalities : sequence of str
            Modality names, keys of :attr:`arrays`; the order gives the channel order.

        Returns
        -------
        numpy.ndarray
            float32 ``[C, z, y, x]`` with ``C = len(modalities)``, in scaled units.

        Raises
        ------
        InputError
            When the subject has no array for one of ``modalities``.
        """
        missing = [m for m in modalities if m not in self.arrays]
        if missing:
            raise InputError(f"has no {', '.join(missing)} image", patient=self.id)
        return np.stack([self.arrays[m] for m in modalities]).astype(np.float32, copy=False)


class VolumeSource(Protocol):
    """Anything that lists subject ids and loads one subject (see the module doc).

    Attributes
    ----------
    ids : sequence of str
        The subjects the source offers.
    """

    ids: Sequence[str]

    def parents(self, subject: str) -> Tuple[str, ...]:
        """The real patients a subject descends from, known without loading its volumes if possible.

        Parameters
        ----------
        subject : str
            One of :attr:`ids`.

        Returns
        -------
        tuple of str
            ``(subject,)`` for a real patient, the parents' ids for a synthetic subject.
        """
        ...

    def load(self, subject: str) -> SubjectVolumes:
        """Load one subject, scaled, on one grid.

        Parameters
        ----------
        subject : str
            One of :attr:`ids`.

        Returns
        -------
        SubjectVolumes
            The subject's arrays, head mask and parents.
        """
        ...


def resample_onto(image, reference, default_value: float = 0.0):
    """Resample ``image`` onto ``reference``'s grid with the header geometry alone.

    Identity transform, linear interpolation; points outside ``image`` get ``default_value``. For
    modalities registered within a patient but on different grids (T1 / T2 beside PET in native
    space), whose headers already place them in one physical (LPS mm) frame.

    Parameters
    ----------
    image : SimpleITK.Image
        The volume to resample, in physical units (SUV, HU, MR a.u.).
    reference : SimpleITK.Image
        Gives the output grid (size, spacing, origin, direction); its voxels are not used.
    default_value : float, optional
        Value of output voxels that fall outside ``image``, in ``image``'s physical units (callers
        pass the value that scales to 0, e.g. -1000 HU for CT).

    Returns
    -------
    SimpleITK.Image
        float32 image on ``reference``'s grid.
    """
    return sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, float(default_value),
                         sitk.sitkFloat32)


class CohortSource:
    """Subjects of a cohort folder, scaled with the cohort's constants, on the first modality's grid.

    A modality on another grid than the first one is resampled onto it with :func:`resample_onto`
    (outside its field of view it takes the value that scales to 0). The head mask is
    :func:`~RobustDeepLogic.io.headmask.head_mask` of the scaled first modality (the target).

    Parameters
    ----------
    cohort : RobustDeepLogic.cohort.Cohort
        The cohort whose volumes are read.
    ids : sequence of str
        Subjects to offer (real or synthetic), ids of ``cohort``.
    modalities : sequence of str
        Modalities to load; the first is the reference grid (put the task's target first).
    scaling : mapping of str to RobustDeepLogic.cohort.Scaling, optional
        Constants per modality; default ``cohort.scaling_for(modality)`` for each of ``modalities``.

    Raises
    ------
    InputError
        When a subject of ``ids`` is not in the cohort or lacks one of ``modalities``, or (without
        ``scaling``) the cohort has no scaling constant for one of them.
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
        """The real patients ``subject`` descends from, from the cohort's manifest.

        Parameters
        ----------
        subject : str
            A subject id of the cohort.

        Returns
        -------
        tuple of str
            ``(subject,)`` for a real patient, the recorded parents for a synthetic subject.
        """
        return tuple(self.cohort.patient(subject).parents)

    def load(self, subject: str) -> SubjectVolumes:
        """Read, resample and scale one subject's volumes.

        Parameters
        ----------
        subject : str
            A subject id of the cohort.

        Returns
        -------
        SubjectVolumes
            float32 ``[z, y, x]`` arrays in scaled units on the grid of the first modality (also
            stored as its ``grid``), the head mask of the first modality, and the parents.
        """
        reference = self.cohort.read(subject, self.modalities[0])
        grid = Grid.of(reference)
        arrays: Dict[str, np.ndarray] = {}
        for m in self.modalities:
            image = reference if m == self.modalities[0] else self.cohort.read(subject, m)
            if not Grid.of(image).matches(grid):
                image = resample_onto(image, reference, self.scaling[m].to_physical(0.0))
            arrays[m] = np.asarray(self.scaling[m].to_scaled(array_from_image(image)), np.float32)
        return SubjectVolumes(subject, arrays, head_mask(arrays[self.modalities[0]]),
                              self.parents(subject), grid)


class ConcatSource:
    """Several sources as one (ids must be unique across them).

    Parameters
    ----------
    sources : sequence of VolumeSource
        The sources; :attr:`ids` lists their ids in order.

    Raises
    ------
    InputError
        When the same subject id appears in two sources.
    """

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
        """The parents of ``subject``, from the source that offers it.

        Parameters
        ----------
        subject : str
            One of :attr:`ids`.

        Returns
        -------
        tuple of str
            What that source's ``parents`` returns.
        """
        return self._owner[subject].parents(subject)

    def load(self, subject: str) -> SubjectVolumes:
        """Load ``subject`` from the source that offers it.

        Parameters
        ----------
        subject : str
            One of :attr:`ids`.

        Returns
        -------
        SubjectVolumes
            What that source's ``load`` returns.
        """
        return self._owner[subject].load(subject)


