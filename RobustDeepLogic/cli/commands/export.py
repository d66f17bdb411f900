"""``robustdeep export``: a trained run's network as TorchScript or ONNX.

The fold networks of the run (or those of ``--fold``) are averaged into one model, with the run's
metadata beside it (``<file>.run.json``); see :func:`RobustDeepLogic.predict.export.export_model`.
"""

from __future__ import annotations

from RobustDeepLogic.cli.frame import Command, Options, Result


def _arguments(o: Options) -> None:
    o.positional("run", help="run folder of 'robustdeep train'")
    o.option("--out", default=None, help="output file: .pt / .ts (TorchScript) or .onnx (needs onnx)")
    o.option("--format", default=None, choices=["torchscript", "onnx"],
             help="export format (default: from the file ending)")
    o.option("--which", default="best", choices=["best", "last"], help="checkpoint of each fold")
    o.option("--fold", type=int, nargs="+", default=None, help="export only these folds (averaged)")


def _run(config: dict, ctx) -> Result:
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.predict.export import export_model

    if not config.get("out"):
        raise InputError("--out FILE is required")
    path = export_model(config["run"], config["out"], fmt=config["format"], which=config["which"],
                        folds=config["fold"])
    return Result(outputs={"model": str(path), "metadata": f"{path}.run.json"},
                  summary="exported: input [N, C, H, W] scaled by run.json's constants, output scaled")


COMMAND = Command("export", "export a trained network (TorchScript, or ONNX when installed)", _arguments,
                  _run, output="out", output_is_file=True)
