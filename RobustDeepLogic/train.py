"""Training of the translation network with patient-level cross-validation (method.md §7).

:func:`train_run` is the engine behind ``robustdeep train``: for every fold it trains
:class:`~.model.DilatedResNet2D` on windows of the fold's training subjects (real and, by config,
synthetic ones whose parents are all training patients of the fold), validates on the fold's
validation patients after every epoch (RMSE, PSNR and the paper's global SSIM in the head region, in
scaled units), and writes checkpoints and history into the run folder (layout: :mod:`.runs`).

- Optimiser: Adam, learning rate 1e-3, weight decay 1e-4 (L2 added to the gradient, as ``torch.optim.Adam``
  does); loss: mean squared error (L2); batch 5; 20 epochs. An epoch is one window per head slice
  of every training subject. ``steps`` fixes the number of optimizer steps instead (scenarios with more
  subjects then get the same compute; the last epoch may be partial).
- Seeded: the weights (seed + fold), the window draws and their order (seed, epoch, item) are
  functions of the config, so a run interrupted and run again with the same command resumes from
  ``last.pt`` and ends with the same weights as an uninterrupted run.
- CUDA: automatic mixed precision (bf16 where supported, else fp16 with gradient scaling) and
  channels-last memory format; several GPUs with DistributedDataParallel when started by
  ``torchrun`` (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in the environment; gloo on the CPU).
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .config import plain_value
from .errors import InputError
from .progress import Progress

#: Defaults of ``robustdeep train`` (each is a config key; see docs/network.md).
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
SCENARIOS = {"PU": ("native", False), "PR": ("template", False), "PM": ("template", True)}


# --------------------------------------------------------------------------------------------------
# Validation metrics (method.md §8; the evaluation stage has the full set)
# --------------------------------------------------------------------------------------------------
def head_metrics(reference: np.ndarray, predicted: np.ndarray, head: np.ndarray) -> Dict[str, float]:
    """RMSE, PSNR and the paper's global SSIM of two scaled volumes over the head voxels.

    RMSE = sqrt(mean((R - P)^2)); PSNR = 20 log10(max(max R, max P) / RMSE); SSIM (global, as the
    paper writes it) = (2 mR mP + c1)(2 sRP + c2) / ((mR^2 + mP^2 + c1)(sR^2 + sP^2 + c2)) with
    c1 = 0.01, c2 = 0.02 (method.md §8). Inputs ``[z, y, x]``; ``head`` bool.
    """
    r = reference[head].astype(np.float64)
    p = predicted[head].astype(np.float64)
    if r.size == 0:
        return {"rmse": float("nan"), "psnr": float("nan"), "ssim": float("nan")}
    mse = float(np.mean((r - p) ** 2))
    rmse = math.sqrt(mse)
    peak = max(float(r.max()), float(p.max()))
    psnr = 20 * math.log10(peak / rmse) if rmse > 0 and peak > 0 else float("inf")
    mr, mp = r.mean(), p.mean()
    sr, sp = r.var(), p.var()
    srp = float(np.mean((r - mr) * (p - mp)))
    c1, c2 = 0.01, 0.02
    ssim = (2 * mr * mp + c1) * (2 * srp + c2) / ((mr ** 2 + mp ** 2 + c1) * (sr + sp + c2))
    return {"rmse": rmse, "psnr": psnr, "ssim": float(ssim)}


def validate(model, volumes, *, device, amp: str = "auto", channels_last: bool = True,
             batch_size: int = 8, max_slices: Optional[int] = None) -> Dict[str, float]:
    """Mean head-region metrics over validation volumes (head slices, each batch in its head box).

    ``max_slices`` limits each volume to that many head slices, evenly spaced from the first to the
    last (reduced CPU profiles); the metrics are then over the head voxels of those slices.
    """
    from .model import predict_array

    rows = []
    for vol in volumes:
        zs = np.flatnonzero(vol.head.any(axis=(1, 2)))
        if max_slices is not None and zs.size > int(max_slices):
            zs = zs[np.unique(np.linspace(0, zs.size - 1, int(max_slices)).round().astype(int))]
        if zs.size == 0:
            continue
        pred = predict_array(model, vol.inputs, batch_size=batch_size, device=device, amp=amp,
                             channels_last=channels_last, slices=zs, head=vol.head)
        rows.append(head_metrics(vol.target[zs], pred[zs], vol.head[zs]))
    if not rows:
        return {"rmse": float("nan"), "psnr": float("nan"), "ssim": float("nan")}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


# --------------------------------------------------------------------------------------------------
# Distributed set-up
# --------------------------------------------------------------------------------------------------
@dataclass
class Distributed:
    """Rank, world size and device of this process (one process without ``torchrun``)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_mean(self, values: Sequence[float]) -> List[float]:
        """Sum over ranks divided by the world size."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return (t / self.world).tolist()

    def close(self) -> None:
        if self.initialised_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def setup_distributed(device: str = "auto") -> Distributed:
    """Read ``torchrun``'s environment; initialise the process group (nccl on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = device in ("auto", "cuda") or str(device).startswith("cuda")
    if want_cuda and torch.cuda.is_available():
        dev = torch.device("cuda", local if world > 1 else (torch.device(device).index or 0
                                                             if device != "auto" else 0))
        torch.cuda.set_device(dev)
    elif device not in ("auto", "cpu"):
        raise InputError(f"device {device!r} is not available here", hint="use --device cpu or auto")
    else:
        dev = torch.device("cpu")
    here = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        here = True
    return Distributed(rank, world, local, dev, here)


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
    """
    from .synthesis import ON_THE_FLY_METHODS

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
    """``extra_source(fold, training_ids)`` for :func:`train_run` from a checked ``on_the_fly`` spec."""
    from .datasets import on_the_fly_source
    from .folds import fold_seed

    if cohort.space != "template":
        raise InputError("on-the-fly synthesis needs a registered cohort (space 'template')",
                         file=cohort.manifest_path, hint="run 'robustdeep register' first")

    def factory(fold: int, training_ids: Sequence[str]):
        return on_the_fly_source(cohort, training_ids, modalities, count=spec["count"],
                                 masks=spec["masks"] or None, method=spec["method"],
                                 levels=spec["levels"], seed=fold_seed(spec["seed"], fold),
                                 device=spec["device"], prefix=f"otf-{spec['method']}-f{fold}-")

    return factory


@dataclass
class Plan:
    """Everything the folds need: the task, the sources, the fold plan, training subjects per fold."""

    task: Any
    cohort: Any
    source: Any
    folds: Any
    synthetic_parents: Dict[str, Tuple[str, ...]]


def prepare(cohort_dir, cfg: Dict[str, Any], run_dir: Path, progress: Progress):
    """Load the cohort(s), the task and the fold plan; write or check ``run.json``."""
    from .cohort import Cohort
    from .datasets import CohortSource, ConcatSource
    from .folds import FoldPlan, assign_folds
    from .model import NetworkSpec
    from .runs import RUN_FILE, RunInfo, load_run
    from .tasks import get_task, load_tasks

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
    scaling = {m: cohort.scaling_for(m) for m in modalities}
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
    else:
        plan = assign_folds(
            [p.id for p in real], k=int(cfg["folds"]), test=cfg["test_ids"],
            test_fraction=float(cfg["test_fraction"]), seed=int(cfg["seed"]),
            preset_splits={p.id: p.split for p in real}, preset_folds={p.id: p.fold for p in real})
        info = RunInfo(
            task={"name": task.name, "inputs": list(task.inputs), "target": task.target,
                  "description": task.description},
            scaling={m: s.as_dict() for m, s in scaling.items()},
            window=list(cfg["window"]),
            network=NetworkSpec(len(task.inputs), 1, tuple(cfg["widths"])).as_dict(),
            folds=plan.as_dict(), space=cohort.space, cohort=str(Path(cohort.root).resolve()),
            config=plain_value(cfg), meta={"units": {m: cohort.units.get(m, "") for m in modalities},
                                      "torch": torch.__version__})
    return Plan(task, cohort, source, plan, synthetic_parents), info


def training_subjects(plan: Plan, fold: int, cfg: Mapping[str, Any]) -> Tuple[List[str], List[str]]:
    """(training subject ids, refused synthetic ids) for ``fold``.

    Real training patients of the fold (when ``real``), then the synthetic subjects whose parents are
    all among them (at most ``max_synthetic``, a seeded choice).
    """
    from .folds import allowed_synthetic

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


# --------------------------------------------------------------------------------------------------
# One fold
# --------------------------------------------------------------------------------------------------
def _tensorboard(run_dir: Path, fold: int, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is an optional extra
        return None
    return SummaryWriter(str(run_dir / "tensorboard" / f"fold{fold}"))


def train_fold(
    plan: Plan,
    fold: int,
    cfg: Mapping[str, Any],
    run_dir: Path,
    history: List[Dict[str, Any]],
    *,
    dist: Distributed,
    progress: Progress,
    log=None,
    extra_source: Optional[Callable[[int, Sequence[str]], Any]] = None,
    on_epoch_end: Optional[Callable[[int, int, Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Train (or resume, or skip if finished) one fold; returns its final history row."""
    from .datasets import ConcatSource, EpochSampler, WindowDataset, validation_volumes
    from .folds import check_no_leakage
    from .model import NetworkSpec, autocast_dtype, build_network
    from .runs import fold_dir, load_checkpoint, save_checkpoint, write_history

    fdir = fold_dir(run_dir, fold)
    last_path, best_path = fdir / "last.pt", fdir / "best.pt"
    epochs, fixed_steps = int(cfg["epochs"]), cfg["steps"]
    state = load_checkpoint(last_path) if (cfg["resume"] and last_path.is_file()) else None

    train_ids, refused = training_subjects(plan, fold, cfg)
    if refused and log is not None:
        log.info("fold %d: %d synthetic subjects refused (a parent is held out)", fold, len(refused))
    held_out = plan.folds.held_out(fold)
    source = plan.source
    if extra_source is not None:
        extra = extra_source(fold, plan.folds.training(fold))
        source = ConcatSource([plan.source, extra])
        train_ids = train_ids + list(extra.ids)
    for sid in train_ids:
        check_no_leakage(sid, source.parents(sid), held_out, fold=fold)

    task = plan.task
    window = tuple(cfg["window"])
    dataset = WindowDataset(source, train_ids, task.inputs, task.target, window=window,
                            seed=int(cfg["seed"]) + 1000 * fold,
                            slices_per_subject=cfg["slices_per_subject"],
                            cache_bytes=int(float(cfg["cache_gb"]) * (1 << 30)), progress=progress)
    mean_bytes = max(1, int(np.mean(dataset.subject_bytes)))
    block = max(1, dataset.cache_bytes // mean_bytes)
    sampler = EpochSampler(dataset, seed=int(cfg["seed"]) + 1000 * fold, rank=dist.rank,
                           world=dist.world, block_subjects=block if block < len(train_ids) else None)
    batch = int(cfg["batch_size"])
    steps_per_epoch = math.ceil(len(sampler) / batch)
    if steps_per_epoch == 0:
        raise InputError(f"fold {fold}: fewer training slices than processes")
    total_steps = int(fixed_steps) if fixed_steps is not None else epochs * steps_per_epoch
    n_epochs = math.ceil(total_steps / steps_per_epoch)

    val_ids = plan.folds.validation(fold) if plan.folds.k > 1 else []
    val_volumes = (validation_volumes(plan.source, val_ids, task.inputs, task.target, progress)
                   if dist.main and val_ids else [])

    device = dist.device
    torch.manual_seed(int(cfg["seed"]) + fold)
    spec = NetworkSpec(len(task.inputs), 1, tuple(cfg["widths"]))
    model = build_network(spec)
    fmt = torch.channels_last if cfg["channels_last"] else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                                 weight_decay=float(cfg["weight_decay"]))
    amp_dtype = autocast_dtype(device, cfg["amp"])
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    start_epoch, step, best = 0, 0, {"epoch": None, "val_rmse": None}
    if state is not None:
        if state.get("network") != spec.as_dict():
            raise InputError("checkpoint holds a different network", file=last_path,
                             hint="use a new --out folder")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, step, best = int(state["epoch"]), int(state["step"]), dict(state["best"])
        if step >= total_steps:
            return next((r for r in reversed(history) if r.get("fold") == fold), {})
    history[:] = [r for r in history if r.get("fold") != fold or int(r["epoch"]) <= start_epoch]
    net = model
    if dist.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=int(cfg["workers"]),
        pin_memory=device.type == "cuda", drop_last=False)
    writer = _tensorboard(run_dir, fold, bool(cfg["tensorboard"]) and dist.main)
    row: Dict[str, Any] = {}
    try:
        with progress.stage(f"train fold {fold}", total=total_steps) as st:
            st.done = step
            for epoch in range(start_epoch + 1, n_epochs + 1):
                dataset.set_epoch(epoch)
                sampler.set_epoch(epoch)
                net.train()
                t0 = time.perf_counter()
                loss_sum, n_seen = 0.0, 0
                for x, y in loader:
                    if step >= total_steps:
                        break
                    x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
                    y = y.to(device, non_blocking=True).contiguous(memory_format=fmt)
                    optimizer.zero_grad(set_to_none=True)
                    ctx = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                           else nullcontext())
                    with ctx:
                        pred = net(x)
                    loss = F.mse_loss(pred.float(), y)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    step += 1
                    loss_sum += float(loss.detach()) * x.shape[0]
                    n_seen += x.shape[0]
                    if writer is not None:
                        writer.add_scalar("train/loss", float(loss.detach()), step)
                    st.advance(message=f"epoch {epoch}/{n_epochs} loss {float(loss.detach()):.3g}")
                seconds = time.perf_counter() - t0
                train_loss, seen = dist.all_mean([loss_sum / max(n_seen, 1), n_seen])
                row = {"fold": fold, "epoch": epoch, "step": step, "train_loss": train_loss,
                       "seconds": round(seconds, 3),
                       "slices_per_s": round(seen * dist.world / max(seconds, 1e-9), 3),
                       "lr": float(cfg["lr"])}
                if dist.main:
                    if val_volumes:
                        m = validate(model, val_volumes, device=device, amp=cfg["amp"],
                                     channels_last=bool(cfg["channels_last"]),
                                     batch_size=int(cfg["val_batch"]),
                                     max_slices=cfg["val_slices"])
                        row.update(val_rmse=m["rmse"], val_psnr=m["psnr"], val_ssim=m["ssim"])
                        if writer is not None:
                            for k, v in m.items():
                                writer.add_scalar(f"val/{k}", v, step)
                    history.append(row)
                    finished = step >= total_steps
                    improved = val_volumes and (best["val_rmse"] is None
                                                or row["val_rmse"] < best["val_rmse"])
                    if improved or not val_volumes:
                        best = {"epoch": epoch, "val_rmse": row.get("val_rmse")}
                    ckpt = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "scaler": scaler.state_dict(), "epoch": epoch, "step": step,
                            "finished": finished, "best": best, "network": spec.as_dict(),
                            "fold": fold, "task": task.name}
                    if best["epoch"] == epoch:
                        save_checkpoint(best_path, ckpt)
                    save_checkpoint(last_path, ckpt)
                    write_history(run_dir, history)
                    if log is not None:
                        log.info("fold %d epoch %d step %d: loss %.5g val %s", fold, epoch, step,
                                 train_loss, {k: row.get(k) for k in ("val_rmse", "val_psnr", "val_ssim")})
                dist.barrier()
                if on_epoch_end is not None:
                    on_epoch_end(fold, epoch, row)
                if step >= total_steps:
                    break
    finally:
        if writer is not None:
            writer.close()
    return row


