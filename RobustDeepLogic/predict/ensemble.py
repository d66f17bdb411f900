"""The fold networks of a trained run: loaded from their checkpoints, and averaged as one module.

:func:`load_models` builds each fold's network from a run folder; :class:`FoldAverage` averages their
outputs (the module that :mod:`RobustDeepLogic.predict.export` exports). Whole-volume prediction with
these networks is :mod:`RobustDeepLogic.predict.volumes`; the run folder is
:mod:`RobustDeepLogic.training.runs`.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.network.model import NetworkSpec, build_network
from RobustDeepLogic.training.runs import checkpoints, load_checkpoint, load_run


class FoldAverage(nn.Module):
    """The mean of several networks' outputs (``[N, C, H, W] -> [N, 1, H, W]``).

    Parameters
    ----------
    models : sequence of torch.nn.Module
        The networks (at least one), all mapping ``[N, C, H, W]`` to outputs of one shape.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every network to ``x`` and average the outputs.

        Parameters
        ----------
        x : torch.Tensor
            ``[N, C, H, W]`` in scaled units.

        Returns
        -------
        torch.Tensor
            The mean output, ``[N, 1, H, W]`` for the task networks, in the target's scaled units.
        """
        total = self.models[0](x)
        for m in self.models[1:]:
            total = total + m(x)
        return total / len(self.models)


def load_models(run_dir, *, which: str = "best", folds: Optional[Sequence[int]] = None,
                device: Union[str, torch.device] = "cpu", channels_last: bool = True):
    """``(RunInfo, {fold: network})`` of a run folder, in eval mode on ``device``.

    Each network is built from the ``network`` specification in its checkpoint (``run.json``'s when
    the checkpoint has none) and loaded with the checkpoint's weights.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder (``--out`` of ``robustdeep train``).
    which : str, optional
        ``'best'`` (default; a fold without ``best.pt`` gives its ``last.pt``) or ``'last'``.
    folds : sequence of int, optional
        The folds to load; None (default): every fold with a checkpoint.
    device : str or torch.device, optional
        Where the networks are put (default ``'cpu'``).
    channels_last : bool, optional
        Put the weights in channels-last memory format (default True).

    Returns
    -------
    info : RobustDeepLogic.training.runs.RunInfo
        The run's ``run.json``.
    models : dict of int to RobustDeepLogic.network.model.DilatedResNet2D
        Fold number to network, in increasing fold order (or the order of ``folds``).

    Raises
    ------
    InputError
        When ``run_dir`` is not a run folder, has no checkpoint, lacks one of ``folds``, or a
        checkpoint cannot be read.
    """
    info = load_run(run_dir)
    found = checkpoints(run_dir, which)
    if folds is not None:
        missing = [f for f in folds if f not in found]
        if missing:
            raise InputError(f"no checkpoint for fold(s) {missing}", file=run_dir,
                             hint=f"folds with checkpoints: {sorted(found)}")
        found = {f: found[f] for f in folds}
    models = {}
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for fold, path in found.items():
        state = load_checkpoint(path)
        net = build_network(NetworkSpec.from_dict(state.get("network", info.network)))
        net.load_state_dict(state["model"])
        models[fold] = net.to(device, memory_format=fmt).eval()
    return info, models
