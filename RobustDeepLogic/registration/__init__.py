"""Rigid registration to template (MNI) space (docs/method.md §3.4).

One patient (:func:`~RobustDeepLogic.registration.patient.register_patient`):

1. The reference PET (FD; without FD, the first of MAC, LD, NAC) to the FDG template: rigid,
   6 degrees of freedom (ITK ``VersorRigid3DTransform``), Mattes mutual information (Mattes et al.,
   IEEE TMI 22:120, 2003), regular-step gradient descent over a multi-resolution pyramid, initialised
   by image moments (or the centre of the head, or the image centres) followed by a coarse exhaustive
   search over rotations, so that tilts of 30 degrees and more converge. Then the brain refinement
   (``RigidConfig.brain_refinement``): a similarity fit (one more degree of freedom, the head's size)
   sampled inside the template brain, and the rigid transform closest to it over the brain
   (:func:`~RobustDeepLogic.registration.rigid.closest_rigid`); the result stays 6-DOF.
2. FD, LD, NAC, MAC and CT share the PET/CT frame: the same transform moves them.
3. T1 and T2 are registered rigidly to the patient's CT (to the reference PET when there is no CT),
   and that transform is composed with the PET/CT one into template space.
4. Everything is resampled onto the template grid (linear for images, nearest neighbour for labels);
   a head mask (from CT, else from the reference PET) is resampled too.

Transform convention (tested in ``Testing/test_registration.py``). Every transform here, and every
transform file written, is what ITK/SimpleITK registration returns: it maps points of the *fixed*
space to points of the *moving* space, in LPS millimetres. For ``PETCT_to_template.tfm``::

    registered = sitk.Resample(native_fd, template_image, T, sitk.sitkLinear, 0.0)

gives the registered FD on the template grid. 3D Slicer reads such a file as the "resampling"
transform (``TransformFromParent``): put the native volume under the loaded transform and Slicer
shows it aligned with the template, exactly as with BRAINSFit's ``linearTransform`` output. Names read
"MOVING_to_FIXED" in that Slicer sense (the file itself maps fixed-space points to moving-space
points). The files are read and written by :func:`~RobustDeepLogic.io.transforms.read_transform` and
:func:`~RobustDeepLogic.io.transforms.write_transform`, re-exported here.

BRAINSFit parity: :class:`~RobustDeepLogic.registration.config.RigidConfig` carries BRAINSFit's rigid
options under their BRAINSFit meanings; :func:`~RobustDeepLogic.registration.config.brainsfit_parameters`
returns the parameter dict for ``slicer.cli.runSync(slicer.modules.brainsfit, None, params)``
equivalent to a config.

Modules, in the order of use: :mod:`~RobustDeepLogic.registration.assets` (the template assets
prepared at set-up), :mod:`~RobustDeepLogic.registration.template_grid` (the
template grid, MNI <-> LPS), :mod:`~RobustDeepLogic.registration.templates` (tissue maps,
FDG / T1 templates, head and brain masks), :mod:`~RobustDeepLogic.registration.template_space` (the
fixed side of a registration, in memory and on disk), :mod:`~RobustDeepLogic.registration.config`
(``RigidConfig``, ``RegistrationOptions``, BRAINSFit parameters),
:mod:`~RobustDeepLogic.registration.images` (checks, working images, centres, foreground masks,
resampling), :mod:`~RobustDeepLogic.registration.rigid` (rigid transform algebra),
:mod:`~RobustDeepLogic.registration.search` (the metric set-up and the coarse rotation search),
:mod:`~RobustDeepLogic.registration.pairwise` (``register_rigid``: one moving image onto one fixed
image), :mod:`~RobustDeepLogic.registration.result` (``RigidResult``), :mod:`~RobustDeepLogic.registration.qc` (quality control),
:mod:`~RobustDeepLogic.registration.patient` (one patient's modalities),
:mod:`~RobustDeepLogic.registration.cohort` (``robustdeep register``),
:mod:`~RobustDeepLogic.registration.study_template` (``robustdeep template build``),
:mod:`~RobustDeepLogic.registration.known_pose` (test cases with a known transform).
"""

