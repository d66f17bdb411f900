"""``robustdeep demo``: the README's main job, the quick study on the bundled digital cohort.

The same as ``robustdeep reproduce --profile quick --out demo``: simulate 12 patients, register them to
MNI, synthesize with masks #1 and #2 from the training fold, train every arm of the four tasks with
reduced settings (listed in the report), predict the test patients back in native space, evaluate, and
write the report; then print the headline table and where the report is. About 20 minutes on 2 cores;
run it again to resume.
"""

from __future__ import annotations

from RobustDeepLogic.cli.commands.reproduce import add_profile_settings, run_study
from RobustDeepLogic.cli.frame import Command, Options, Result


def _arguments(o: Options) -> None:
    o.option("--out", default="demo", help="study folder")
    o.option("--seed", type=int, default=0, help="seed of the cohort, the split, the pairs and the weights")
    o.option("--device", default="auto", help="auto, cpu or cuda")
    o.option("--workers", type=int, default=0, help="processes for simulation and registration (0: one per core)")
    add_profile_settings(o)


def _run(config: dict, ctx) -> Result:
    return run_study({**config, "cohort": None, "tasks": None, "scenarios": None}, ctx, "quick")


COMMAND = Command("demo", "the quick study on the bundled digital cohort (the README's main job)",
                  _arguments, _run, output="out", description=__doc__,
                  epilog="profile settings: as 'robustdeep reproduce' (--set NAME=VALUE; see its --help)")
