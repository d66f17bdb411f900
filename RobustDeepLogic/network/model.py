"""The translation network: a 2D dilated residual network of 20 convolutions (docs/method.md §7).

Layout (``C`` input channels, widths ``w1 / w2 / w3`` for the three dilation groups)::

    conv 1                       C  -> w1   3x3, dilation 1                      (linear)
    residual blocks 1-3          w1 -> w1   2 x [ReLU, 3x3 conv, dilation 1]      convs 2-7
    residual blocks 4-6          w1 -> w2   2 x [ReLU, 3x3 conv, dilation 2]      convs 8-13
    residual block 7             w2 -> w3   ReLU, conv d2 (w2); ReLU, conv d4 (w3) convs 14-15
    residual blocks 8-9          w3 -> w3   2 x [ReLU, 3x3 conv, dilation 4]      convs 16-19
    conv 20                      w3 -> 1    ReLU, 3x3 conv, dilation 4            (linear output)

That is 20 convolutions of 3x3, dilation 1 / 2 / 4 over convolutions 1-7 / 8-14 / 15-20, ReLU
activations, and a residual connection around every two convolutions (9 blocks). Block 7 straddles
the boundary between the dilation-2 and dilation-4 groups (its first convolution belongs to the
second group, its second to the third). The width of a convolution is the width of its dilation
group; where a block changes width, the shortcut is zero-padded in channels (no extra parameters).
Blocks are pre-activation (ReLU before each convolution, He et al. 2016), so the sum of a block is not
rectified and the output convolution is linear: a regression output can take any value (for example a
negative scaled value or an SUV above the scaling constant).

With one input channel and widths 16 / 32 / 64 the network has 240,993 parameters
(:func:`count_parameters`). It is fully convolutional: it accepts any slice size, and the output has
the size of the input (padding = dilation).

Relation to MONAI's ``HighResNet`` (Li et al., IPMI 2017): the same family (an initial convolution,
residual blocks with dilations 1, 2, 4, widths 16 / 32 / 64, zero-padded shortcuts), but MONAI's has
19 3x3 convolutions over 7 / 6 / 6 plus two 1x1 convolutions, BatchNorm before each activation, and a
final BatchNorm + ReLU on the output, so its regression output is batch-normalised and cannot be
negative. Ours follows the paper's count, has no normalisation layers (so inference does not depend on
batch statistics), and ends linear.

Inference over whole volumes is in :mod:`RobustDeepLogic.network.inference`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

#: Dilation of each of the 20 convolutions (docs/method.md §7: 7 x 1, 7 x 2, 6 x 4).
DILATIONS: Tuple[int, ...] = (1,) * 7 + (2,) * 7 + (4,) * 6

#: How far (pixels) an output pixel sees: the sum of the 3x3 convolutions' dilations (45). A crop with
#: this margin around the head gives the head's pixels exactly as the full slice does.
RECEPTIVE_RADIUS: int = sum(DILATIONS)

#: Index (0-based) of the first convolution of each dilation group.
GROUP_STARTS: Tuple[int, ...] = (0, 7, 14)


@dataclass(frozen=True)
class NetworkSpec:
    """Hyper-parameters of :class:`DilatedResNet2D`; stored in a run folder (``run.json``).

    Attributes
    ----------
    in_channels : int
        Input channels: the task's input modalities (default 1).
    out_channels : int
        Output channels (default 1: the target).
    widths : tuple of int
        Feature maps of the dilation-1, -2 and -4 groups (default ``(16, 32, 64)``).
    """

    in_channels: int = 1
    out_channels: int = 1
    widths: Tuple[int, int, int] = (16, 32, 64)

    def as_dict(self) -> Dict[str, Any]:
        """The specification as a JSON-ready dict, as stored in ``run.json`` and checkpoints.

        Returns
        -------
        dict
            ``in_channels``, ``out_channels``, ``widths`` (a list) and ``architecture``
            (``"dilated-resnet-2d-20"``).
        """
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["architecture"] = "dilated-resnet-2d-20"
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NetworkSpec":
        """Read a specification written by :meth:`as_dict`.

        Parameters
        ----------
        data : mapping
            ``in_channels``, ``out_channels``, ``widths``; a missing key takes its default, other keys
            (``architecture``) are ignored.

        Returns
        -------
        NetworkSpec
            The specification.
        """
        return cls(
            in_channels=int(data.get("in_channels", 1)),
            out_channels=int(data.get("out_channels", 1)),
            widths=tuple(int(w) for w in data.get("widths", (16, 32, 64))),  # type: ignore[arg-type]
        )


def _conv_widths(widths: Sequence[int]) -> List[int]:
    """Output width of convolutions 1..19 (the 20th has ``out_channels``)."""
    out = []
    for i in range(19):
        group = 0 if i < GROUP_STARTS[1] else 1 if i < GROUP_STARTS[2] else 2
        out.append(int(widths[group]))
    return out


class ResidualPair(nn.Module):
    """Two pre-activation 3x3 convolutions with a shortcut: ``x + conv_b(relu(conv_a(relu(x))))``.

    Input ``[N, c_in, H, W]``, output ``[N, c_out, H, W]`` with ``c_out >= c_in``; a wider output
    adds the shortcut to the first ``c_in`` channels (the zero-padded identity). Padding equals the
    dilation, so ``H, W`` are kept.

    Parameters
    ----------
    c_in : int
        Input channels.
    c_mid : int
        Output channels of the first convolution.
    c_out : int
        Output channels of the second convolution and of the block; at least ``c_in``.
    dilations : tuple of int
        Dilations of the first and the second convolution.

    Raises
    ------
    ValueError
        When ``c_out < c_in``.

    References
    ----------
    He K., Zhang X., Ren S., Sun J., "Identity mappings in deep residual networks", ECCV 2016
    (pre-activation blocks).
    """

    def __init__(self, c_in: int, c_mid: int, c_out: int, dilations: Tuple[int, int]) -> None:
        super().__init__()
        if c_out < c_in:
            raise ValueError("a residual block cannot narrow its width (zero-padded shortcut)")
        self.conv_a = nn.Conv2d(c_in, c_mid, 3, padding=dilations[0], dilation=dilations[0])
        self.conv_b = nn.Conv2d(c_mid, c_out, 3, padding=dilations[1], dilation=dilations[1])
        self.c_in = c_in
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Parameters
        ----------
        x : torch.Tensor
            ``[N, c_in, H, W]``.

        Returns
        -------
        torch.Tensor
            ``[N, c_out, H, W]``: the two convolutions plus the (zero-padded) shortcut.
        """
        y = self.conv_b(F.relu(self.conv_a(F.relu(x)), inplace=True))
        if self.c_out == self.c_in:
            return y + x
        return y + F.pad(x, (0, 0, 0, 0, 0, self.c_out - self.c_in))


