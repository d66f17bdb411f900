"""Benchmark of ``robustdeep simulate``: per-subject time by stage, projector speed, cohort wall time.

Usage::

    python benchmarks/bench_simulate.py                       # tiny + quick: one subject each
    python benchmarks/bench_simulate.py --profiles paper      # one subject at the study's grids
    python benchmarks/bench_simulate.py --cohort quick --workers 2   # a whole cohort, wall time

Printed figures: seconds per stage of one subject (MR, CT, PET truth, PET physics = 4 OSEM
reconstructions), the projector's size and build time, and two ratios measured in the same run:
the sparse projector against a rotate-and-sum projector (``scipy.ndimage.rotate``, the usual
image-space alternative) for one forward projection of the volume, and the OSEM reconstruction
(iterations x subsets) against the same number of full-data MLEM iterations (equal projector cost,
so the ratio shows the subset overhead). Peak memory is the largest resident set of this process
or of one worker (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _peak_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0


def bench_projector(profile) -> None:
    from scipy import ndimage

    from RobustDeepLogic.simulate.pet_physics import ParallelProjector, psf_sigmas
    from RobustDeepLogic.simulate.osem import osem

    nx, ny, nz = profile.pet_size
    t = time.perf_counter()
    proj = ParallelProjector(nx, ny, profile.pet_spacing[:2], profile.n_angles, profile.support_radius_mm,
                             profile.subsets)
    build = time.perf_counter() - t
    rng = np.random.default_rng(0)
    vol = np.zeros((nz, ny, nx), np.float32)
    vol.reshape(nz, -1)[:, proj.support] = rng.random((nz, proj.n_pixels))
    x = proj.to_support(vol)
    t = time.perf_counter()
    y = proj.forward(x)
    t_sparse = time.perf_counter() - t
    t = time.perf_counter()
    angles = np.degrees(proj.angles_rad)
    for a in angles[:: max(1, len(angles) // 12)]:  # time 12 angles, scale up
        ndimage.rotate(vol, -a, axes=(2, 1), reshape=False, order=1).sum(axis=1)
    t_rot = (time.perf_counter() - t) * len(angles) / len(angles[:: max(1, len(angles) // 12)])
    print(f"  projector: {proj.n_pixels} pixels, {proj.n_angles} angles x {proj.n_bins} bins, "
          f"{proj.nnz / 1e6:.1f} M non-zeros, built in {build:.2f} s")
    print(f"  forward projection of {nz} slices: sparse {t_sparse:.2f} s, rotate-and-sum {t_rot:.2f} s "
          f"(ratio {t_rot / t_sparse:.1f}x)")
    ybar = (y * 50.0 + 1.0).astype(np.float32)
    sig = psf_sigmas(profile.psf_model_fwhm_mm, proj.bin_mm, profile.pet_spacing[2])
    t = time.perf_counter()
    osem(proj, ybar, eta=50.0, attenuation=None, background=np.ones_like(ybar),
         iterations=profile.iterations, psf_sigmas_bins=sig)
    t_osem = time.perf_counter() - t
    full = ParallelProjector(nx, ny, profile.pet_spacing[:2], profile.n_angles, profile.support_radius_mm, 1)
    t = time.perf_counter()
    osem(full, ybar, eta=50.0, attenuation=None, background=np.ones_like(ybar),
         iterations=profile.iterations, psf_sigmas_bins=sig)
    t_mlem = time.perf_counter() - t
    print(f"  OSEM {profile.iterations} it x {profile.subsets} subsets: {t_osem:.2f} s; MLEM "
          f"{profile.iterations} it: {t_mlem:.2f} s (ratio {t_osem / t_mlem:.2f})")


def bench_subject(name: str) -> None:
    from RobustDeepLogic.simulate.profiles import get_profile
    from RobustDeepLogic.simulate.cohort import simulate_subject
    from RobustDeepLogic.simulate.anatomy import template_anatomy

    profile = get_profile(name)
    print(f"profile {name}: PET {profile.pet_size}, CT {profile.ct_size}, MR {profile.mr_size}")
    t = time.perf_counter()
    template_anatomy(profile.template_spacing_mm)
    print(f"  template maps at {profile.template_spacing_mm} mm (once per worker): "
          f"{time.perf_counter() - t:.1f} s")
    bench_projector(profile)
    with tempfile.TemporaryDirectory() as tmp:
        entry = simulate_subject(0, 0, profile, Path(tmp), write_dicom=False)
    tm = entry["meta"]["timings"]
    pet = entry["meta"]["pet"]
    print(f"  one subject: {tm['total_s']:.1f} s (MR {tm['mr_s']:.1f}, CT {tm['ct_s']:.1f}, PET truth "
          f"{tm['pet_truth_s']:.1f}, PET physics {tm['pet_physics_s']:.1f}); FD GM/WM "
          f"{pet.get('gm_wm_fd', float('nan')):.2f} (truth image {pet.get('gm_wm_truth', float('nan')):.2f})")
    print(f"  peak memory so far: {_peak_mb():.0f} MB")


def bench_cohort(name: str, workers: int, subjects: int | None) -> None:
    from RobustDeepLogic.simulate.cohort import simulate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cohort = simulate_cohort(Path(tmp) / "c", profile=name, workers=workers, subjects=subjects)
        wall = time.perf_counter() - t
    per = [p.meta["timings"]["total_s"] for p in cohort.patients]
    print(f"cohort {name}: {len(cohort)} subjects with {workers} workers in {wall:.0f} s wall "
          f"({wall / 60:.1f} min); per subject {np.mean(per):.1f} +- {np.std(per):.1f} s; "
          f"peak memory of one process {_peak_mb():.0f} MB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="*", default=["tiny", "quick"])
    ap.add_argument("--cohort", default=None, help="also simulate a whole cohort of this profile")
    ap.add_argument("--subjects", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    for name in args.profiles:
        bench_subject(name)
    if args.cohort:
        bench_cohort(args.cohort, args.workers, args.subjects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
