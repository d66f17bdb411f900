"""The plan of a training run: its task, volume sources and folds, and each fold's training subjects.

:func:`prepare` loads the cohort (and any further cohorts of synthetic subjects), the task and the
fold plan, drawing the folds or, on resumption, taking them from ``run.json`` after checking that the
configuration has not changed. :func:`training_subjects` lists a fold's training subjects, refusing
synthetic subjects with a parent outside the fold's training patients (docs/method.md §6). The run
folder is :mod:`RobustDeepLogic.training.runs`; the folds themselves are
:mod:`RobustDeepLogic.cohort.folds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import torch

from RobustDeepLogic.cohort.folds import (
    FoldPlan,
    allowed_synthetic,
    assign_folds,
)
from RobustDeepLogic.cohort.manifest import Cohort
from RobustDeepLogic.cohort.mr_constants import derived_mr_record, run_mr_scaling
from RobustDeepLogic.cohort.tasks import get_task, load_tasks
from RobustDeepLogic.core.config import plain_value
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.data.sources import CohortSource, ConcatSource
from RobustDeepLogic.network.model import NetworkSpec
from RobustDeepLogic.training.runs import (
    RUN_FILE,
    RunInfo,
    load_run,
)
from RobustDeepLogic.training.settings import RESUMABLE_CHANGES, SCENARIOS


@dataclass
class Plan:
    """Everything the folds need: the task, the sources, the fold plan and the synthetic subjects.

    Attributes
    ----------
    task : RobustDeepLogic.cohort.Task
        The task (input modalities and target).
    cohort : RobustDeepLogic.cohort.Cohort
        The cohort of the real patients, its ``scaling`` set to the run's constants (in memory).
    source : RobustDeepLogic.data.sources.ConcatSource
        Every subject of the run, real and synthetic, with the task's modalities (target first),
        scaled with the run's constants (``run.json``).
    folds : RobustDeepLogic.cohort.folds.FoldPlan
        Test patients and the validation patients of each fold.
    synthetic_parents : dict of str to tuple of str
        Synthetic subject id to its parents' ids (empty when no synthetic subject is used).
    """

    task: Any
    cohort: Any
    source: Any
    folds: Any
    synthetic_parents: Dict[str, Tuple[str, ...]]


def prepare(cohort_dir, cfg: Dict[str, Any], run_dir: Path, progress: Progress):
    """Load the cohort(s), the task and the fold plan; check an existing ``run.json``.

    Real patients that lack one of the task's modalities are left out. With ``synthetic``, the
    synthetic subjects of the cohort and of ``synthetic_cohorts`` that have every modality are added,
    scaled with the run's constants. When ``run_dir`` holds a ``run.json`` and ``resume`` is true,
    its folds and constants are reused; otherwise the folds are drawn
    (:func:`~RobustDeepLogic.cohort.folds.assign_folds`) and the constants are the cohort's, except
    data-derived MR constants, which are computed again from the run's non-test patients
    (:func:`~RobustDeepLogic.cohort.mr_constants.run_mr_scaling`; docs/method.md §3.2) so that no
    test patient contributes; ``run.json``'s ``meta["mr_scaling"]`` names the patients used. The
    returned ``plan.cohort`` holds the run's constants in memory (its manifest is not changed).
    Nothing is written here: :func:`~RobustDeepLogic.training.loop.train_run` saves the returned
    :class:`~RobustDeepLogic.training.runs.RunInfo`.

    Parameters
    ----------
    cohort_dir : str or os.PathLike
        The cohort folder.
    cfg : dict
        A checked training configuration (every key of
        :data:`~RobustDeepLogic.training.settings.TRAIN_DEFAULTS`).
    run_dir : pathlib.Path
        The run folder (need not exist).
    progress : RobustDeepLogic.core.progress.Progress
        Not used (preparation reports no stage).

    Returns
    -------
    plan : Plan
        The task, sources and folds.
    info : RobustDeepLogic.training.runs.RunInfo
        The contents of ``run.json``: the existing one on resumption, else a new one.

    Raises
    ------
    InputError
        When the cohort or the task cannot be loaded, the scenario needs a cohort in another space, no
        real patient has all the modalities, synthetic subjects were asked for and none was found,
        the folds cannot be drawn, or the run folder was made with another configuration (a key
        outside :data:`~RobustDeepLogic.training.settings.RESUMABLE_CHANGES`, or another cohort).
    """
    cohort = Cohort.load(cohort_dir)
    tasks = load_tasks(cfg.get("tasks") or {}, source="config 'tasks'")
    task = get_task(str(cfg["task"]), tasks)
    if cfg["scenario"] is not None:
        space = SCENARIOS.get(cfg["scenario"], SCENARIOS["PM"])[0]
        if cohort.space != space:
            raise InputError(
                f"scenario {cfg['scenario']} needs a cohort in {space} space; this one is {cohort.space}",
                file=cohort.root, hint="PU trains on native data, PR and PM on registered data")
    modalities = [task.target] + [m for m in task.inputs if m != task.target]
    real = [p for p in cohort.patients if not p.is_synthetic]
    real = [p for p in real if all(m in p.modalities for m in modalities)]
    if not real:
        raise InputError(f"no real patient has all of {', '.join(modalities)}", file=cohort.root)
    run_path = run_dir / RUN_FILE
    if run_path.is_file() and cfg["resume"]:
        info = load_run(run_dir)
        changed = sorted(k for k in set(info.config) | set(cfg)
                         if k not in RESUMABLE_CHANGES and info.config.get(k) != plain_value(cfg.get(k)))
        if info.cohort and info.cohort != str(Path(cohort.root).resolve()):
            changed.append("cohort")
        if changed:
            raise InputError(
                f"this run folder was made with a different configuration ({', '.join(changed)})",
                file=run_dir, hint="use a new --out folder, or --no-resume to start it again")
        plan = FoldPlan.from_dict(info.folds)
        scaling = {m: info.scaling_of(m) for m in modalities}
    else:
        plan = assign_folds(
            [p.id for p in real], k=int(cfg["folds"]), test=cfg["test_ids"],
            test_fraction=float(cfg["test_fraction"]), seed=int(cfg["seed"]),
            preset_splits={p.id: p.split for p in real}, preset_folds={p.id: p.fold for p in real})
        scaling = {m: cohort.scaling_for(m) for m in modalities}
        mr = run_mr_scaling(cohort, plan.development, modalities)  # never from the test patients
        scaling.update(mr)
        meta = {"units": {m: cohort.units.get(m, "") for m in modalities}, "torch": torch.__version__}
        if mr:
            meta["mr_scaling"] = {"patients": list(plan.development), "modalities": sorted(mr),
                                  "percentile": derived_mr_record(cohort)["percentile"]}
        info = RunInfo(
            task={"name": task.name, "inputs": list(task.inputs), "target": task.target,
                  "description": task.description},
            scaling={m: s.as_dict() for m, s in scaling.items()},
            window=list(cfg["window"]),
            network=NetworkSpec(len(task.inputs), 1, tuple(cfg["widths"])).as_dict(),
            folds=plan.as_dict(), space=cohort.space, cohort=str(Path(cohort.root).resolve()),
            config=plain_value(cfg), meta=meta)
    cohort.scaling.update(scaling)  # in memory only: the run's constants for every consumer of the plan
    sources = [CohortSource(cohort, [p.id for p in real], modalities, scaling)]
    synthetic_parents: Dict[str, Tuple[str, ...]] = {}
    if cfg["synthetic"]:
        syn_cohorts = [cohort] + [Cohort.load(d) for d in (cfg["synthetic_cohorts"] or [])]
        for c in syn_cohorts:
            ids = [p.id for p in c.patients if p.is_synthetic
                   and all(m in p.modalities for m in modalities)]
            if not ids:
                continue
            for pid in ids:
                synthetic_parents[pid] = tuple(c.patient(pid).parents)
            sources.append(CohortSource(c, ids, modalities, scaling))
        if not synthetic_parents:
            raise InputError("synthetic subjects were asked for but none was found", file=cohort.root,
                             hint="run 'robustdeep synthesize', or name its output in synthetic_cohorts")
    source = ConcatSource(sources)
    return Plan(task, cohort, source, plan, synthetic_parents), info


def training_subjects(plan: Plan, fold: int, cfg: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    """(training subject ids, refused synthetic ids) for ``fold``.

    Real training patients of the fold (when ``real``), then the synthetic subjects whose parents are
    all among them (at most ``max_synthetic``, a seeded choice).

    Parameters
    ----------
    plan : Plan
        The run's plan (:func:`prepare`).
    fold : int
        The fold.
    cfg : mapping
        The training configuration; ``real``, ``max_synthetic`` and ``seed`` are read.

    Returns
    -------
    ids : list of str
        The fold's training subjects: real ones first, then synthetic ones.
    refused : list of str
        The synthetic subjects with a parent outside the fold's training patients (or no parents).

    Raises
    ------
    InputError
        When the fold has no training subject.

    References
    ----------
    docs/method.md §6 (synthetic subjects of a fold come only from its training patients).
    """
    train_real = plan.folds.training(fold)
    ids = list(train_real) if cfg["real"] else []
    allowed, refused = allowed_synthetic(plan.synthetic_parents, train_real)
    if cfg["max_synthetic"] is not None and len(allowed) > int(cfg["max_synthetic"]):
        rng = np.random.default_rng([int(cfg["seed"]), fold, 17])
        allowed = [allowed[i] for i in sorted(rng.permutation(len(allowed))[: int(cfg["max_synthetic"])])]
    ids += allowed
    if not ids:
        raise InputError(f"fold {fold} has no training subject", hint="check 'real' and 'synthetic'")
    return ids, refused