class DilatedResNet2D(nn.Module):
    """The 20-convolution dilated residual network of docs/method.md §7 (see the module doc).

    Input ``[N, in_channels, H, W]`` in scaled units ([0, 1] by the cohort's fixed constants);
    output ``[N, out_channels, H, W]`` in the target's scaled units. Any ``H, W``. Weights start with
    torch's default initialisation (seed torch's generator for reproducible weights).

    Parameters
    ----------
    spec : NetworkSpec, optional
        Channels and widths; default ``NetworkSpec()`` (1 input, 1 output, widths 16 / 32 / 64).

    Raises
    ------
    ValueError
        When ``spec.widths`` is not three positive integers.

    References
    ----------
    Sanaat A. et al., "Robust-Deep", J Digit Imaging 35(3):469-481, 2022; docs/method.md §7.
    Li W. et al., "On the compactness, efficiency, and representation of 3D convolutional networks:
    brain parcellation as a pretext task", IPMI 2017 (HighResNet).
    """

    def __init__(self, spec: NetworkSpec = NetworkSpec()) -> None:
        super().__init__()
        if len(spec.widths) != 3 or min(spec.widths) < 1:
            raise ValueError(f"widths must be three positive integers, got {spec.widths}")
        self.spec = spec
        w = _conv_widths(spec.widths)
        self.head = nn.Conv2d(spec.in_channels, w[0], 3, padding=1, dilation=1)
        blocks = []
        for b in range(9):
            i, j = 1 + 2 * b, 2 + 2 * b  # 0-based indices of the block's two convolutions
            blocks.append(ResidualPair(w[i - 1], w[i], w[j], (DILATIONS[i], DILATIONS[j])))
        self.blocks = nn.Sequential(*blocks)
        self.tail = nn.Conv2d(w[18], spec.out_channels, 3, padding=DILATIONS[19], dilation=DILATIONS[19])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network.

        Parameters
        ----------
        x : torch.Tensor
            ``[N, in_channels, H, W]`` in scaled units.

        Returns
        -------
        torch.Tensor
            ``[N, out_channels, H, W]`` in the target's scaled units (linear output, not clipped).
        """
        return self.tail(F.relu(self.blocks(self.head(x))))


def build_network(spec: NetworkSpec | Mapping[str, Any] | None = None, **kwargs: Any) -> DilatedResNet2D:
    """Build the network for ``spec`` (a :class:`NetworkSpec`, its dict, or keyword arguments).

    Parameters
    ----------
    spec : NetworkSpec or mapping, optional
        The specification, or its :meth:`NetworkSpec.as_dict` form. None: build one from ``kwargs``.
    **kwargs
        Fields of :class:`NetworkSpec` (``in_channels``, ``out_channels``, ``widths`` as any
        sequence); used only when ``spec`` is None.

    Returns
    -------
    DilatedResNet2D
        A new network on the CPU, with freshly initialised weights.

    Raises
    ------
    ValueError
        When the widths are not three positive integers.
    """
    if spec is None:
        spec = NetworkSpec(**{k: (tuple(v) if k == "widths" else v) for k, v in kwargs.items()})
    elif not isinstance(spec, NetworkSpec):
        spec = NetworkSpec.from_dict(spec)
    return DilatedResNet2D(spec)


def count_parameters(model: nn.Module) -> int:
    """Count the trainable parameters of a model.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.

    Returns
    -------
    int
        Elements of the parameters that require gradients (240,993 for the default
        :class:`DilatedResNet2D`).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_convolutions(model: nn.Module) -> int:
    """Count the ``Conv2d`` layers of a model (20 for :class:`DilatedResNet2D`).

    Parameters
    ----------
    model : torch.nn.Module
        Any module; its sub-modules are searched.

    Returns
    -------
    int
        Number of ``torch.nn.Conv2d`` modules.
    """
    return sum(1 for m in model.modules() if isinstance(m, nn.Conv2d))


def receptive_field(dilations: Sequence[int] = DILATIONS) -> int:
    """Receptive field (pixels, one side to the other) of a chain of 3x3 convolutions.

    Parameters
    ----------
    dilations : sequence of int, optional
        Dilation of each convolution; default :data:`DILATIONS`.

    Returns
    -------
    int
        ``1 + 2 * sum(dilations)`` pixels (91 for :data:`DILATIONS`).
    """
    return 1 + sum(2 * d for d in dilations)
