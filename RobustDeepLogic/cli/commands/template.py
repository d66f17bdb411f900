"""``robustdeep template``: the template space (MNI grid at PET resolution, FDG and T1 templates).

``template write OUT``   writes the model FDG template, the T1 template, head and brain masks.
``template build COHORT OUT``   makes a study-specific FDG template from the cohort's FD images
(iterated rigid registration and averaging, anchored in MNI by the model template).
``template show``   prints the template grid.
"""

from __future__ import annotations

import json
from pathlib import Path

from RobustDeepLogic.cli.commands.register import add_rigid_options
from RobustDeepLogic.cli.frame import Command, Options, Result


def _write_arguments(o: Options) -> None:
    o.positional("out", help="output folder")
    o.option("--spacing", type=float, default=2.0, help="template grid spacing in mm")
    o.option("--fwhm", type=float, default=6.0, help="PET resolution of the FDG template (mm FWHM)")


def _write_run(config: dict, ctx) -> Result:
    from RobustDeepLogic.registration.template_grid import template_grid
    from RobustDeepLogic.registration.template_space import write_template_space

    with ctx.progress.stage("template", total=1) as st:
        paths = write_template_space(Path(config["out"]), spacing=float(config["spacing"]),
                                     fwhm_mm=float(config["fwhm"]))
        st.advance()
    grid = template_grid(float(config["spacing"]))
    return Result(outputs={k: str(v) for k, v in paths.items()},
                  figures={"spacing_mm": grid.spacing[0], "voxels": int(grid.size[0] * grid.size[1]
                                                                        * grid.size[2])},
                  summary=f"template space written to {config['out']} ({grid.describe()})")


def _build_arguments(o: Options) -> None:
    o.positional("cohort", help="native-space cohort folder with FD images")
    o.positional("out", help="output folder")
    o.option("--iterations", type=int, default=3, help="registration and averaging rounds")
    o.option("--spacing", type=float, default=2.0, help="template grid spacing in mm")
    o.option("--patients", nargs="+", default=None, help="only these patient ids")
    add_rigid_options(o)


def _build_run(config: dict, ctx) -> Result:

    from RobustDeepLogic.cohort.manifest import Cohort
    from RobustDeepLogic.core.files import atomic_write_text
    from RobustDeepLogic.registration.config import RigidConfig
    from RobustDeepLogic.registration.study_template import build_study_template
    from RobustDeepLogic.registration.template_space import write_template_space

    source = Cohort.load(config["cohort"])
    rigid = RigidConfig.from_mapping(config)
    if rigid.mask_processing_mode == "ROIAUTO":
        rigid.mask_processing_mode = "ROI"
    template, info = build_study_template(
        source, spacing=float(config["spacing"]), iterations=int(config["iterations"]),
        config=rigid, patients=config["patients"], progress=ctx.progress)
    out = Path(config["out"])
    paths = write_template_space(out, spacing=float(config["spacing"]), fdg=template)
    info["source"] = str(source.root)
    info["config"] = rigid.as_dict()
    atomic_write_text(out / "template_build.json", json.dumps(info, indent=1) + "\n")
    last = info["iterations"][-1]["relative_change"] if info["iterations"] else None
    return Result(outputs={**{k: str(v) for k, v in paths.items()},
                           "info": str(out / "template_build.json")},
                  figures={"patients": len(info["patients"]), "last_relative_change": last},
                  summary=f"study FDG template from {len(info['patients'])} patients: "
                  f"{paths['fdg']} (use: robustdeep register COHORT OUT --template {paths['fdg']})")


def _show_arguments(o: Options) -> None:
    o.option("--spacing", type=float, default=2.0, help="template grid spacing in mm")


def _show_run(config: dict, ctx) -> Result:
    from RobustDeepLogic.registration.template_grid import lps_to_mni, template_grid

    grid = template_grid(float(config["spacing"]))
    first = lps_to_mni(grid.origin)
    last = first + (grid.spacing[0] * (__import__("numpy").asarray(grid.size) - 1))
    text = (f"template grid: {grid.describe()}, MNI (RAS) x {first[0]:g}..{last[0]:g}, "
            f"y {first[1]:g}..{last[1]:g}, z {first[2]:g}..{last[2]:g} mm; ITK origin (LPS) "
            f"{grid.origin}, direction diag(-1, -1, 1)")
    return Result(figures={"size_x": grid.size[0], "size_y": grid.size[1], "size_z": grid.size[2],
                           "spacing_mm": grid.spacing[0]}, summary=text)


COMMAND = Command(
    "template",
    "the template space: write the MNI FDG/T1 templates, or build a study-specific FDG template",
    subcommands=[
        Command("write", "write the template space (FDG and T1 templates, head and brain masks)",
                _write_arguments, _write_run, output="out"),
        Command("build", "build a study-specific FDG template from a cohort's FD images",
                _build_arguments, _build_run, output="out"),
        Command("show", "print the template grid", _show_arguments, _show_run),
    ],
    description=__doc__,
)
