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

The fold networks come from :func:`~RobustDeepLogic.predict.ensemble.load_models`; exporting them
(TorchScript, ONNX) is :mod:`RobustDeepLogic.predict.export`.
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

#: Values of :func:`to_native`'s ``direction``: what the transform file maps (see the module doc).
TRANSFORM_DIRECTIONS = ("resampling", "forward")


def _read_inputs(paths: Sequence[Union[str, Path]], patient: Optional[str] = None) -> List[sitk.Image]:
    return [read_volume(p, patient=patient, dtype=np.float32) for p in paths]


def inference_device(name: str) -> torch.device:
    """The torch device for a ``--device`` name; a missing GPU is an InputError.

    Parameters
    ----------
    name : str
        ``'auto'`` (a GPU when there is one, else the CPU), ``'cpu'``, ``'cuda'`` or ``'cuda:N'``.

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    InputError
        When a CUDA device is asked for and CUDA is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA is not available here", hint="use --device cpu")
    return dev


def default_batch_size(device: Union[str, torch.device]) -> int:
    """Slices per inference batch: 1 on a CPU, 16 on a GPU.

    On a CPU larger batches spill out of cache and run slower per slice (docs/network.md).

    Parameters
    ----------
    device : str or torch.device
        The inference device.

    Returns
    -------
    int
        16 for a CUDA device, else 1.
    """
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
    info : RobustDeepLogic.training.runs.RunInfo
        The run's description, from :func:`~RobustDeepLogic.predict.ensemble.load_models`.
    models : dict of int to torch.nn.Module
        Fold number to network, from :func:`~RobustDeepLogic.predict.ensemble.load_models` (on
        ``device``).
    images : sequence of SimpleITK.Image
        Input volumes in physical units (SUV, HU, MR a.u.), one per ``info.inputs``, in that order.
    reference : SimpleITK.Image, optional
        Output grid (default: the first input's); inputs on other grids are resampled onto it with
        the header geometry (:func:`~RobustDeepLogic.data.sources.resample_onto`), as in training.
    average : bool, optional
        Average all fold networks (default); else the first network of ``models`` alone.
    batch_size : int, optional
        Axial slices per batch (default :func:`default_batch_size`).
    device : str or torch.device, optional
        Where the networks run (default ``'cpu'``).
    amp : str, optional
        Mixed precision (:func:`~RobustDeepLogic.network.inference.autocast_dtype`; default ``'auto'``:
        none on the CPU).
    channels_last : bool, optional
        Channels-last memory format for the batches (default True).
    crop_head : bool, optional
        Predict only the head slices, each batch of slices in its head box + the network's receptive
        radius (exactly what full slices give the head); elsewhere the output is the target's
        background (scaled 0: 0 SUV, -1000 HU). Default True; a volume with no head voxels is predicted
        whole.
    patient : str, optional
        Patient id, named in errors and in the progress message.
    progress : RobustDeepLogic.core.progress.Progress, optional
        Reports the stage ``"predict"``, one step per fold network.

    Returns
    -------
    SimpleITK.Image
        float32 image on the reference grid, in the target's physical unit (the inverse of its
        scaling in ``info.scaling``).

    Raises
    ------
    InputError
        When the number of images differs from the number of the task's inputs.
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

    Parameters
    ----------
    image : SimpleITK.Image
        A volume in template (MNI) space, e.g. a prediction, in physical units.
    native_reference : SimpleITK.Image
        Gives the output grid: an image of the patient in native space (its voxels are not used).
    transform : SimpleITK.Transform
        The patient's registration transform, e.g. read with
        :func:`~RobustDeepLogic.io.transforms.read_transform`.
    direction : str, optional
        One of :data:`TRANSFORM_DIRECTIONS`: ``'resampling'`` (default) or ``'forward'``.
    default_value : float, optional
        Value of output voxels that fall outside ``image``, in its physical units (e.g. 0 SUV,
        -1000 HU for CT).

    Returns
    -------
    SimpleITK.Image
        float32 image on ``native_reference``'s grid.

    Raises
    ------
    InputError
        When ``direction`` is not one of :data:`TRANSFORM_DIRECTIONS`, or the transform cannot be
        inverted.
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
