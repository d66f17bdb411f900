"""The run folder of a training: what ``predict`` needs to work from the folder alone.

Layout::

    RUN/
      run.json                       # this module: task, scaling, window, network, folds, config
      robustdeep-train.config.yaml   # the resolved command-line config (written by the CLI frame)
      history.csv                    # per-epoch metrics of every fold
      robustdeep.log
      fold0/last.pt  fold0/best.pt   # checkpoints of fold 0 (atomic writes)
      fold0/subjects.json            # the subjects fold 0 trains on: real, synthetic (disk or on the fly)
      fold1/...
      tensorboard/fold0/...          # only when tensorboard is installed (run.json meta says)

A checkpoint (``torch.save`` of a dict) holds ``model`` (state dict of the unwrapped network),
``optimizer``, ``scaler``, ``epoch`` (completed, from 1), ``step`` (optimizer steps so far),
``finished``, ``best`` (``{"epoch", "val_rmse"}``), ``network``
(:class:`~RobustDeepLogic.network.model.NetworkSpec` dict), ``fold`` and ``task`` (the task's name).
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

#: The ``format`` field of ``run.json``.
RUN_FORMAT = "robustdeep-run"

#: The ``version`` of ``run.json`` written; a newer one is refused by :func:`load_run`.
RUN_VERSION = 1

#: Name of the run description in the run folder.
RUN_FILE = "run.json"

#: Name of the per-epoch history in the run folder.
HISTORY_FILE = "history.csv"

#: The columns of history.csv (other keys of a history row are not written).
HISTORY_COLUMNS = ["epoch", "step", "train_loss", "val_rmse", "val_psnr", "val_ssim", "fold",
                   "seconds", "slices_per_s", "lr"]


@dataclass
class RunInfo:
    """The contents of ``run.json``.

    Attributes
    ----------
    task : dict
        ``{"name", "inputs", "target", "description"}`` of the task.
    scaling : dict
        Modality to ``{"scale", "offset", "unit"}`` (``scaled = (value - offset) / scale``), for the
        target and every input.
    window : list of int
        Training window ``[rows, cols]`` in voxels.
    network : dict
        :meth:`NetworkSpec.as_dict <RobustDeepLogic.network.model.NetworkSpec.as_dict>` of the
        network.
    folds : dict
        :meth:`FoldPlan.as_dict <RobustDeepLogic.cohort.folds.FoldPlan.as_dict>`: ``{"test",
        "folds"}`` patient ids.
    space : str
        Space of the training cohort: ``"native"`` (default) or ``"template"``.
    cohort : str
        Resolved path of the training cohort folder (``""`` when unknown).
    config : dict
        The resolved training configuration, in plain (JSON) values.
    meta : dict
        Other facts, e.g. ``{"units": {modality: unit}, "torch": version}``.
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
        """The task's input modalities, in channel order."""
        return list(self.task["inputs"])

    @property
    def target(self) -> str:
        """The task's target modality."""
        return str(self.task["target"])

    def scaling_of(self, modality: str):
        """The fixed scaling of one modality, as the run was trained with it.

        Parameters
        ----------
        modality : str
            A modality of the task (``"FD"``, ``"CT"``, ...).

        Returns
        -------
        RobustDeepLogic.cohort.scaling.Scaling
            Maps physical values (SUV, HU, MR a.u.) to the network's scaled units and back.

        Raises
        ------
        KeyError
            When the run has no constants for ``modality``.
        """
        s = self.scaling[modality]
        return Scaling(float(s["scale"]), float(s.get("offset", 0.0)), str(s.get("unit", "")))

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of ``run.json``.

        Returns
        -------
        dict
            The fields, with ``format`` (:data:`RUN_FORMAT`), ``version`` (:data:`RUN_VERSION`) and
            ``written_by`` (the RobustDeep version).
        """
        return {"format": RUN_FORMAT, "version": RUN_VERSION, "written_by": f"robustdeep {__version__}",
                "task": self.task, "scaling": self.scaling, "window": list(self.window),
                "network": self.network, "folds": self.folds, "space": self.space,
                "cohort": self.cohort, "config": self.config, "meta": self.meta}


def save_run(run_dir: PathLike, info: RunInfo) -> Path:
    """Write ``RUN/run.json`` atomically.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder; it must exist.
    info : RunInfo
        What to write.

    Returns
    -------
    pathlib.Path
        The path of ``run.json``.
    """
    path = Path(run_dir) / RUN_FILE
    atomic_write_text(path, json.dumps(info.to_json(), indent=1, default=str) + "\n")
    return path


def load_run(run_dir: PathLike) -> RunInfo:
    """Read ``RUN/run.json``; a missing or foreign file is an :class:`InputError`.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder (``--out`` of ``robustdeep train``).

    Returns
    -------
    RunInfo
        The run's description; fields absent from an older file take their defaults.

    Raises
    ------
    InputError
        When there is no ``run.json``, it is not valid JSON, its ``format`` is not
        :data:`RUN_FORMAT`, or its ``version`` is newer than :data:`RUN_VERSION`.
    """
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
    """The folder of one fold's checkpoints (not created here).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.
    fold : int
        The fold.

    Returns
    -------
    pathlib.Path
        ``run_dir/fold<fold>``.
    """
    return Path(run_dir) / f"fold{int(fold)}"


def checkpoints(run_dir: PathLike, which: str = "best") -> Dict[int, Path]:
    """Checkpoint files per fold (``which`` = ``best`` or ``last``; ``best`` falls back to ``last``).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder; its ``fold<k>/`` folders are searched.
    which : str, optional
        ``'best'`` (default; a fold without ``best.pt`` gives its ``last.pt``) or ``'last'``.

    Returns
    -------
    dict of int to pathlib.Path
        Fold number to checkpoint file, in increasing fold order; folds without a checkpoint are left
        out.

    Raises
    ------
    InputError
        When no fold has a checkpoint.
    """
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
    """Read a checkpoint written by :func:`save_checkpoint`.

    The file is unpickled in full (``weights_only=False``): load only checkpoints you trust.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.pt`` checkpoint file.
    map_location : str, torch.device or callable, optional
        Where tensors are loaded, as for ``torch.load`` (default ``'cpu'``).

    Returns
    -------
    dict
        The checkpoint (keys in the module doc).

    Raises
    ------
    InputError
        When the file cannot be read (missing, truncated or not a torch file).
    """
    import torch

    try:
        return torch.load(str(path), map_location=map_location, weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise InputError(f"cannot read the checkpoint ({type(exc).__name__}: {exc})", file=path) from None


def save_checkpoint(path: PathLike, state: Dict[str, Any]) -> Path:
    """``torch.save`` atomically (a crash never leaves a half-written checkpoint under ``path``).

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file; replaced if it exists.
    state : dict
        What to save (keys in the module doc).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import torch


    with atomic_path(path) as tmp:
        torch.save(state, str(tmp))
    return Path(path)


def write_history(run_dir: PathLike, rows: List[Dict[str, Any]]) -> Path:
    """Write all history rows to ``RUN/history.csv`` atomically (columns :data:`HISTORY_COLUMNS`).

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.
    rows : list of dict
        History rows of every fold; keys outside :data:`HISTORY_COLUMNS` are not written, and missing
        or None values are written as empty cells.

    Returns
    -------
    pathlib.Path
        The path of ``history.csv``.
    """
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in HISTORY_COLUMNS})
    path = Path(run_dir) / HISTORY_FILE
    atomic_write_text(path, buf.getvalue())
    return path


def read_history(run_dir: PathLike) -> List[Dict[str, Any]]:
    """Rows of ``RUN/history.csv`` (numbers parsed; empty cells are None); [] when absent.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder.

    Returns
    -------
    list of dict
        One dict per row, column to value: ``epoch``, ``step`` and ``fold`` as int, other numbers as
        float, text that is not a number as str, empty cells as None.
    """
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
