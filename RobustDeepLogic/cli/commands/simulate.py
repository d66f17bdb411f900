"""``robustdeep simulate``: make the bundled digital cohort (or measure its realism).

``robustdeep simulate OUT --subjects N --seed S --profile {tiny,quick,paper}`` writes a cohort in
native space (manifest, one folder per subject with FD, LD, NAC, MAC, CT, T1, T2, ground-truth label
maps and activity, and for a few subjects an FD DICOM series). Running it again resumes: subjects
already complete are skipped. ``robustdeep simulate COHORT --realism`` measures an existing cohort
(GM/WM contrast, LD vs FD noise, the NAC pattern, CT HU per tissue) into ``COHORT/realism.json`` and
draws one subject's seven modalities (``--figure PNG``). See docs/simulation.md.
"""

from __future__ import annotations

from pathlib import Path

from RobustDeepLogic.cli.frame import Command, Options, Result


def _arguments(o: Options) -> None:
    o.positional("out", help="cohort folder to write (or to measure, with --realism)")
    o.option("--subjects", type=int, default=None, help="number of subjects (default: the "
             "profile's: tiny 3, quick 12, paper 45)")
    o.option("--seed", type=int, default=0, help="random seed; the same seed gives the same cohort")
    o.option("--profile", choices=["tiny", "quick", "paper"], default="quick",
             help="grids and reconstruction settings")
    o.option("--workers", type=int, default=None, help="parallel processes (default: CPU count)")
    o.option("--device", default=None, help="'cuda' to reconstruct PET with torch on a GPU "
             "(default: numpy/scipy on the CPU)")
    o.option("--realism", flag=True, default=False, help="measure the realism of the existing "
             "cohort OUT instead of simulating")
    o.option("--figure", default=None, help="with --realism: PNG of one subject's seven modalities")


def _run(config: dict, ctx) -> Result:
    if config["realism"]:
        from RobustDeepLogic.simulate.realism import realism_report

        report = realism_report(config["out"], figure=config["figure"], progress=ctx.progress)
        figures = {k: v for k, v in report["summary"].items() if isinstance(v, (int, float))}
        return Result(outputs={"realism": str(Path(config["out"]) / "realism.json"),
                               **({"figure": config["figure"]} if config["figure"] else {})},
                      figures=figures, summary=report["text"])
    from RobustDeepLogic.simulate.cohort import simulate_cohort

    cohort = simulate_cohort(config["out"], subjects=config["subjects"], seed=int(config["seed"]),
                             profile=config["profile"], workers=config["workers"],
                             device=config["device"], progress=ctx.progress)
    seconds = [p.meta.get("timings", {}).get("total_s", 0.0) for p in cohort.patients]
    return Result(
        outputs={"cohort": str(cohort.root), "manifest": str(cohort.manifest_path)},
        figures={"subjects": len(cohort), "mean_seconds_per_subject": round(sum(seconds) / max(len(seconds), 1), 2)},
        summary=f"{len(cohort)} simulated subjects ({config['profile']} profile, seed {config['seed']}) "
        f"in {cohort.root}",
    )


COMMAND = Command(
    "simulate",
    "make the digital cohort (anatomy from templates, MR/CT signal models, PET physics + OSEM)",
    _arguments,
    _run,
    description=__doc__,
    output="out",
)
