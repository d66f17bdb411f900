"""Infrastructure every stage uses: errors, progress reporting, configuration files, atomic file
writing, the modality vocabulary and shared types. Imports nothing else of the engine.

Modules: :mod:`.errors` (``InputError``), :mod:`.progress` (bar / JSON-lines / silent progress),
:mod:`.config` (YAML configurations with ``--set`` overrides), :mod:`.files` (atomic writes, volume
file endings), :mod:`.modalities` (FD, LD, NAC, MAC, CT, T1, T2; families and units), :mod:`.types`,
:mod:`.version`.
"""

from RobustDeepLogic.core.config import (
    Setting,
    convert_value,
    load_yaml,
    parse_override,
    plain_value,
    resolve,
    save_resolved,
)
from RobustDeepLogic.core.errors import InputError, RobustDeepError
from RobustDeepLogic.core.files import (
    DETACHED_SUFFIXES,
    VOLUME_SUFFIXES,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    remove_stale_temporaries,
    strip_volume_suffix,
    volume_suffix,
)
from RobustDeepLogic.core.modalities import (
    MODALITIES,
    MR_FAMILY,
    PET_FAMILY,
    PETCT_FAMILY,
    UNITS,
    normalise_modality,
)
from RobustDeepLogic.core.progress import (
    MODES,
    BarProgress,
    JsonProgress,
    Progress,
    Stage,
    make_progress,
)
from RobustDeepLogic.core.types import PathLike

__all__ = [
    "Setting",
    "convert_value",
    "load_yaml",
    "parse_override",
    "resolve",
    "plain_value",
    "save_resolved",
    "RobustDeepError",
    "InputError",
    "VOLUME_SUFFIXES",
    "DETACHED_SUFFIXES",
    "volume_suffix",
    "strip_volume_suffix",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "remove_stale_temporaries",
    "MODALITIES",
    "PET_FAMILY",
    "PETCT_FAMILY",
    "MR_FAMILY",
    "UNITS",
    "normalise_modality",
    "MODES",
    "Progress",
    "Stage",
    "JsonProgress",
    "BarProgress",
    "make_progress",
    "PathLike",
]
