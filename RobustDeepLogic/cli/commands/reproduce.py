"""``robustdeep reproduce``: the paper's study in one command (docs/method.md §9; RobustDeepLogic.study)."""

from __future__ import annotations

from RobustDeepLogic.cli.frame import Command, Options, Result

_EPILOG = """\
arms: PU, PR, PM1, PM2 (the paper's scenarios); PR-naive, PR-mixup, PR-cutmix (augmentation ablation:
PR plus as many subjects from PM2's parent pairs by naive blending, MixUp or CutMix); PM2-steps (PM2's
data at PR's number of optimizer steps). Run the same command again to resume an interrupted study.

profile settings, changed with --set NAME=VALUE (or in a --config file), e.g. --set train_folds=all
--set synthetic=100 --set epochs=10: subjects, test, folds, train_folds (all, or fold numbers: 0,2),
spacing, synthetic, levels, epochs, window (64x64), widths (8,16,32), batch_size, lr, weight_decay,
slices_per_subject, val_slices (all or a number), ablation_tasks, compute_tasks (all, none or tasks),
eval_pngs, simulate. The study folder records them and refuses other settings when resumed.
"""

#: The settings of a study profile that --set may change (RobustDeepLogic.study.settings.SETTINGS;
#: named here so that --help does not import the study).
PROFILE_SETTINGS = ("simulate", "subjects", "test", "folds", "train_folds", "spacing", "synthetic", "levels",
                    "epochs", "window", "widths", "batch_size", "lr", "weight_decay", "slices_per_subject",
                    "val_slices", "ablation_tasks", "compute_tasks", "eval_pngs")


def add_profile_settings(o: Options) -> None:
    """Declare every profile setting (:data:`PROFILE_SETTINGS`) as a config key, None by default.

    Parameters
    ----------
    o : Options
        The options of ``reproduce`` or ``demo``.
    """
    for name in PROFILE_SETTINGS:
        o.setting(name)


def _arguments(o: Options) -> None:
    o.option("--out", default=None, help="study folder (required): cohort, registered, runs, evaluation, report")
    o.option("--profile", default="quick", choices=["tiny", "quick", "paper"],
             help="tiny (tests), quick (2-core CPU, under 20 minutes), paper (the study's sizes; a GPU)")
    o.option("--cohort", default=None, help="a native-space cohort folder to use instead of simulating one")
    o.option("--tasks", nargs="+", default=None, choices=["ld2fd", "ldmr2fd", "nac2mac", "mr2ct"],
             help="tasks (default: all four)")
    o.option("--scenarios", nargs="+", default=None, metavar="ARM",
             help="arms to train (default: all; see below)")
    o.option("--seed", type=int, default=0, help="seed of the cohort, the split, the pairs and the weights")
    o.option("--device", default="auto", help="auto, cpu or cuda (training, prediction, on-the-fly blending)")
    o.option("--workers", type=int, default=0, help="processes for simulation and registration (0: one per core)")
    add_profile_settings(o)


def run_study(config: dict, ctx, profile: str) -> Result:
    """Run (or resume) a study with a profile: ``robustdeep reproduce`` and ``robustdeep demo``.

    Parameters
    ----------
    config : dict
        The resolved configuration: ``out``, ``cohort``, ``tasks``, ``scenarios`` (the arms),
        ``seed``, ``device``, ``workers``, and the profile settings of :data:`PROFILE_SETTINGS`
        (None: the profile's value).
    ctx : RunContext
        The command's progress and log.
    profile : str
        ``tiny``, ``quick`` or ``paper``.

    Returns
    -------
    Result
        Outputs ``study``, ``report``, ``markdown``, ``metrics``; figures: seconds per stage and in
        all; summary: the headline tables.

    Raises
    ------
    InputError
        When ``out`` is not given, and from
        :func:`~RobustDeepLogic.study.stages.reproduce`.
    """
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.study.stages import reproduce

    if not config.get("out"):
        raise InputError("--out DIR is required (the study folder)")
    result = reproduce(config["out"], profile=profile, cohort=config.get("cohort"), tasks=config.get("tasks"),
                       arms=config.get("scenarios"), seed=int(config["seed"]), device=str(config["device"]),
                       workers=int(config["workers"]), progress=ctx.progress, log=ctx.log,
                       settings={k: config[k] for k in PROFILE_SETTINGS if config.get(k) is not None})
    figures = {f"{stage}_seconds": round(sec, 1) for stage, sec in result["timings"].items()}
    figures["total_seconds"] = round(sum(result["timings"].values()), 1)
    summary = f"{result['headline']}\nThe whole report (tables, figures, provenance) is in:"
    return Result(outputs={"study": result["study"], "report": result["report"],
                           "markdown": result["markdown"], "metrics": result["metrics"]},
                  figures=figures, summary=summary)


def _run(config: dict, ctx) -> Result:
    return run_study(config, ctx, str(config["profile"]))


COMMAND = Command("reproduce", "the paper's study end to end: cohort, registration, synthesis, training, "
                  "evaluation, report", _arguments, _run, output="out", epilog=_EPILOG,
                  description=__doc__)
