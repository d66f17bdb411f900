"""Registration options: one rigid registration (:class:`RigidConfig`), a cohort's
(:class:`RegistrationOptions`), and the equivalent BRAINSFit parameters.

:class:`RigidConfig` names its options after BRAINSFit's (in snake_case) where BRAINSFit has them, so
that a config can be run by the engine (:func:`~RobustDeepLogic.registration.pairwise.register_rigid`)
or handed to 3D Slicer's BRAINSFit (:func:`brainsfit_parameters`). The registration itself is in
:mod:`RobustDeepLogic.registration.pairwise`, the use of :class:`RegistrationOptions` in
:mod:`RobustDeepLogic.registration.patient` and :mod:`RobustDeepLogic.registration.cohort`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.types import PathLike

#: Values of ``RigidConfig.initialize_transform_mode`` (BRAINSFit ``initializeTransformMode``).
INIT_MODES = ("useMomentsAlign", "useCenterOfHeadAlign", "useGeometryAlign", "Off")

#: Values of ``RigidConfig.cost_metric``: Mattes mutual information, mean squares, normalised
#: correlation (BRAINSFit ``costMetric``).
COST_METRICS = ("MMI", "MSE", "NC")

#: Values of ``RigidConfig.mask_processing_mode`` (BRAINSFit ``maskProcessingMode``).
MASK_MODES = ("NOMASK", "ROIAUTO", "ROI")

#: Values of ``RigidConfig.brain_refinement``.
BRAIN_REFINEMENTS = ("similarity", "off")

#: Head sizes (similarity scale against the template) outside this range reject the brain refinement.
SCALE_RANGE = (0.75, 1.33)

#: Modalities tried, in order, as the reference of the PET/CT frame (the one registered to the
#: FDG template); all are 18F-FDG PET of the same acquisition.
PET_REFERENCE_ORDER: Tuple[str, ...] = ("FD", "MAC", "LD", "NAC")


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------
@dataclass
class RigidConfig:
    """Options of one rigid registration; names follow BRAINSFit (snake_case) where it has them.

    Attributes
    ----------
    cost_metric : str
        ``'MMI'`` Mattes mutual information (default), ``'MSE'`` mean squares, ``'NC'`` normalised
        correlation (BRAINSFit ``costMetric``).
    number_of_histogram_bins : int
        Mattes histogram bins, at least 8 (BRAINSFit ``numberOfHistogramBins``); default 50.
    sampling_percentage : float
        Fraction (0, 1] of fixed-image voxels sampled for the metric at full resolution (BRAINSFit
        ``samplingPercentage``); default 0.02. Coarser pyramid levels sample ``p * shrink^2`` (at
        most 1). Random sampling with a fixed ``seed``: results are reproducible.
    initialize_transform_mode : str
        ``useMomentsAlign`` (centres of intensity mass; default), ``useCenterOfHeadAlign`` (centre of
        the upper head, robust to a long neck or shoulders in the field of view), ``useGeometryAlign``
        (image centres) or ``Off`` (identity: trust the headers) (BRAINSFit
        ``initializeTransformMode``).
    rotation_search_deg, rotation_search_step_deg : float
        After initialisation, an exhaustive search over rotations about the three axes within
        +-``rotation_search_deg`` in steps of ``rotation_search_step_deg`` (degrees; default 30 and
        15), at the coarsest level; ``rotation_search_deg=0`` turns it off (no BRAINSFit counterpart).
    number_of_iterations : int
        Maximum optimizer iterations per level (BRAINSFit ``numberOfIterations``); default 200.
    maximum_step_length, minimum_step_length : float
        Regular-step gradient descent step bounds (``maximum_step_length`` is the initial step), in
        units of the physical-shift-scaled parameters (about mm of voxel displacement); default 2 and
        0.01.
        BRAINSFit's values are in its own scaled units and differ.
    relaxation_factor : float
        Step shrink factor when the gradient turns, in (0, 1) (BRAINSFit ``relaxationFactor``);
        default 0.5.
    shrink_factors : tuple of int
        The multi-resolution pyramid, coarse to fine: shrink factor per level (default 4, 2, 1).
    smoothing_sigmas : tuple of float
        Gaussian sigma per level, in voxels, one per shrink factor (default 2, 1, 0).
    mask_processing_mode : str
        ``'ROI'``: sample the metric inside the given fixed mask (``fixed_mask`` of
        :func:`~RobustDeepLogic.registration.pairwise.register_rigid`, required: without one it
        raises an ``InputError``); ``'ROIAUTO'`` (default): inside an automatic head mask of the
        fixed image; ``'NOMASK'``: everywhere (BRAINSFit ``maskProcessingMode``). For the
        registration to the template, :func:`~RobustDeepLogic.registration.patient.register_patient`
        and ``robustdeep template build`` use ``'ROI'`` (the template head mask) in place of
        ``'ROIAUTO'``; the MR-to-CT registrations of ``register_patient`` have no given mask and use
        ``'ROIAUTO'`` (the CT's head) in place of ``'ROI'``.
    brain_refinement : str
        ``'similarity'`` (default): when the fixed image has a brain mask (the template), the rigid
        result is refined by a 7-DOF similarity registration (rotation, translation, one isotropic
        scale) sampled inside the brain, and the rigid transform closest to it over the brain voxels
        (least squares, Kabsch) is returned: still 6 DOF, but no longer pulled by a head larger or
        smaller than the template, by the scalp, or by one-sided hypometabolism. A fit with a scale
        outside :data:`SCALE_RANGE` is rejected and the rigid result kept. ``'off'``: the rigid
        result as it is (what BRAINSFit's rigid stage returns). No BRAINSFit counterpart.
    working_spacing : float
        Images with voxels finer than this (mm) are block-averaged by integer factors to about this
        spacing before registration (:func:`~RobustDeepLogic.registration.images.working_image`: a
        CT or MR at 0.5-1 mm is registered near the PET grid); 0 keeps the native resolution.
        Default 2 mm.
    seed : int
        Seed of the metric's random sampling.
    number_of_threads : int
        ITK threads for this registration; 0 keeps SimpleITK's global default (BRAINSFit
        ``numberOfThreads``, -1 there).

    References
    ----------
    .. [1] Mattes D., Haynor D.R., Vesselle H., Lewellen T.K., Eubank W., "PET-CT image registration
           in the chest using free-form deformations", IEEE Trans Med Imaging 22(1):120-128, 2003.
    .. [2] docs/method.md §3.4 (rigid registration, 6 degrees of freedom).
    """

    cost_metric: str = "MMI"
    number_of_histogram_bins: int = 50
    sampling_percentage: float = 0.02
    initialize_transform_mode: str = "useMomentsAlign"
    rotation_search_deg: float = 30.0
    rotation_search_step_deg: float = 15.0
    number_of_iterations: int = 200
    maximum_step_length: float = 2.0
    minimum_step_length: float = 1e-2
    relaxation_factor: float = 0.5
    shrink_factors: Tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas: Tuple[float, ...] = (2.0, 1.0, 0.0)
    mask_processing_mode: str = "ROIAUTO"
    brain_refinement: str = "similarity"
    working_spacing: float = 2.0
    seed: int = 20220430
    number_of_threads: int = 0

    def validate(self) -> "RigidConfig":
        """Check every option.

        Returns
        -------
        RigidConfig
            This config, unchanged, so that calls can be chained.

        Raises
        ------
        InputError
            Naming the first option that is not valid, with a hint.
        """
        def bad(name: str, hint: str) -> InputError:
            return InputError(f"registration option {name}={getattr(self, name)!r} is not valid",
                              hint=hint)

        if self.cost_metric not in COST_METRICS:
            raise bad("cost_metric", f"choose one of {', '.join(COST_METRICS)}")
        if self.initialize_transform_mode not in INIT_MODES:
            raise bad("initialize_transform_mode", f"choose one of {', '.join(INIT_MODES)}")
        if self.mask_processing_mode not in MASK_MODES:
            raise bad("mask_processing_mode", f"choose one of {', '.join(MASK_MODES)}")
        if self.brain_refinement not in BRAIN_REFINEMENTS:
            raise bad("brain_refinement", f"choose one of {', '.join(BRAIN_REFINEMENTS)}")
        if not 0 < float(self.sampling_percentage) <= 1:
            raise bad("sampling_percentage", "a fraction in (0, 1], e.g. 0.1 for 10 %")
        if int(self.number_of_histogram_bins) < 8:
            raise bad("number_of_histogram_bins", "use at least 8 bins (50 is usual)")
        if int(self.number_of_iterations) < 1:
            raise bad("number_of_iterations", "at least 1")
        if not 0 < float(self.minimum_step_length) <= float(self.maximum_step_length):
            raise bad("minimum_step_length", "0 < minimum_step_length <= maximum_step_length")
        if not 0 < float(self.relaxation_factor) < 1:
            raise bad("relaxation_factor", "between 0 and 1 (0.5 is usual)")
        if len(self.shrink_factors) != len(self.smoothing_sigmas) or not self.shrink_factors:
            raise bad("shrink_factors", "one shrink factor and one smoothing sigma per level")
        if any(int(s) < 1 for s in self.shrink_factors):
            raise bad("shrink_factors", "shrink factors are integers >= 1")
        if self.rotation_search_deg < 0 or (self.rotation_search_deg > 0
                                            and self.rotation_search_step_deg <= 0):
            raise bad("rotation_search_deg", "a half-range >= 0 and a positive step, in degrees")
        if self.working_spacing < 0:
            raise bad("working_spacing", "mm >= 0 (0 keeps the native resolution)")
        return self

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "RigidConfig":
        """A config from a mapping (e.g. a command's resolved config), validated.

        Parameters
        ----------
        values : mapping of str to object
            Option values under the attribute names; unknown keys and None values are ignored (the
            defaults stay), lists of shrink factors and sigmas become tuples.

        Returns
        -------
        RigidConfig
            The validated config.

        Raises
        ------
        InputError
            When an option is not valid (:meth:`validate`).
        """
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names and v is not None}
        for key in ("shrink_factors", "smoothing_sigmas"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs).validate()

    def as_dict(self) -> Dict[str, Any]:
        """The options as a JSON-able dict (the pyramid tuples as lists).

        Returns
        -------
        dict
            ``{attribute: value}`` for every option; :meth:`from_mapping` reads it back.
        """
        d = asdict(self)
        d["shrink_factors"] = list(self.shrink_factors)
        d["smoothing_sigmas"] = list(self.smoothing_sigmas)
        return d


#: BRAINSFit's defaults for the options that have no counterpart in an engine config.
_BRAINSFIT_FIXED = {"useRigid": True, "useScaleVersor3D": False, "useScaleSkewVersor3D": False,
                    "useAffine": False, "useBSpline": False, "interpolationMode": "Linear",
                    "backgroundFillValue": 0.0, "removeIntensityOutliers": 0.0,
                    "histogramMatch": False}


def brainsfit_parameters(
    config: Optional[RigidConfig] = None,
    *,
    fixed_volume: Any = None,
    moving_volume: Any = None,
    linear_transform: Any = None,
    output_volume: Any = None,
    fixed_mask: Any = None,
) -> Dict[str, Any]:
    """The BRAINSFit parameter dict equivalent to ``config``.

    For ``slicer.cli.runSync(slicer.modules.brainsfit, None, params)`` (Slicer) or the BRAINSFit
    command line (``--key value``). Volumes and the transform may be MRML node ids or nodes (Slicer)
    or file names (command line); they are included only when given.

    Mapping: ``costMetric``, ``numberOfHistogramBins``, ``samplingPercentage``,
    ``initializeTransformMode``, ``numberOfIterations``, ``minimumStepLength``, ``relaxationFactor``,
    ``maskProcessingMode`` (``ROI`` with ``fixedBinaryVolume``; ``ROIAUTO`` with
    ``ROIAutoDilateSize`` 10), ``numberOfThreads`` (-1 for 0) take the config's values;
    ``useRigid`` is on and the other transform types off, interpolation linear with background 0, no
    histogram matching and no outlier removal. Some options have no BRAINSFit counterpart and are
    left out: the multi-resolution pyramid, the coarse rotation search, the brain refinement, the
    working spacing and the seed. ``maximumStepLength`` stays at BRAINSFit's 0.05 with
    ``translationScale`` 1000, because BRAINSFit measures steps in its own scaled units.

    Parameters
    ----------
    config : RigidConfig, optional
        The options (default: ``RigidConfig()``); validated.
    fixed_volume, moving_volume : object, optional
        ``fixedVolume`` / ``movingVolume``: MRML nodes or node ids, or file names.
    linear_transform : object, optional
        ``linearTransform``: the output transform node or file.
    output_volume : object, optional
        ``outputVolume``: the resampled moving volume node or file.
    fixed_mask : object, optional
        ``fixedBinaryVolume``: the fixed mask for ``mask_processing_mode='ROI'`` (e.g. the template
        head mask).

    Returns
    -------
    dict
        BRAINSFit parameter names to values; :class:`pathlib.Path` values become strings.

    Raises
    ------
    InputError
        When ``config`` is not valid (:meth:`RigidConfig.validate`).
    """
    config = (config or RigidConfig()).validate()
    params: Dict[str, Any] = dict(_BRAINSFIT_FIXED)
    params.update({
        "costMetric": config.cost_metric,
        "numberOfHistogramBins": int(config.number_of_histogram_bins),
        "samplingPercentage": float(config.sampling_percentage),
        "initializeTransformMode": config.initialize_transform_mode,
        "numberOfIterations": int(config.number_of_iterations),
        "minimumStepLength": float(config.minimum_step_length),
        "maximumStepLength": 0.05,
        "translationScale": 1000.0,
        "relaxationFactor": float(config.relaxation_factor),
        "maskProcessingMode": config.mask_processing_mode,
        "numberOfThreads": int(config.number_of_threads) if config.number_of_threads > 0 else -1,
    })
    if config.mask_processing_mode == "ROIAUTO":
        params["ROIAutoDilateSize"] = 10.0
    for key, value in (("fixedVolume", fixed_volume), ("movingVolume", moving_volume),
                       ("linearTransform", linear_transform), ("outputVolume", output_volume),
                       ("fixedBinaryVolume", fixed_mask)):
        if value is not None:
            params[key] = value if not isinstance(value, Path) else str(value)
    return params


# --------------------------------------------------------------------------------------------------
# Options of a patient's registration (robustdeep register)
# --------------------------------------------------------------------------------------------------
@dataclass
class RegistrationOptions:
    """Everything a cohort registration needs besides the data (the CLI's config, typed).

    Attributes
    ----------
    rigid : RigidConfig
        The rigid registration options, used for every registration of a patient (to the template,
        with ``'ROI'`` in place of ``'ROIAUTO'``; MR to CT or PET).
    transform_format : str
        Transform file type: ``'tfm'`` (default) or ``'h5'``.
    qc_images : bool
        Write a QC picture (``qc.png``) per patient.
    dice_threshold : float
        A patient whose registered head mask has a Dice below this with the template head mask is
        flagged (default 0.85).
    correlation_threshold : float
        A patient whose registered reference PET has a Pearson correlation below this with the FDG
        template inside the template head is flagged (default 0.7).
    mr_dice_threshold : float
        A patient whose registered T1 / T2 head mask has a Dice below this with the patient's head
        mask is flagged (default 0.85).
    """

    rigid: RigidConfig = field(default_factory=RigidConfig)
    transform_format: str = "tfm"
    qc_images: bool = True
    dice_threshold: float = 0.85
    correlation_threshold: float = 0.7
    mr_dice_threshold: float = 0.85

    def fingerprint(self, template_files: Mapping[str, PathLike]) -> str:
        """A short hash of the options and template files: a resumed run redoes a patient if it changed.

        Parameters
        ----------
        template_files : mapping of str to path-like
            The template files (``{'fdg', 'head_mask', 'brain_mask'}``); the contents of those that
            exist are hashed, in key order.

        Returns
        -------
        str
            16 hexadecimal characters of a SHA-256 over the rigid options, the transform format and
            the template files. The QC thresholds and ``qc_images`` are not included.
        """
        h = hashlib.sha256(json.dumps(self.rigid.as_dict(), sort_keys=True).encode())
        h.update(self.transform_format.encode())
        for key in sorted(template_files):
            p = Path(template_files[key])
            if p.is_file():
                h.update(hashlib.sha256(p.read_bytes()).digest())
        return h.hexdigest()[:16]
