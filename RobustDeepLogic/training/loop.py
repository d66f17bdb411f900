"""The training loop: a run's folds trained with patient-level cross-validation (docs/method.md §7).

:func:`train_run` is the engine behind ``robustdeep train``: for every fold (:func:`train_fold`) it
trains :class:`~RobustDeepLogic.network.model.DilatedResNet2D` on windows of the fold's training
subjects (real and, by config, synthetic ones whose parents are all training patients of the fold),
validates on the fold's validation patients after every epoch (RMSE, PSNR and the paper's global SSIM
in the head region, in scaled units; :mod:`RobustDeepLogic.training.validation`), and writes
checkpoints and history into the run folder (layout: :mod:`RobustDeepLogic.training.runs`). The
configuration is checked in :mod:`RobustDeepLogic.training.settings`, the folds and subjects are
planned in :mod:`RobustDeepLogic.training.plan`, and the windows come from
:mod:`RobustDeepLogic.data.windows`.

- Optimiser: Adam, learning rate 1e-3, weight decay 1e-4 (L2 added to the gradient, as
  ``torch.optim.Adam`` does); loss: mean squared error (L2); batch 5; 20 epochs. An epoch is one
  window per head slice of every training subject. ``steps`` fixes the number of optimizer steps
  instead (scenarios with more subjects then get the same compute; the last epoch may be partial).
- Seeded: the weights (seed + fold), the window draws and their order (seed + 1000 fold, epoch, item) are
  functions of the config, so a run interrupted and run again with the same command resumes from
  ``last.pt`` and ends with the same weights as an uninterrupted run.
- CUDA: automatic mixed precision (bf16 where supported, else fp16 with gradient scaling) and
  channels-last memory format; several GPUs with DistributedDataParallel when started by
  ``torchrun`` (``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` in the environment; gloo on the CPU).
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from RobustDeepLogic.cohort.folds import (
    check_no_leakage,
)
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.data.sources import ConcatSource
from RobustDeepLogic.data.windows import EpochSampler, WindowDataset, validation_volumes
from RobustDeepLogic.network.inference import autocast_dtype
from RobustDeepLogic.network.model import NetworkSpec, build_network
from RobustDeepLogic.training.distributed import Distributed, setup_distributed
from RobustDeepLogic.training.fold_subjects import SUBJECTS_FILE, write_fold_subjects
from RobustDeepLogic.training.plan import Plan, prepare, training_subjects
from RobustDeepLogic.training.runs import (
    fold_dir,
    load_checkpoint,
    read_history,
    save_checkpoint,
    save_run,
    write_history,
)
from RobustDeepLogic.training.settings import _check_config, on_the_fly_factory
from RobustDeepLogic.training.validation import validate

# --------------------------------------------------------------------------------------------------
# One fold
# --------------------------------------------------------------------------------------------------
#: What a run says, once, when TensorBoard logging is on but the package is missing.
TENSORBOARD_MISSING = ("TensorBoard logging is on (tensorboard: true, the default) but the 'tensorboard' "
                       "package cannot be imported, so no TensorBoard logs are written; install it with "
                       "pip install 'robustdeep[tensorboard]' (or pip install tensorboard), or turn the "
                       "logging off with --no-tensorboard")


def tensorboard_error() -> Optional[str]:
    """Why ``torch.utils.tensorboard`` cannot be imported (tensorboard is an optional extra).

    Returns
    -------
    str or None
        The import error as ``"Type: message"``; None when TensorBoard logs can be written.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception as exc:  # ImportError, or a broken installation
        return f"{type(exc).__name__}: {exc}"
    return None


