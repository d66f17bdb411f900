"""Prediction of whole volumes with a trained run, back in native space and in SUV / HU.

Modules: :mod:`.ensemble` (a run's fold networks, loaded and averaged), :mod:`.volumes`
(``predict_image``, ``to_native`` back to native space), :mod:`.export` (TorchScript / ONNX).
"""

from RobustDeepLogic.predict.ensemble import FoldAverage, load_models
from RobustDeepLogic.predict.export import export_model
from RobustDeepLogic.predict.volumes import (
    TRANSFORM_DIRECTIONS,
    default_batch_size,
    inference_device,
    predict_image,
    to_native,
)

__all__ = [
    "FoldAverage",
    "load_models",
    "export_model",
    "TRANSFORM_DIRECTIONS",
    "inference_device",
    "default_batch_size",
    "predict_image",
    "to_native",
]
