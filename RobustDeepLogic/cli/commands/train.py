"""``robustdeep train``: train the translation network of a task with k-fold cross-validation.

The network and its training are those of docs/method.md §7; the scenarios (PU, PR, PM) are chosen
by the cohort and its synthetic subjects (epilog). The engine's function is
:func:`RobustDeepLogic.training.loop.train_run`.
"""

from __future__ import annotations

import yaml

from RobustDeepLogic.cli.frame import Command, Options, Result


def _mapping(text: str):
    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise ValueError("expected a mapping such as {pet2ct: {inputs: [FD], target: CT}}")
    return value


def _arguments(o: Options) -> None:
    o.positional("cohort", help="cohort folder (manifest.json); native space for PU, registered for PR/PM")
    o.option("--out", default=None, help="run folder (checkpoints, history, run.json); required")
    o.option("--task", default="ld2fd", help="task: ld2fd, ldmr2fd, nac2mac, mr2ct, or one declared in 'tasks'")
    o.option("--tasks", type=_mapping, default={}, help="extra tasks as YAML, name -> {inputs: [...], "
             "target: ...} (usually in a --config file)")
    o.option("--scenario", default=None, help="PU (native), PR (registered) or PM (registered + "
             "synthetic): checks the cohort's space and sets 'synthetic'")
    o.option("--real", flag=True, default=True, help="train on the real patients of the fold")
    o.option("--synthetic", flag=True, default=False, help="add synthetic subjects whose parents are "
             "all training patients of the fold")
    o.option("--synthetic-cohorts", nargs="*", default=[], help="more cohort folders holding synthetic "
             "subjects (their parents are patients of COHORT)")
    o.option("--max-synthetic", type=int, default=None, help="at most this many synthetic subjects per fold")
    o.option("--on-the-fly", type=_mapping, default=None,
             help="blend synthetic subjects during training instead of reading them from disk, as YAML: "
             "{count: N, masks: [complex], method: laplacian|naive|mixup|cutmix, levels: 4, seed: 0, "
             "device: cpu|cuda}; N per fold, parents from the fold's training patients")
    o.option("--folds", type=int, default=5, help="cross-validation folds (patient level)")
    o.option("--fold", type=int, nargs="+", default=None, help="train only these folds (default: all)")
    o.option("--test-ids", nargs="+", default=None, help="held-out test patients (default: the manifest's "
             "split 'test', else a seeded draw of test_fraction)")
    o.option("--test-fraction", type=float, default=10 / 45, help="share of patients held out for test "
             "when the cohort names none")
    o.option("--seed", type=int, default=0, help="seed of weights, windows and folds")
    o.option("--epochs", type=int, default=20, help="epochs (one window per head slice per subject)")
    o.option("--steps", type=int, default=None, help="fixed number of optimizer steps instead of epochs "
             "(equal compute across scenarios)")
    o.option("--batch-size", type=int, default=5, help="windows per optimizer step (per process)")
    o.option("--lr", type=float, default=1e-3, help="Adam learning rate")
    o.option("--weight-decay", type=float, default=1e-4, help="Adam weight decay (L2)")
    o.option("--window", type=int, nargs=2, default=[112, 96], metavar=("ROWS", "COLS"),
             help="training window in voxels (rows along y, columns along x)")
    o.option("--widths", type=int, nargs=3, default=[16, 32, 64], help="feature maps of the dilation "
             "1 / 2 / 4 groups")
    o.option("--slices-per-subject", type=int, default=None, help="use at most this many head slices per "
             "subject per epoch (reduced CPU profiles)")
    o.option("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: one GPU per process)")
    o.option("--amp", default="auto", choices=["auto", "bf16", "fp16", "off"], help="mixed precision on CUDA")
    o.option("--channels-last", flag=True, default=True, help="channels-last memory format")
    o.option("--workers", type=int, default=0, help="data-loader worker processes")
    o.option("--cache-gb", type=float, default=4.0, help="memory for training subjects held in memory")
    o.option("--val-batch", type=int, default=8, help="slices per batch in validation")
    o.option("--val-slices", type=int, default=None, help="validate on at most this many head slices "
             "per patient, evenly spaced (reduced CPU profiles; default: all)")
    o.option("--resume", flag=True, default=True, help="continue an interrupted run in the same folder")
    o.option("--tensorboard", flag=True, default=True, help="TensorBoard logs (when tensorboard is installed)")


def _run(config: dict, ctx) -> Result:
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.network.model import build_network, count_parameters
    from RobustDeepLogic.training.loop import train_run
    from RobustDeepLogic.training.runs import HISTORY_FILE
    from RobustDeepLogic.training.settings import TRAIN_DEFAULTS

    if not config.get("out"):
        raise InputError("--out RUN is required (the run folder)")
    cfg = {k: config[k] for k in TRAIN_DEFAULTS if k in config}
    if cfg.get("fold") is not None and len(cfg["fold"]) == 1:
        cfg["fold"] = cfg["fold"][0]
    result = train_run(config["cohort"], config["out"], cfg, progress=ctx.progress, log=ctx.log)
    rows = result["folds"]
    figures = {}
    for fold, row in rows.items():
        for key in ("train_loss", "val_rmse", "val_psnr", "val_ssim"):
            if row.get(key) is not None:
                figures[f"fold{fold}_{key}"] = row[key]
    from RobustDeepLogic.cohort.tasks import get_task, load_tasks

    task = get_task(cfg.get("task", "ld2fd"), load_tasks(cfg.get("tasks") or {}))
    figures["parameters"] = count_parameters(build_network(in_channels=len(task.inputs),
                                                           widths=cfg.get("widths", [16, 32, 64])))
    return Result(outputs={"run": config["out"], "history": f"{config['out']}/{HISTORY_FILE}"},
                  figures=figures, summary=f"trained {len(rows)} fold(s) of {task.name}")


COMMAND = Command(
    "train", "train the translation network of a task (k-fold cross-validation)", _arguments, _run,
    output="out",
    epilog="Scenarios are configs: PU = a native cohort; PR = a registered cohort; PM = a registered "
    "cohort + synthetic subjects (--synthetic). Multi-GPU: torchrun --nproc-per-node N -m "
    "RobustDeepLogic.cli train ... (same command and config). Run the same command again to resume.",
)