def _tensorboard(run_dir: Path, fold: int, enabled: bool):
    if not enabled or tensorboard_error() is not None:  # said once by train_run
        return None
    from torch.utils.tensorboard import SummaryWriter

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
    """Train (or resume, or skip if finished) one fold; returns its final history row.

    The fold's training subjects (:func:`~RobustDeepLogic.training.plan.training_subjects`, plus those
    of ``extra_source``) are checked for leakage, the network is seeded with ``seed + fold`` and the
    windows with ``seed + 1000 fold``. After every epoch the main process validates (when the plan has
    more than one fold), appends the history row, writes ``best.pt`` when the validation RMSE is the
    lowest so far (every epoch without validation), ``last.pt`` and ``history.csv``.

    Parameters
    ----------
    plan : RobustDeepLogic.training.plan.Plan
        The run's task, sources and folds.
    fold : int
        The fold to train, ``0 <= fold < plan.folds.k``.
    cfg : mapping
        A checked training configuration (every key of
        :data:`~RobustDeepLogic.training.settings.TRAIN_DEFAULTS`, as :func:`train_run` makes it).
    run_dir : pathlib.Path
        The run folder; the fold's checkpoints go to ``run_dir/fold<fold>/``.
    history : list of dict
        All history rows of the run, changed in place: this fold's rows after the resumed epoch are
        dropped, and the main process appends one row per epoch.
    dist : RobustDeepLogic.training.distributed.Distributed
        This process's rank, world size and device.
    progress : RobustDeepLogic.core.progress.Progress
        Reports indexing, loading and the stage ``"train fold <fold>"`` (one step per optimizer step).
    log : logging.Logger, optional
        Gets one line per epoch (main process) and the number of refused synthetic subjects.
    extra_source : callable, optional
        ``extra_source(fold, training_patient_ids) -> VolumeSource``: more training subjects for the
        fold, all of which are used.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(fold, epoch, history_row)`` on every process after each epoch.

    Returns
    -------
    dict
        The fold's last history row: ``fold``, ``epoch``, ``step``, ``train_loss``, ``seconds``,
        ``slices_per_s``, ``lr`` and, with validation, ``val_rmse``, ``val_psnr``, ``val_ssim``. For a
        fold already finished, its last row in ``history`` (``{}`` when there is none).

    Raises
    ------
    InputError
        When a training subject descends from a held-out patient, the fold has no training subject or
        fewer training slices than processes, or ``last.pt`` holds a different network.
    """
    fdir = fold_dir(run_dir, fold)
    last_path, best_path = fdir / "last.pt", fdir / "best.pt"
    epochs, fixed_steps = int(cfg["epochs"]), cfg["steps"]
    state = load_checkpoint(last_path) if (cfg["resume"] and last_path.is_file()) else None
    if state is not None and state.get("finished") and (fdir / SUBJECTS_FILE).is_file() and (
            int(state["step"]) >= int(fixed_steps) if fixed_steps is not None else int(state["epoch"]) >= epochs):
        # finished with these epochs / steps: nothing to index or load (a resumed study walks its runs)
        return next((r for r in reversed(history) if r.get("fold") == fold), {})

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
    real = set(plan.folds.training(fold))
    write_fold_subjects(run_dir, fold, [i for i in train_ids if i in real], [i for i in train_ids if i not in real])

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

    Under ``torchrun`` every process calls it; rank 0 writes ``run.json``, checkpoints and history. With
    ``resume`` false, the run folder's checkpoints and history are deleted first.

    Parameters
    ----------
    cohort_dir : str or os.PathLike
        The cohort folder (real patients, perhaps synthetic ones too).
    run_dir : str or os.PathLike
        The run folder (layout in :mod:`RobustDeepLogic.training.runs`); created if needed.
    config : mapping
        Keys of :data:`~RobustDeepLogic.training.settings.TRAIN_DEFAULTS`; a missing key takes its
        default. ``fold`` (an int, a list, or None for all) chooses the folds to train.
    progress : RobustDeepLogic.core.progress.Progress, optional
        Reports the stages of every fold; default a silent one.
    log : logging.Logger, optional
        Gets one line per epoch, the number of refused synthetic subjects, and a warning when
        TensorBoard logging is on but the package is missing (:data:`TENSORBOARD_MISSING`; without
        ``log`` that warning goes to ``progress`` as a ``log`` event). ``run.json``'s
        ``meta["tensorboard"]`` records whether the logs are written.
    extra_source : callable, optional
        ``extra_source(fold, training_patient_ids) -> VolumeSource``: more training subjects for a fold,
        e.g. on-the-fly synthesis from that fold's training patients; every subject's parents are
        checked (a subject descending from a held-out patient is refused with an InputError). Not
        together with an ``on_the_fly`` config, which makes one
        (:func:`~RobustDeepLogic.training.settings.on_the_fly_factory`).
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(fold, epoch, history_row)`` after each epoch's checkpoint.

    Returns
    -------
    dict
        ``{"folds": {fold: last history row}, "run": str(run_dir)}``.

    Raises
    ------
    InputError
        When the configuration is invalid, a fold does not exist, both ``on_the_fly`` and
        ``extra_source`` are given, the run folder was made with another configuration, or for the
        reasons of :func:`~RobustDeepLogic.training.plan.prepare` and :func:`train_fold`.
    """
    progress = progress or Progress()
    cfg = _check_config(config)
    run_dir = Path(run_dir)
    dist = setup_distributed(str(cfg["device"]))
    try:
        plan, info = prepare(cohort_dir, cfg, run_dir, progress)
        if dist.main and cfg["tensorboard"]:
            error = tensorboard_error()
            info.meta["tensorboard"] = {"written": error is None, "error": error}
            if error is not None:
                if log is not None:  # the command's logger also sends it to the progress stream
                    log.warning(TENSORBOARD_MISSING)
                else:
                    progress.log("WARNING", TENSORBOARD_MISSING)
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