from RobustDeepLogic.io.transforms import (  # the files registration writes
    read_transform,
    write_transform,
)
from RobustDeepLogic.registration.assets import (
    ASSETS,
    ASSETS_ENV,
    NILEARN,
    RECORD_NAME,
    SPM,
    TPM_CLASSES,
    WHEEL_PYTHON_VERSION,
    AssetSpec,
    asset_path,
    assets_dir,
    assets_ready,
    load_asset,
    pip_download_command,
    prepare_assets,
)
from RobustDeepLogic.registration.cohort import CohortRegistration, register_cohort
from RobustDeepLogic.registration.config import (
    BRAIN_REFINEMENTS,
    COST_METRICS,
    INIT_MODES,
    MASK_MODES,
    PET_REFERENCE_ORDER,
    SCALE_RANGE,
    RegistrationOptions,
    RigidConfig,
    brainsfit_parameters,
)
from RobustDeepLogic.registration.images import (
    centre_of_head,
    centre_of_mass,
    check_image,
    foreground_mask,
    image_centre,
    resample_to_template,
    working_image,
)
from RobustDeepLogic.registration.known_pose import (
    KnownPoseCase,
    known_pose_case,
    native_grid,
    random_pose,
)
from RobustDeepLogic.registration.pairwise import register_rigid
from RobustDeepLogic.registration.patient import (
    MARKER_NAME,
    TRANSFORM_NAMES,
    PatientRegistration,
    load_done,
    register_patient,
    save_patient,
)
from RobustDeepLogic.registration.qc import (
    CSV_COLUMNS,
    checkerboard,
    dice,
    mask_points,
    masked_correlation,
    patient_qc,
    qc_figure,
    summary_rows,
    target_registration_error,
    write_summary_csv,
)
from RobustDeepLogic.registration.result import RigidResult
from RobustDeepLogic.registration.rigid import (
    affine_parts,
    closest_rigid,
    compose_rigid,
    fit_rigid,
    rigid_from_matrix,
    rigid_transform,
    transform_parameters,
)
from RobustDeepLogic.registration.search import rotation_search
from RobustDeepLogic.registration.study_template import build_study_template
from RobustDeepLogic.registration.template_grid import (
    HEAD_BOUNDS_MNI,
    grid_image,
    lps_to_mni,
    mni_to_lps,
    resample_to_grid,
    template_grid,
)
from RobustDeepLogic.registration.template_space import (
    TEMPLATE_FILES,
    TemplateSpace,
    load_template_image,
    write_template_space,
)
from RobustDeepLogic.registration.templates import (
    BACKGROUND,
    PET_FWHM_MM,
    TISSUE_CLASSES,
    TISSUE_VALUES,
    brain_mask,
    fdg_template,
    head_mask,
    smooth_fwhm,
    t1_template,
    tissue_maps,
    tissue_model_image,
)

__all__ = [
    "read_transform",
    "write_transform",
    "ASSETS_ENV",
    "RECORD_NAME",
    "NILEARN",
    "SPM",
    "TPM_CLASSES",
    "AssetSpec",
    "ASSETS",
    "assets_dir",
    "asset_path",
    "assets_ready",
    "load_asset",
    "prepare_assets",
    "pip_download_command",
    "WHEEL_PYTHON_VERSION",
    "CohortRegistration",
    "register_cohort",
    "INIT_MODES",
    "COST_METRICS",
    "MASK_MODES",
    "BRAIN_REFINEMENTS",
    "SCALE_RANGE",
    "PET_REFERENCE_ORDER",
    "RigidConfig",
    "brainsfit_parameters",
    "RegistrationOptions",
    "check_image",
    "working_image",
    "centre_of_mass",
    "image_centre",
    "centre_of_head",
    "foreground_mask",
    "resample_to_template",
    "KnownPoseCase",
    "native_grid",
    "random_pose",
    "known_pose_case",
    "RigidResult",
    "register_rigid",
    "rotation_search",
    "TRANSFORM_NAMES",
    "PatientRegistration",
    "register_patient",
    "MARKER_NAME",
    "save_patient",
    "load_done",
    "dice",
    "masked_correlation",
    "target_registration_error",
    "mask_points",
    "patient_qc",
    "CSV_COLUMNS",
    "summary_rows",
    "write_summary_csv",
    "checkerboard",
    "qc_figure",
    "rigid_from_matrix",
    "rigid_transform",
    "affine_parts",
    "compose_rigid",
    "transform_parameters",
    "fit_rigid",
    "closest_rigid",
    "build_study_template",
    "TemplateSpace",
    "TEMPLATE_FILES",
    "write_template_space",
    "load_template_image",
    "HEAD_BOUNDS_MNI",
    "TISSUE_CLASSES",
    "TISSUE_VALUES",
    "BACKGROUND",
    "PET_FWHM_MM",
    "mni_to_lps",
    "lps_to_mni",
    "template_grid",
    "grid_image",
    "resample_to_grid",
    "tissue_maps",
    "tissue_model_image",
    "smooth_fwhm",
    "fdg_template",
    "t1_template",
    "head_mask",
    "brain_mask",
]
