"""Template assets: prepared once at set-up from registry packages, never downloaded at run time.

``robustdeep assets`` downloads two wheels with pip (no install), reads the NIfTI files out of them,
and writes them to the assets folder with a record of source, version, licence and checksum
(``assets.json``):

=========================  ==================================================================  =========
asset                      source                                                              licence
=========================  ==================================================================  =========
``mni152_t1``              nilearn 0.14.1: MNI ICBM152 2009c nonlinear symmetric T1, 1 mm,      see below
                           skull-stripped (``mni_icbm152_t1_tal_nlin_sym_09a_converted``)
``mni152_gm``/``_wm``      nilearn 0.14.1: the same template's GM / WM probability maps         see below
``tpm_gm`` ... ``tpm_air`` SPM25 (spm-runtime-r2025b 25.1.2.post4) ``tpm/TPM.nii``: 6 tissue     GPL-2.0
                           classes GM, WM, CSF, bone, soft tissue, air, 1.5 mm, summing to 1
``spm_pet``                SPM ``toolbox/OldNorm/PET.nii``: an H2O/FDG-like PET template, 2 mm   GPL-2.0
``spm_t1`` / ``spm_t2``    SPM ``toolbox/OldNorm/T1.nii`` / ``T2.nii``, 2 mm, with skull        GPL-2.0
``spm_transm``             SPM ``toolbox/OldNorm/Transm.nii``: a transmission (mu-map) template GPL-2.0
``mask_icv``               SPM ``tpm/mask_ICV.nii``: intracranial volume mask                   GPL-2.0
=========================  ==================================================================  =========

The ICBM152 2009 templates are Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre,
Montreal Neurological Institute, McGill University, distributed with permission to use, copy and
modify with this notice kept. SPM's non-commercial atlas (``labels_Neuromorphometrics``, CC BY-NC) is
deliberately not extracted.

The folder is ``$ROBUSTDEEP_ASSETS`` if set, else ``$XDG_CACHE_HOME/robustdeep/assets`` (by default
``~/.cache/robustdeep/assets``). ``--wheels DIR`` takes already-downloaded wheels (fully offline).

This module only finds, prepares and reads the asset files; the template grid and the images made from
the assets are in :mod:`RobustDeepLogic.registration.templates`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_path, atomic_write_text
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.io.volumes import read_volume

#: Environment variable naming the assets folder (overrides the default cache folder).
ASSETS_ENV = "ROBUSTDEEP_ASSETS"

#: The record in the assets folder: per asset its source, version, licence, size and checksum.
RECORD_NAME = "assets.json"

#: The nilearn wheel: ``(package, version, licence)``.
NILEARN = ("nilearn", "0.14.1", "BSD-3-Clause (nilearn); ICBM152 2009 template notice (see docs)")

#: The SPM runtime wheel: ``(package, version, licence)``.
SPM = ("spm-runtime-r2025b", "25.1.2.post4", "GPL-2.0")

#: The Python version the two wheels are downloaded for. They hold data only (``py3-none-any``), but
#: their releases declare a minimum Python (nilearn 0.14.1 needs 3.10): a pip run by an older Python
#: (3D Slicer 5.8 ships Python 3.9) would find no distribution unless told which Python the download is
#: for. Nothing from the wheels is installed or imported, so any interpreter can extract them.
WHEEL_PYTHON_VERSION = "3.12"

_NILEARN_DATA = "nilearn/datasets/data/"

_SPM_CTF = "spm_runtime/_spm/_spm.ctf"

_SPM_ROOT = "fsroot/_spm/cleaned/spm/"

#: The six classes of SPM's ``TPM.nii``, in the order of its fourth axis.
TPM_CLASSES = ("gm", "wm", "csf", "bone", "soft", "air")


@dataclass(frozen=True)
class AssetSpec:
    """Where one asset comes from: a file inside a registry wheel.

    Attributes
    ----------
    name : str
        Asset name; the prepared file is ``<name>.nii.gz`` in the assets folder.
    package : tuple of str
        ``(package, version, licence)`` of the wheel: :data:`NILEARN` or :data:`SPM`.
    member : str
        Path of the NIfTI file inside the nilearn wheel, or inside the archive that the SPM wheel
        carries (``_spm.ctf``).
    description : str
        One line for the record (:data:`RECORD_NAME`).
    tpm_index : int or None
        For a class of the 4D ``TPM.nii``: the index of its volume (0-5, :data:`TPM_CLASSES`);
        None for a 3D file.
    """

    name: str
    package: tuple
    member: str
    description: str
    tpm_index: Optional[int] = None  # a class of the 4D TPM


#: Every asset, by name (the table of the module docstring).
ASSETS: Dict[str, AssetSpec] = {
    a.name: a
    for a in [
        AssetSpec("mni152_t1", NILEARN, _NILEARN_DATA + "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
                  "MNI ICBM152 2009c T1, 1 mm, skull-stripped"),
        AssetSpec("mni152_gm", NILEARN, _NILEARN_DATA + "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
                  "MNI ICBM152 2009c grey-matter probability, 1 mm"),
        AssetSpec("mni152_wm", NILEARN, _NILEARN_DATA + "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
                  "MNI ICBM152 2009c white-matter probability, 1 mm"),
        *[
            AssetSpec(f"tpm_{cls}", SPM, _SPM_ROOT + "tpm/TPM.nii",
                      f"SPM tissue probability map, class {i + 1} ({cls}), 1.5 mm", tpm_index=i)
            for i, cls in enumerate(TPM_CLASSES)
        ],
        AssetSpec("spm_pet", SPM, _SPM_ROOT + "toolbox/OldNorm/PET.nii", "SPM PET template, 2 mm"),
        AssetSpec("spm_t1", SPM, _SPM_ROOT + "toolbox/OldNorm/T1.nii", "SPM T1 template with skull, 2 mm"),
        AssetSpec("spm_t2", SPM, _SPM_ROOT + "toolbox/OldNorm/T2.nii", "SPM T2 template with skull, 2 mm"),
        AssetSpec("spm_transm", SPM, _SPM_ROOT + "toolbox/OldNorm/Transm.nii", "SPM transmission template, 2 mm"),
        AssetSpec("mask_icv", SPM, _SPM_ROOT + "tpm/mask_ICV.nii", "SPM intracranial volume mask"),
    ]
}


def assets_dir() -> Path:
    """The assets folder; it may not exist yet.

    Returns
    -------
    pathlib.Path
        ``$ROBUSTDEEP_ASSETS`` (:data:`ASSETS_ENV`, ``~`` expanded) if set, else
        ``$XDG_CACHE_HOME/robustdeep/assets``, else ``~/.cache/robustdeep/assets``.
    """
    env = os.environ.get(ASSETS_ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "robustdeep" / "assets"


def asset_path(name: str, folder: Optional[Path] = None) -> Path:
    """The path of one prepared asset.

    Parameters
    ----------
    name : str
        An asset name, a key of :data:`ASSETS` (e.g. ``'tpm_gm'``, ``'mni152_t1'``).
    folder : pathlib.Path, optional
        The assets folder (default: :func:`assets_dir`).

    Returns
    -------
    pathlib.Path
        ``folder/<name>.nii.gz``, which exists.

    Raises
    ------
    KeyError
        When ``name`` is not an asset.
    InputError
        When the asset is not prepared; the hint says to run ``robustdeep assets``.
    """
    if name not in ASSETS:
        raise KeyError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}")
    folder = folder or assets_dir()
    path = folder / f"{name}.nii.gz"
    if not path.is_file():
        raise InputError(
            f"template asset {name!r} is not prepared",
            file=path,
            hint="run 'robustdeep assets' once (it needs the package registry; nothing is "
            f"downloaded at run time), or point {ASSETS_ENV} at a prepared folder",
        )
    return path


def assets_ready(folder: Optional[Path] = None) -> bool:
    """Whether every asset of :data:`ASSETS` is prepared.

    Parameters
    ----------
    folder : pathlib.Path, optional
        The assets folder (default: :func:`assets_dir`).

    Returns
    -------
    bool
        True when ``<name>.nii.gz`` exists in ``folder`` for every asset.
    """
    folder = folder or assets_dir()
    return all((folder / f"{name}.nii.gz").is_file() for name in ASSETS)


def load_asset(name: str, folder: Optional[Path] = None):
    """A prepared asset as a float32 SimpleITK image.

    Parameters
    ----------
    name : str
        An asset name, a key of :data:`ASSETS`.
    folder : pathlib.Path, optional
        The assets folder (default: :func:`assets_dir`).

    Returns
    -------
    SimpleITK.Image
        The 3D asset with its MNI geometry (LPS), float32: probabilities in [0, 1] for the tissue
        maps and masks, template intensities (arbitrary units) for the T1 / T2 / PET templates.

    Raises
    ------
    KeyError
        When ``name`` is not an asset.
    InputError
        When the asset is not prepared (see :func:`asset_path`) or cannot be read.
    """
    return read_volume(asset_path(name, folder), dtype=np.float32)


def _wheel_name(package: str) -> str:
    return package.replace("-", "_")


def pip_download_command(name: str, version: str, dest: Path) -> list:
    """The ``pip download`` command line of one data wheel, whatever Python runs it.

    ``--python-version`` (:data:`WHEEL_PYTHON_VERSION`) makes pip choose the release as for that Python,
    so that the interpreter's own version (3.9 in 3D Slicer 5.8) does not matter; pip then needs
    ``--only-binary :all:`` and ``--no-deps``, which a data-only download wants anyway.

    Parameters
    ----------
    name, version : str
        The distribution and its exact version (e.g. ``"nilearn"``, ``"0.14.1"``).
    dest : pathlib.Path
        The folder that receives the wheel.

    Returns
    -------
    list of str
        The command, starting with this interpreter (``sys.executable -m pip download ...``).
    """
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
            "--python-version", WHEEL_PYTHON_VERSION, "--disable-pip-version-check", "-q",
            "-d", str(dest), f"{name}=={version}"]


def _download_wheels(packages: Iterable[tuple], dest: Path, wheel_dir: Optional[Path]) -> Dict[str, Path]:
    found: Dict[str, Path] = {}
    for name, version, _ in packages:
        stem = f"{_wheel_name(name)}-{version}-"
        if wheel_dir is not None:
            matches = sorted(Path(wheel_dir).glob(stem + "*.whl"))
            if not matches:
                raise InputError(f"no wheel of {name} {version} here", file=wheel_dir)
            found[name] = matches[0]
            continue
        proc = subprocess.run(pip_download_command(name, version, dest), capture_output=True, text=True)
        if proc.returncode != 0:
            raise InputError(
                f"could not download {name}=={version} from the package registry: "
                f"{proc.stderr.strip()[-300:]}",
                hint="check the connection to the package registry, or pass --wheels DIR with the "
                "wheels downloaded elsewhere ('pip download --no-deps --only-binary :all: "
                f"--python-version {WHEEL_PYTHON_VERSION} nilearn==0.14.1 spm-runtime-r2025b==25.1.2.post4')",
            )
        matches = sorted(dest.glob(stem + "*.whl"))
        if not matches:
            raise InputError(f"pip reported success but no wheel of {name} is in {dest}")
        found[name] = matches[0]
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _max(image) -> float:
    return float(sitk.GetArrayViewFromImage(image).max())


def prepare_assets(
    folder: Optional[Path] = None,
    *,
    wheel_dir: Optional[Path] = None,
    force: bool = False,
    progress: Optional[Progress] = None,
) -> Path:
    """Download (or take from ``wheel_dir``) the two wheels and extract the assets into ``folder``.

    Only the wheels that hold a missing asset are fetched, with ``pip download --no-deps`` (nothing is
    installed). Each asset is written as float32 ``<name>.nii.gz`` (one volume of the 4D TPM per
    tissue class; the ICBM152 GM / WM maps, stored as 0-255, divided by 255) and described in
    ``assets.json`` (:data:`RECORD_NAME`), which is rewritten each time. Idempotent: assets already
    present are kept unless ``force``.

    Parameters
    ----------
    folder : pathlib.Path, optional
        The assets folder, created if needed (default: :func:`assets_dir`).
    wheel_dir : pathlib.Path, optional
        A folder holding already-downloaded wheels (``nilearn-0.14.1-*.whl``,
        ``spm_runtime_r2025b-25.1.2.post4-*.whl``): nothing is downloaded (the CLI's ``--wheels``).
    force : bool, optional
        Extract every asset again, even those already present.
    progress : Progress, optional
        Progress reporting (stages ``download wheels`` and ``extract assets``); default: silent.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Raises
    ------
    InputError
        When a wheel is not in ``wheel_dir``, or pip cannot download it from the package registry.
    """
    progress = progress or Progress()
    folder = Path(folder) if folder is not None else assets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    todo = [a for a in ASSETS.values() if force or not (folder / f"{a.name}.nii.gz").is_file()]
    record_path = folder / RECORD_NAME
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"assets": {}}
    if todo:
        packages = {a.package for a in todo}
        with tempfile.TemporaryDirectory(prefix="robustdeep-assets-") as tmp:
            tmp = Path(tmp)
            with progress.stage("download wheels", total=1):
                wheels = _download_wheels(sorted(packages), tmp, wheel_dir)
            with progress.stage("extract assets", total=len(todo)) as st:
                spm_zip = None
                for spec in todo:
                    pkg, version, licence = spec.package
                    with zipfile.ZipFile(wheels[pkg]) as whl:
                        if pkg == SPM[0]:
                            if spm_zip is None:
                                spm_zip = zipfile.ZipFile(io.BytesIO(whl.read(_SPM_CTF)))
                            data = spm_zip.read(spec.member)
                        else:
                            data = whl.read(spec.member)
                    suffix = ".nii.gz" if spec.member.endswith(".gz") else ".nii"
                    raw = tmp / f"{spec.name}{suffix}"
                    raw.write_bytes(data)
                    image = sitk.ReadImage(str(raw))
                    if spec.tpm_index is not None:
                        image = image[:, :, :, spec.tpm_index]
                    image = sitk.Cast(image, sitk.sitkFloat32)
                    if spec.name in ("mni152_gm", "mni152_wm") and _max(image) > 1.5:
                        image = image / 255.0  # stored as uint8 0..255: make a probability
                    out = folder / f"{spec.name}.nii.gz"
                    with atomic_path(out) as t:
                        sitk.WriteImage(image, str(t), True)
                    arr = sitk.GetArrayViewFromImage(image)
                    record["assets"][spec.name] = {
                        "file": out.name,
                        "description": spec.description,
                        "package": pkg,
                        "version": version,
                        "licence": licence,
                        "member": spec.member + (f" [volume {spec.tpm_index}]" if spec.tpm_index is not None else ""),
                        "size": list(image.GetSize()),
                        "spacing": [round(s, 6) for s in image.GetSpacing()],
                        "max": float(np.max(arr)),
                        "sha256": _sha256(out),
                    }
                    st.advance(message=spec.name)
                if spm_zip is not None:
                    spm_zip.close()
    atomic_write_text(record_path, json.dumps(record, indent=1, sort_keys=True) + "\n")
    return folder
