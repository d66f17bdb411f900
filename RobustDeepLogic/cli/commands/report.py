"""``robustdeep report``: tables and figures of an evaluation, in the paper's form (HTML + Markdown).

The report is built by :func:`RobustDeepLogic.report.document.build_report`, with the paper's numbers
(docs/method.md §9) beside ours.
"""

from __future__ import annotations

from RobustDeepLogic.cli.frame import Command, Options, Result


def _arguments(o: Options) -> None:
    o.positional("run", help="evaluation folder (holding metrics.csv) or a run folder with evaluation/")
    o.option("--out", help="output folder (default: the evaluation folder)", metavar="DIR")
    o.option("--patient", help="patient shown in the image figures (default: the one with most scenarios)")
    o.option("--pairs", help="scenario pairs for t-tests, e.g. 'PU:PR,PM1:PM2,PR:PM2' "
             "(default: the paper's pairs that are present)")
    o.option("--title", default="RobustDeep evaluation report", help="report title")


def _run(config, ctx) -> Result:
    from RobustDeepLogic.evaluate.statistics import parse_pairs
    from RobustDeepLogic.report.document import build_report

    paths = build_report(config["run"], config.get("out"), patient=config.get("patient"),
                         pairs=parse_pairs(config.get("pairs")), title=config["title"], progress=ctx.progress)
    return Result(outputs={k: str(v) for k, v in paths.items()}, figures={},
                  summary=f"report written: {paths['html']}")


COMMAND = Command("report", "HTML and Markdown report of an evaluation (the paper's tables and figures)",
                  _arguments, _run, output="out",
                  description="Write report.html (self-contained) and report.md from an evaluation folder: "
                  "mean ± SD tables in the paper's form with its numbers beside ours, paired t-tests, "
                  "relative improvements, joint histograms, bias maps, metrics over epochs, provenance.")