def train_run(
    cohort_dir,
    run_dir,
    config: Mapping[str, Any],
    *,
    progress: Optional[Progress] = None,
    log=None,
    extra_source: Optional[Callable[[int, Sequence[str]], Any]] = None,
    on_epoch_end: Optional[Callable[[int, int, Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Train every requested fold of a task on a cohort into ``run_dir`` (resuming what exists).

    Parameters
    ----------
    cohort_dir:
        The cohort folder (real patients, perhaps synthetic ones too).
    run_dir:
        The run folder (layout in :mod:`.runs`).
    config:
        Keys of :data:`TRAIN_DEFAULTS`.
    extra_source:
        ``extra_source(fold, training_patient_ids) -> VolumeSource``: more training subjects for a fold,
        e.g. on-the-fly synthesis from that fold's training patients; every subject's parents are
        checked (a subject descending from a held-out patient is refused with an InputError).
    on_epoch_end:
        Called as ``on_epoch_end(fold, epoch, history_row)`` after each epoch's checkpoint.

    Returns
    -------
    ``{"folds": {fold: last history row}, "run": run_dir}``.
    """
    from .runs import read_history, save_run

    progress = progress or Progress()
    cfg = _check_config(config)
    run_dir = Path(run_dir)
    dist = setup_distributed(str(cfg["device"]))
    try:
        plan, info = prepare(cohort_dir, cfg, run_dir, progress)
        if dist.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not cfg["resume"]:
                for old in run_dir.glob("fold*/*.pt"):
                    old.unlink()
                if (run_dir / "history.csv").exists():
                    (run_dir / "history.csv").unlink()
            save_run(run_dir, info)
        dist.barrier()
        history = read_history(run_dir) if cfg["resume"] else []
        if cfg["on_the_fly"] is not None:
            if extra_source is not None:
                raise InputError("give either an on_the_fly config or an extra source, not both")
            modalities = list(dict.fromkeys([plan.task.target, *plan.task.inputs]))
            extra_source = on_the_fly_factory(plan.cohort, cfg["on_the_fly"], modalities)
        wanted = cfg["fold"]
        folds = (list(range(plan.folds.k)) if wanted is None
                 else [int(f) for f in (wanted if isinstance(wanted, (list, tuple)) else [wanted])])
        for f in folds:
            if not 0 <= f < plan.folds.k:
                raise InputError(f"fold {f} does not exist (folds 0..{plan.folds.k - 1})")
        results = {}
        for f in folds:
            results[f] = train_fold(plan, f, cfg, run_dir, history, dist=dist, progress=progress,
                                    log=log, extra_source=extra_source, on_epoch_end=on_epoch_end)
        return {"folds": results, "run": str(run_dir)}
    finally:
        dist.close()
