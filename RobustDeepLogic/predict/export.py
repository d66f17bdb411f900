"""Export of a run's fold-averaged network for use outside RobustDeep: TorchScript or ONNX.

:func:`export_model` writes the (fold-averaged, :class:`~RobustDeepLogic.predict.ensemble.FoldAverage`)
network as TorchScript (always available) or ONNX (when the ``onnx`` package is installed): input
float32 ``[N, C, H, W]`` scaled, output ``[N, 1, H, W]`` scaled; ``run.json`` is stored beside it
(TorchScript: also inside, as the extra file ``run.json``) for the scaling constants. Prediction of
volumes within RobustDeep is :mod:`RobustDeepLogic.predict.volumes`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import atomic_path, atomic_write_text
from RobustDeepLogic.predict.ensemble import FoldAverage, load_models


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------
def export_model(run_dir, out_path, *, fmt: Optional[str] = None, which: str = "best",
                 folds: Optional[Sequence[int]] = None, example_size: Tuple[int, int] = (112, 96)) -> Path:
    """Write the run's fold-averaged network as TorchScript (``.pt``/``.ts``) or ONNX (``.onnx``).

    The exported module maps scaled ``[N, C, H, W]`` float32 to scaled ``[N, 1, H, W]``; ``run.json``
    (scaling constants, task) is written beside it as ``<out>.run.json``, with the exported folds
    added as ``exported_folds``. Both files are written atomically.

    Parameters
    ----------
    run_dir : str or os.PathLike
        The run folder (``--out`` of ``robustdeep train``).
    out_path : str or os.PathLike
        The file to write.
    fmt : str, optional
        ``'torchscript'`` or ``'onnx'``; default from ``out_path``: ``'onnx'`` for a ``.onnx`` file,
        else ``'torchscript'``.
    which : str, optional
        ``'best'`` (default; a fold without ``best.pt`` gives its ``last.pt``) or ``'last'``.
    folds : sequence of int, optional
        The folds to average; None (default): every fold with a checkpoint.
    example_size : tuple of int, optional
        ``(H, W)`` of the random example input used for tracing (default ``(112, 96)``). The ONNX
        graph declares ``N``, ``H`` and ``W`` dynamic (input ``scaled_input``, output
        ``scaled_target``).

    Returns
    -------
    pathlib.Path
        ``out_path``.

    Raises
    ------
    InputError
        When ``fmt`` is unknown, ONNX is asked for and the ``onnx`` package is missing, or the run's
        networks cannot be loaded (:func:`~RobustDeepLogic.predict.ensemble.load_models`).
    """
    out_path = Path(out_path)
    fmt = fmt or ("onnx" if out_path.suffix.lower() == ".onnx" else "torchscript")
    info, models = load_models(run_dir, which=which, folds=folds, channels_last=False)
    module = FoldAverage(list(models.values())).eval()
    example = torch.rand(1, len(info.inputs), *example_size)
    meta = json.dumps({**info.to_json(), "exported_folds": sorted(models)}, indent=1, default=str)
    if fmt == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():  # deprecated in recent torch, still supported
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.trace(module, example)
            with atomic_path(out_path) as tmp:
                torch.jit.save(scripted, str(tmp), _extra_files={"run.json": meta})
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise InputError("ONNX export needs the onnx package", hint="pip install 'robustdeep[onnx]'") from None
        with atomic_path(out_path) as tmp:
            torch.onnx.export(module, (example,), str(tmp), input_names=["scaled_input"],
                              output_names=["scaled_target"], dynamo=False,
                              dynamic_axes={"scaled_input": {0: "n", 2: "h", 3: "w"},
                                            "scaled_target": {0: "n", 2: "h", 3: "w"}})
    else:
        raise InputError(f"unknown export format {fmt!r}", hint="torchscript or onnx")
    atomic_write_text(out_path.with_name(out_path.name + ".run.json"), meta + "\n")
    return out_path
