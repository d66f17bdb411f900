"""Small builders shared by the tests (volumes with non-trivial geometry, tiny cohorts), and whether a
process is still alive."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import SimpleITK as sitk


def oblique_image(shape=(7, 9, 11), *, seed: int = 0, dtype=np.float32, spacing=(1.3, 0.7, 2.2),
                  origin=(-12.5, 33.25, 101.0), angle: float = 0.35) -> sitk.Image:
    """A random ``[z, y, x]`` volume with anisotropic spacing, an offset origin and an oblique direction."""
    rng = np.random.default_rng(seed)
    arr = (rng.random(shape) * 100).astype(dtype)
    image = sitk.GetImageFromArray(arr)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    rot = sitk.VersorRigid3DTransform()
    rot.SetRotation((0.3, -0.5, 0.81), angle)
    image.SetDirection(rot.GetMatrix())
    return image


def file_digest(path: Path) -> str:
    """A digest of a file, or of every file under a folder (to prove inputs were not modified)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
        h.update(str(f.stat().st_mtime_ns).encode())
    return h.hexdigest()


def write_tiny_cohort(root: Path, n: int = 3, *, modalities: Iterable[str] = ("FD", "LD", "CT", "T1"),
                      shape=(6, 8, 7), seed: int = 0, tasks=("ld2fd",)) -> "object":
    """A small valid cohort: PET in SUV (0..10), CT in HU (-1000..1500), MR in a.u."""
    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.cohort.patient import Patient
    from RobustDeepLogic.io.volumes import write_volume

    rng = np.random.default_rng(seed)
    cohort = Cohort(root=Path(root), tasks=list(tasks))
    for i in range(n):
        pid = f"P{i + 1:03d}"
        patient = Patient(id=pid)
        for m in modalities:
            if m == "CT":
                arr = rng.uniform(-1000, 1500, shape)
            elif m in ("T1", "T2"):
                arr = rng.uniform(0, 800, shape)
            else:
                arr = rng.uniform(0, 10, shape)
            image = sitk.GetImageFromArray(arr.astype(np.float32))
            image.SetSpacing((2.0, 2.0, 2.5))
            image.SetOrigin((-7.0, -8.0, -7.5))
            rel = f"{pid}/{m}.nii.gz"
            write_volume(image, Path(root) / rel)
            patient.modalities[m] = rel
        cohort.add(patient)
    cohort.save()
    return cohort


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (from /proc; a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_until_gone(pid: int, seconds: float) -> bool:
    """Whether ``pid`` ends within ``seconds`` (polled every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.05)
    return False
