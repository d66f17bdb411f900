"""TODO docstring (RobustDeepLogic.predict)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.network.model import NetworkSpec, build_network
from RobustDeepLogic.training.runs import checkpoints, load_checkpoint, load_run


class FoldAverage(nn.Module):
    """The mean of several networks' outputs (``[N, C, H, W] -> [N, 1, H, W]``)."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.models[0](x)
        for m in self.models[1:]:
            total = total + m(x)
        return total / len(self.models)


def load_models(run_dir, *, which: str = "best", folds: Optional[Sequence[int]] = None,
                device: Union[str, torch.device] = "cpu", channels_last: bool = True):
    """``(RunInfo, {fold: network})`` of a run folder, in eval mode on ``device``."""
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
