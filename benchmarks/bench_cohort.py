"""Benchmark: read and validate a study-sized cohort (``robustdeep cohort check``).

Makes (once, cached) a cohort of ``--patients`` patients with all seven modalities on the study's
grids: FD, LD, NAC, MAC float32 SUV on 200x200x109 at 2.03x2.03x2.2 mm; CT int16 HU on 512x512x111 at
0.98x0.98x2 mm; T1 int16 on 256x256x176 at 0.8x0.8x1 mm (as acquired: 0.8 mm in-plane);
T2 int16 on 320x320x176 at 0.5x0.5x1 mm (cropped field of view). Then it times

- the reference: reading every volume with SimpleITK and nothing else, and
- ``check_cohort``: reading, hashing, NaN / range / grid checks of every volume,

in the same run, and prints both and their ratio. Target: the check under 60 s for 45 patients on
2 cores.

    python benchmarks/bench_cohort.py --patients 45 [--compress] [--dir /tmp/rd-bench-cohort]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.patient import Patient
from RobustDeepLogic.cohort.check import check_cohort
from RobustDeepLogic.io.volumes import write_volume

GRIDS = {
    "PET": ((109, 200, 200), (2.03, 2.03, 2.2), np.float32),
    "CT": ((111, 512, 512), (0.98, 0.98, 2.0), np.int16),
    "T1": ((176, 256, 256), (0.8, 0.8, 1.0), np.int16),
    "T2": ((176, 320, 320), (0.5, 0.5, 1.0), np.int16),
}


def _base(shape, seed):
    """A smooth head-like volume (an ellipsoid with a smooth texture) in [0, 1]."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    head = (xx**2 + yy**2 + zz**2 < 0.8).astype(np.float32)
    low = rng.random(tuple(max(2, s // 16) for s in shape)).astype(np.float32)
    from scipy.ndimage import zoom

    texture = zoom(low, [s / l for s, l in zip(shape, low.shape)], order=1)[: shape[0], : shape[1], : shape[2]]
    return head * (0.5 + 0.5 * texture)


def make_cohort(root: Path, patients: int, compress: bool) -> Cohort:
    manifest = root / "manifest.json"
    if manifest.is_file():
        cohort = Cohort.load(root)
        if len(cohort) == patients:
            return cohort
    suffix = ".nii.gz" if compress else ".nii"
    bases = {k: _base(shape, i) for i, (k, (shape, _, _)) in enumerate(GRIDS.items())}
    cohort = Cohort(root=root)
    for i in range(patients):
        pid = f"B{i + 1:03d}"
        p = Patient(id=pid)
        gain = 1.0 + 0.01 * i
        for modality in ("FD", "LD", "NAC", "MAC", "CT", "T1", "T2"):
            key = modality if modality in GRIDS else "PET"
            shape, spacing, dtype = GRIDS[key]
            base = bases[key]
            if modality == "CT":
                arr = (base * 1040 * gain - 1000).astype(dtype)
            elif key in ("T1", "T2"):
                arr = (base * 900 * gain).astype(dtype)
            else:
                arr = (base * (8 if modality != "NAC" else 3) * gain).astype(dtype)
            image = sitk.GetImageFromArray(arr)
            image.SetSpacing(spacing)
            rel = f"{pid}/{modality}{suffix}"
            write_volume(image, root / rel, compress=compress)
            p.modalities[modality] = rel
        cohort.add(p)
        cohort.save()
        print(f"  made {pid}", flush=True)
    return cohort


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=45)
    parser.add_argument("--dir", default="/tmp/rd-bench-cohort")
    parser.add_argument("--compress", action="store_true", help="gzip-compressed NIfTI")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(args.dir) / ("gz" if args.compress else "raw")
    cohort = make_cohort(root, args.patients, args.compress)
    paths = [cohort.path(p, m) for p in cohort for m in p.modalities]
    size_gb = sum(p.stat().st_size for p in paths) / 1e9

    def read_only(path):
        return sitk.ReadImage(str(path)).GetNumberOfPixels()

    with ThreadPoolExecutor(args.workers) as pool:  # warm the page cache once
        list(pool.map(read_only, paths))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(read_only, paths))
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    problems = check_cohort(cohort, workers=args.workers)
    t_check = time.perf_counter() - t0
    assert not problems, problems[:3]
    print(f"cohort: {len(cohort)} patients, {len(paths)} volumes, {size_gb:.2f} GB on disk "
          f"({'gzip' if args.compress else 'uncompressed'} NIfTI), {args.workers} workers")
    print(f"reference, SimpleITK read only: {t_read:6.1f} s")
    print(f"robustdeep cohort check:        {t_check:6.1f} s  (ratio to read only {t_check / t_read:.2f}; "
          f"target < 60 s: {'met' if t_check < 60 else 'NOT met'})")


if __name__ == "__main__":
    main()
