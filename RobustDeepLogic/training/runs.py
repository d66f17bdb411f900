"""The run folder of a training: what ``predict`` needs to work from the folder alone.

Layout::

    RUN/
      run.json                       # this module: task, scaling, window, network, folds, config
      robustdeep-train.config.yaml   # the resolved command-line config (written by the CLI frame)
      history.csv                    # per-epoch metrics of every fold
      robustdeep.log
      fold0/last.pt  fold0/best.pt   # checkpoints of fold 0 (atomic writes)
      fold1/...
      tensorboard/fold0/...          # only when tensorboard is installed

A checkpoint (``torch.save`` of a dict) holds ``model`` (state dict of the unwrapped network),
``optimizer``, ``scaler``, ``epoch`` (completed, from 1), ``step`` (optimizer steps so far),
``finished``, ``best`` (``{"epoch", "val_rmse"}``), ``network`` (:class:`~.model.NetworkSpec` dict)
and ``fold``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List

from RobustDeepLogic.cohort.scaling import Scaling
from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_path, atomic_write_text
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.core.version import __version__

RUN_FORMAT = "robustdeep-run"


RUN_VERSION = 1


RUN_FILE = "run.json"


HISTORY_FILE = "history.csv"


#: The columns of history.csv (other keys of a history row are not written).
HISTORY_COLUMNS = ["epoch", "step", "train_loss", "val_rmse", "val_psnr", "val_ssim", "fold",
                   "seconds", "slices_per_s", "lr"]


@dataclass
class RunInfo:
    """The contents of ``run.json``.

    ``scaling`` maps modality to ``{"scale", "offset", "unit"}`` (``scaled = (value - offset) /
    scale``); ``window`` is ``[rows, cols]``; ``folds`` is a :class:`~.folds.FoldPlan` dict.
    """

    task: Dict[str, Any]
    scaling: Dict[str, Dict[str, Any]]
    window: List[int]
    network: Dict[str, Any]
    folds: Dict[str, Any]
    space: str = "native"
    cohort: str = ""
    config: Dict[str, Any] = field(default_factory=dict)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def inputs(self) -> List[str]:
        return list(self.task["inputs"])

    @property
    def target(self) -> str:
        return str(self.task["target"])

    def scaling_of(self, modality: str):
        s = self.scaling[modality]
        return Scaling(float(s["scale"]), float(s.get("offset", 0.0)), str(s.get("unit", "")))

    def to_json(self) -> Dict[str, Any]:
        return {"format": RUN_FORMAT, "version": RUN_VERSION, "written_by": f"robustdeep {__version__}",
                "task": self.task, "scaling": self.scaling, "window": list(self.window),
                "network": self.network, "folds": self.folds, "space": self.space,
                "cohort": self.cohort, "config": self.config, "meta": self.meta}


def save_run(run_dir: PathLike, info: RunInfo) -> Path:
    path = Path(run_dir) / RUN_FILE
    atomic_write_text(path, json.dumps(info.to_json(), indent=1, default=str) + "\n")
    return path


def load_run(run_dir: PathLike) -> RunInfo:
    """Read ``RUN/run.json``; a missing or foreign file is an :class:`InputError`."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise InputError("not a training run folder (no run.json)", file=run_dir,
                         hint="give the --out folder of 'robustdeep train'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"cannot read run.json ({exc})", file=path) from None
    if data.get("format") != RUN_FORMAT:
        raise InputError("not a RobustDeep run file", file=path)
    if int(data.get("version", 0)) > RUN_VERSION:
        raise InputError("run folder written by a newer RobustDeep", file=path, hint="update RobustDeep")
    return RunInfo(task=data["task"], scaling=data["scaling"], window=list(data["window"]),
                   network=data["network"], folds=data["folds"], space=data.get("space", "native"),
                   cohort=data.get("cohort", ""), config=data.get("config", {}),
                   meta=data.get("meta", {}))


def fold_dir(run_dir: PathLike, fold: int) -> Path:
    return Path(run_dir) / f"fold{int(fold)}"


def checkpoints(run_dir: PathLike, which: str = "best") -> Dict[int, Path]:
    """Checkpoint files per fold (``which`` = ``best`` or ``last``; ``best`` falls back to ``last``)."""
    found: Dict[int, Path] = {}
    for d in sorted(Path(run_dir).glob("fold*")):
        suffix = d.name[4:]
        if not d.is_dir() or not suffix.isdigit():
            continue
        for name in ([which] if which == "last" else [which, "last"]):
            if (d / f"{name}.pt").is_file():
                found[int(suffix)] = d / f"{name}.pt"
                break
    if not found:
        raise InputError(f"no {which} checkpoint in this run folder", file=run_dir,
                         hint="train first, or wait until the first epoch has finished")
    return dict(sorted(found.items()))


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    import torch

    try:
        return torch.load(str(path), map_location=map_location, weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise InputError(f"cannot read the checkpoint ({type(exc).__name__}: {exc})", file=path) from None


def save_checkpoint(path: PathLike, state: Dict[str, Any]) -> Path:
    """``torch.save`` atomically (a crash never leaves a half-written checkpoint under ``path``)."""
    import torch


    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))
    return Path(path)


def write_history(run_dir: PathLike, rows: List[Dict[str, Any]]) -> Path:
    """Write all history rows to ``RUN/history.csv`` atomically (columns :data:`HISTORY_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in HISTORY_COLUMNS})
    path = Path(run_dir) / HISTORY_FILE
    atomic_write_text(path, buf.getvalue())
    return path


def read_history(run_dir: PathLike) -> List[Dict[str, Any]]:
    """Rows of ``RUN/history.csv`` (numbers parsed; empty cells are None); [] when absent."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            row: Dict[str, Any] = {}
            for k, v in raw.items():
                if v in ("", None):
                    row[k] = None
                    continue
                try:
                    row[k] = int(v) if k in ("epoch", "step", "fold") else float(v)
                except ValueError:
                    row[k] = v
            rows.append(row)
    return rows
