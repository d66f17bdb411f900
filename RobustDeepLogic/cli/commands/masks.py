"""``robustdeep masks list | write | preview``: the mask library (docs/masks.md).

``masks list`` names the presets, generators and structures; ``masks write`` writes a mask on the
template grid (the MNI152 2 mm grid, or that of ``--like``); ``masks preview`` draws it as a PNG. The
masks themselves are in :mod:`RobustDeepLogic.masks` (docs/method.md §5).
"""

from __future__ import annotations

from typing import Any, Dict

from RobustDeepLogic.cli.frame import Command, Options, Result, RunContext


def _grid(config: Dict[str, Any]):
    from RobustDeepLogic.io.volumes import Grid, read_volume
    from RobustDeepLogic.masks.geometry import MNI152_2MM_GRID

    if config.get("like"):
        return Grid.of(read_volume(config["like"]))
    return MNI152_2MM_GRID


def _list_run(config: Dict[str, Any], ctx: RunContext) -> Result:
    from RobustDeepLogic.masks.presets import GENERATORS, PRESETS
    from RobustDeepLogic.masks.regions import STRUCTURES

    lines = ["presets:"]
    lines += [f"  {p.name:13s} {p.description}" for p in PRESETS.values()]
    lines.append("generators (NAME:key=value;key=value):")
    lines += [f"  {name:13s} {params}" for name, params in GENERATORS.items()]
    lines.append("structures for 'regions': " + ", ".join(STRUCTURES))
    return Result(figures={"presets": len(PRESETS)}, summary="\n".join(lines))


def _write_args(o: Options) -> None:
    o.positional("spec", help="a preset, a generator spec, or a mask file to check and copy")
    o.positional("out", help="output mask volume (.nii.gz, .nrrd, ...)")
    o.option("--like", default=None, help="a template-space volume whose grid the mask is made on "
             "(default: the MNI152 2 mm grid)")


def _write_run(config: Dict[str, Any], ctx: RunContext) -> Result:
    from RobustDeepLogic.io.volumes import write_array
    from RobustDeepLogic.masks.presets import mask_from_spec

    grid = _grid(config)
    mask = mask_from_spec(config["spec"], grid)
    write_array(mask, grid, config["out"])
    return Result(outputs={"mask": str(config["out"])}, figures={"fraction": float(mask.mean())},
                  summary=f"mask {config['spec']} on {grid.describe()}, {100 * mask.mean():.1f} % ones")


def _preview_args(o: Options) -> None:
    o.positional("spec", help="a preset, a generator spec, or a mask file")
    o.positional("out", help="output PNG")
    o.option("--like", default=None, help="a template-space volume whose grid to use")
    o.option("--head", flag=True, default=True, help="shade outside a simple ellipsoid head")


def _preview_run(config: Dict[str, Any], ctx: RunContext) -> Result:
    from RobustDeepLogic.masks.files import save_preview
    from RobustDeepLogic.masks.geometry import ellipsoid_head
    from RobustDeepLogic.masks.presets import mask_from_spec

    grid = _grid(config)
    head = ellipsoid_head(grid) if config["head"] else None
    mask = mask_from_spec(config["spec"], grid, head=head)
    save_preview(mask, grid, config["out"], head=head, title=str(config["spec"])[:60])
    return Result(outputs={"preview": str(config["out"])})


COMMAND = Command(
    "masks",
    "list, write and preview blending masks",
    subcommands=[
        Command("list", "list mask presets, generators and named structures", None, _list_run),
        Command("write", "write a mask on the template grid to a file", _write_args, _write_run,
                output="out", output_is_file=True),
        Command("preview", "render a mask as a PNG (axial, coronal, sagittal)", _preview_args,
                _preview_run, output="out", output_is_file=True),
    ],
)
