"""Prediction with a trained run: whole volumes, back to physical units and to native space.

:func:`predict_image` takes the task's input volumes (SimpleITK images, physical units: SUV, HU, MR
a.u.), scales them with the run's fixed constants, applies the fold networks slice by slice (in
batches), averages the folds' predictions (optional), and returns the target in its physical unit
(inverse of the target's scaling) on the reference grid (the first input's, unless another is given;
inputs on other grids are resampled onto it with the header geometry, as in training).

:func:`to_native` maps a prediction made in template space back to the patient's native grid with the
rigid transform of the registration stage. Convention assumed (ITK's, and what SimpleITK's
``ImageRegistrationMethod`` with fixed = template, moving = native image returns, and what BRAINSFit
writes): the transform file maps points of the template (fixed) space to points of the native
(moving) space, i.e. it is the transform that ``sitk.Resample(native_image, template_grid,
transform)`` uses to bring a native image into template space. Going back therefore resamples with its
inverse. ``direction="forward"`` declares the opposite file (native points -> template points).

:func:`export_model` writes the (fold-averaged) network as TorchScript (always available) or ONNX
(when the ``onnx`` package is installed): input float32 ``[N, C, H, W]`` scaled, output ``[N, 1, H,
W]`` scaled; ``run.json`` is stored beside it (TorchScript: also inside, as the extra file
``run.json``) for the scaling constants.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn as nn

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.data.sources import resample_onto
from RobustDeepLogic.io.headmask import head_mask
from RobustDeepLogic.io.volumes import Grid, array_from_image, read_volume
from RobustDeepLogic.network.inference import predict_array

TRANSFORM_DIRECTIONS = ("resampling", "forward")


def _read_inputs(paths: Sequence[Union[str, Path]], patient: Optional[str] = None) -> List[sitk.Image]:
    return [read_volume(p, patient=patient, dtype=np.float32) for p in paths]


def inference_device(name: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``; a missing GPU is an InputError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA is not available here", hint="use --device cpu")
    return dev


def default_batch_size(device: Union[str, torch.device]) -> int:
    """Slices per inference batch: 1 on a CPU (larger batches spill out of cache and run slower per
    slice; docs/network.md), 16 on a GPU."""
    return 16 if torch.device(device).type == "cuda" else 1


def predict_image(
    info,
    models: Dict[int, nn.Module],
    images: Sequence[sitk.Image],
    *,
    reference: Optional[sitk.Image] = None,
    average: bool = True,
    batch_size: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    amp: str = "auto",
    channels_last: bool = True,
    crop_head: bool = True,
    patient: Optional[str] = None,
    progress: Optional[Progress] = None,
) -> sitk.Image:
    """The task's target predicted from ``images`` (one per task input, in order), in physical units.

    Parameters
    ----------
    info, models:
        From :func:`load_models`.
    images:
        Input volumes in physical units, one per ``info.inputs``.
    reference:
        Output grid (default: the first input's); inputs on other grids are resampled onto it.
    average:
        Average all fold networks; else the first fold's alone.
    batch_size:
        Axial slices per batch (default :func:`default_batch_size`).
    crop_head:
        Predict only the head slices, each batch of slices in its head box + the network's receptive
        radius (exactly what full slices give the head); elsewhere the output is the target's
        background (scaled 0: 0 SUV, -1000 HU).

    Returns
    -------
    A float32 SimpleITK image on the reference grid, in the target's unit (``info.scaling``).
    """
    progress = progress or Progress()
    if len(images) != len(info.inputs):
        raise InputError(
            f"task {info.task['name']} takes {len(info.inputs)} input(s) ({', '.join(info.inputs)}), "
            f"got {len(images)}", patient=patient, hint="give one volume per input, in that order")
    reference = reference if reference is not None else images[0]
    grid = Grid.of(reference)
    channels = []
    for modality, image in zip(info.inputs, images):
        scaling = info.scaling_of(modality)
        if not Grid.of(image).matches(grid):
            image = resample_onto(image, reference, scaling.to_physical(0.0))
        channels.append(np.asarray(scaling.to_scaled(array_from_image(image)), np.float32))
    stack = np.stack(channels)
    head = None
    if crop_head:
        head = head_mask(channels)
        if not head.any():
            head = None
    chosen = list(models.values()) if average else [next(iter(models.values()))]
    batch = batch_size or default_batch_size(device)
    total = np.zeros(stack.shape[1:], np.float32)
    with progress.stage("predict", total=len(chosen), message=patient or "") as st:
        for net in chosen:
            total += predict_array(net, stack, batch_size=batch, device=device, amp=amp,
                                   channels_last=channels_last, head=head)
            st.advance()
    scaled = total / len(chosen)
    target = info.scaling_of(info.target)
    # outside the predicted crops the scaled value is 0: the target's background (0 SUV, -1000 HU)
    physical = np.asarray(target.to_physical(scaled), np.float32)
    out = sitk.GetImageFromArray(physical)
    out.CopyInformation(reference)
    return out


def to_native(image: sitk.Image, native_reference: sitk.Image, transform: sitk.Transform, *,
              direction: str = "resampling", default_value: float = 0.0) -> sitk.Image:
    """Resample a template-space ``image`` onto ``native_reference``'s grid (linear).

    ``direction='resampling'``: ``transform`` maps template points to native points (the file the
    registration stage writes; see the module doc), so its inverse is used. ``'forward'``: it maps
    native points to template points and is used as it is.
    """
    if direction not in TRANSFORM_DIRECTIONS:
        raise InputError(f"transform direction must be one of {TRANSFORM_DIRECTIONS}, got {direction!r}")
    if direction == "resampling":
        try:
            transform = transform.GetInverse()
        except RuntimeError:
            raise InputError("the transform cannot be inverted",
                             hint="give a rigid or affine transform, or --transform-direction forward") from None
    return sitk.Resample(image, native_reference, transform, sitk.sitkLinear, float(default_value),
                         sitk.sitkFloat32)
