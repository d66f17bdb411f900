"""The configuration of ``robustdeep train``: its defaults, what may change on resumption, the scenarios.

:data:`TRAIN_DEFAULTS` lists every key of a training configuration with its default
(docs/network.md documents them); the configuration is checked when a run starts. The ``on_the_fly``
key (synthetic subjects blended during training, no disk) is checked by :func:`check_on_the_fly` and
turned into a per-fold source by :func:`on_the_fly_factory`. The training loop itself is
:mod:`RobustDeepLogic.training.loop`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

from RobustDeepLogic.cohort.folds import (
    fold_seed,
)
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.data.on_the_fly import on_the_fly_source
from RobustDeepLogic.synthesis.subjects import ON_THE_FLY_METHODS

#: Defaults of ``robustdeep train`` (each is a config key; see docs/network.md and docs/method.md §7).
TRAIN_DEFAULTS: Dict[str, Any] = {
    "task": "ld2fd",
    "tasks": {},
    "scenario": None,
    "real": True,
    "synthetic": False,
    "synthetic_cohorts": [],
    "max_synthetic": None,
    "on_the_fly": None,
    "folds": 5,
    "fold": None,
    "test_ids": None,
    "test_fraction": 10 / 45,
    "seed": 0,
    "epochs": 20,
    "steps": None,
    "batch_size": 5,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "window": [112, 96],
    "widths": [16, 32, 64],
    "slices_per_subject": None,
    "device": "auto",
    "amp": "auto",
    "channels_last": True,
    "workers": 0,
    "cache_gb": 4.0,
    "val_batch": 8,
    "val_slices": None,
    "resume": True,
    "tensorboard": True,
}

#: Keys that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = {"epochs", "steps", "device", "workers", "cache_gb", "val_batch", "resume",
                     "tensorboard", "fold", "amp", "progress", "out", "verbose", "cohort"}

#: Scenario (docs/method.md §9) to (cohort space, synthetic subjects used); PM1, PM2, ... are PM.
SCENARIOS = {"PU": ("native", False), "PR": ("template", False), "PM": ("template", True)}


# --------------------------------------------------------------------------------------------------
# Run preparation
# --------------------------------------------------------------------------------------------------
def _check_config(config: Mapping[str, Any]) -> Dict[str, Any]:
    cfg = dict(TRAIN_DEFAULTS)
    cfg.update({k: v for k, v in config.items()})
    for key in ("epochs", "batch_size", "folds"):
        if int(cfg[key]) < 1:
            raise InputError(f"{key} must be at least 1, got {cfg[key]}")
    if cfg["steps"] is not None and int(cfg["steps"]) < 1:
        raise InputError(f"steps must be at least 1, got {cfg['steps']}")
    window = cfg["window"]
    if not isinstance(window, (list, tuple)) or len(window) != 2 or min(int(w) for w in window) < 8:
        raise InputError(f"window must be [rows, cols] of at least 8, got {window!r}")
    cfg["window"] = [int(w) for w in window]
    widths = cfg["widths"]
    if not isinstance(widths, (list, tuple)) or len(widths) != 3 or min(int(w) for w in widths) < 1:
        raise InputError(f"widths must be three positive integers, got {widths!r}")
    cfg["widths"] = [int(w) for w in widths]
    if cfg["on_the_fly"] is not None:
        cfg["on_the_fly"] = check_on_the_fly(cfg["on_the_fly"])
    if cfg["scenario"] is not None:
        sc = str(cfg["scenario"]).upper()
        if sc not in SCENARIOS and not sc.startswith("PM"):
            raise InputError(f"unknown scenario {cfg['scenario']!r}", hint="PU, PR or PM (PM1, PM2, ...)")
        cfg["scenario"] = sc
        cfg["synthetic"] = SCENARIOS.get(sc, SCENARIOS["PM"])[1]
    return cfg


#: Keys of the ``on_the_fly`` config (synthetic subjects blended during training, no disk).
ON_THE_FLY_DEFAULTS: Dict[str, Any] = {"count": None, "masks": [], "method": "laplacian", "levels": 4,
                                       "seed": 0, "device": "cpu"}


def check_on_the_fly(spec: Any) -> Dict[str, Any]:
    """Validate an ``on_the_fly`` mapping: ``{count, masks, method, levels, seed, device}``.

    ``count`` synthetic subjects per fold are blended from that fold's training patients (with one
    mask, the pairs a ``synthesize --count`` of them would choose with this seed; with K masks,
    ``ceil(count / K)`` pairs under every mask); ``method`` ``laplacian`` / ``naive`` need masks (mask
    specs), ``mixup`` / ``cutmix`` take none.

    Parameters
    ----------
    spec : mapping
        Keys of :data:`ON_THE_FLY_DEFAULTS`: ``count`` (required, at least 1), ``masks`` (one mask
        spec or a list), ``method`` (one of
        :data:`~RobustDeepLogic.synthesis.subjects.ON_THE_FLY_METHODS`), ``levels``, ``seed``,
        ``device``.

    Returns
    -------
    dict
        Every key of :data:`ON_THE_FLY_DEFAULTS`, missing ones at their defaults; ``count``,
        ``levels`` and ``seed`` as int, ``masks`` as a list of str.

    Raises
    ------
    InputError
        When ``spec`` is not a mapping, has an unknown key, has no ``count`` or one below 1, names an
        unknown method, or gives masks to ``mixup`` / ``cutmix`` or none to ``laplacian`` /
        ``naive``.
    """
    if not isinstance(spec, Mapping):
        raise InputError(f"on_the_fly must be a mapping such as {{count: 100, masks: [complex]}}, got {spec!r}")
    unknown = sorted(set(spec) - set(ON_THE_FLY_DEFAULTS))
    if unknown:
        raise InputError(f"on_the_fly: unknown key(s) {', '.join(unknown)}",
                         hint=f"keys: {', '.join(ON_THE_FLY_DEFAULTS)}")
    out = {**ON_THE_FLY_DEFAULTS, **dict(spec)}
    if out["count"] is None or int(out["count"]) < 1:
        raise InputError("on_the_fly needs count: the number of synthetic subjects per fold (at least 1)")
    out["count"] = int(out["count"])
    masks = out["masks"]
    out["masks"] = [str(m) for m in ([masks] if isinstance(masks, str) else list(masks or []))]
    if out["method"] not in ON_THE_FLY_METHODS:
        raise InputError(f"on_the_fly method must be one of {', '.join(ON_THE_FLY_METHODS)}, got {out['method']!r}")
    if out["method"] in ("laplacian", "naive") and not out["masks"]:
        raise InputError(f"on_the_fly method {out['method']} needs masks (e.g. masks: [complex])")
    if out["method"] in ("mixup", "cutmix") and out["masks"]:
        raise InputError(f"on_the_fly method {out['method']} takes no masks")
    out["levels"], out["seed"] = int(out["levels"]), int(out["seed"])
    return out


def on_the_fly_factory(cohort, spec: Mapping[str, Any], modalities: Sequence[str]):
    """Make :func:`~RobustDeepLogic.training.loop.train_run`'s ``extra_source`` from an ``on_the_fly`` spec.

    Parameters
    ----------
    cohort : RobustDeepLogic.cohort.Cohort
        The registered training cohort (space ``template``) holding the parents.
    spec : mapping
        An ``on_the_fly`` configuration checked by :func:`check_on_the_fly`.
    modalities : sequence of str
        The modalities to blend: the task's target and inputs.

    Returns
    -------
    callable
        ``factory(fold, training_ids) -> TorchDatasetSource``: ``spec["count"]`` subjects blended from
        ``training_ids`` by :func:`~RobustDeepLogic.data.sources.on_the_fly_source`, seeded with
        :func:`~RobustDeepLogic.cohort.folds.fold_seed` of ``spec["seed"]`` and the fold, with ids
        ``otf-<method>-f<fold>-00000``, ...

    Raises
    ------
    InputError
        When the cohort is not registered (space other than ``template``).
    """
    if cohort.space != "template":
        raise InputError("on-the-fly synthesis needs a registered cohort (space 'template')",
                         file=cohort.manifest_path, hint="run 'robustdeep register' first")

    def factory(fold: int, training_ids: Sequence[str]):
        return on_the_fly_source(cohort, training_ids, modalities, count=spec["count"],
                                 masks=spec["masks"] or None, method=spec["method"],
                                 levels=spec["levels"], seed=fold_seed(spec["seed"], fold),
                                 device=spec["device"], prefix=f"otf-{spec['method']}-f{fold}-")

    return factory
