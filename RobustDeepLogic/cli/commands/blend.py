"""``robustdeep blend A B MASK OUT``: blend two registered volumes under a mask (docs/method.md §4).

Laplacian-pyramid blending of A and B with ``--levels`` levels (mask 1 takes A), or the naive blend
``mask * A + (1 - mask) * B`` (``--naive``); the engine's functions are in
:mod:`RobustDeepLogic.blending`, the masks in :mod:`RobustDeepLogic.masks`. ``robustdeep synthesize``
makes the synthetic subjects of a whole cohort.
"""

from __future__ import annotations

import time
from typing import Any, Dict

from RobustDeepLogic.cli.frame import Command, Options, Result, RunContext


def _arguments(o: Options) -> None:
    o.positional("a", help="parent 1 (mask 1 takes it): a volume on the template grid")
    o.positional("b", help="parent 2: a volume on the same grid as A")
    o.positional("mask", help="mask: a file (label volume or .seg.nrrd, FILE#label=N), a preset "
                 "(simple, complex, ...) or a generator spec (sphere:centre=0,-20,10;radius=30)")
    o.positional("out", help="output volume (.nii.gz, .nrrd, ...); it gets A's geometry")
    o.option("--levels", type=int, default=4, help="pyramid levels (0 = naive blend)")
    o.option("--naive", flag=True, default=False,
             help="the naive baseline mask*A + (1-mask)*B instead of Laplacian blending")


def _run(config: Dict[str, Any], ctx: RunContext) -> Result:
    from RobustDeepLogic.blending.baselines import naive_blend
    from RobustDeepLogic.blending.blend import laplacian_blend
    from RobustDeepLogic.core.errors import InputError
    from RobustDeepLogic.io.volumes import read_array, write_array
    from RobustDeepLogic.masks.presets import mask_from_spec

    with ctx.progress.stage("blend", total=1) as stage:
        a, grid = read_array(config["a"])
        b, grid_b = read_array(config["b"])
        if not grid_b.matches(grid):
            raise InputError(
                f"B is not on A's grid (B: {grid_b.describe()}, A: {grid.describe()})",
                file=config["b"], hint="blend registered volumes (same template grid)",
            )
        mask = mask_from_spec(str(config["mask"]), grid)
        t0 = time.perf_counter()
        if config["naive"]:
            out = naive_blend(a, b, mask)
        else:
            out = laplacian_blend(a, b, mask, int(config["levels"]))
        seconds = time.perf_counter() - t0
        write_array(out, grid, config["out"])
        stage.advance()
    method = "naive" if config["naive"] else f"Laplacian, {config['levels']} levels"
    return Result(
        outputs={"blend": str(config["out"])},
        figures={"seconds": round(seconds, 4), "mask_fraction": float(mask.mean())},
        summary=f"blended ({method}) in {seconds:.2f} s",
    )


COMMAND = Command(
    "blend",
    "blend two volumes under a mask (Laplacian pyramid, or naive)",
    _arguments,
    _run,
    output="out",
    output_is_file=True,
)
