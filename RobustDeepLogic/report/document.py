"""The report of an evaluation: tables and figures in the paper's form, as HTML and Markdown.

:func:`build_report` reads an evaluation folder (written by
:func:`RobustDeepLogic.evaluate.evaluation.evaluate_cases`: ``metrics.csv``, ``metrics.json``,
``slices/``) and, when present, the training stage's per-epoch validation curves
``history/<task>/<scenario>.csv`` and a run-level ``provenance.json`` (or ``.yaml``); see
docs/evaluation.md. It writes ``report.html`` (self-contained: images embedded as base64 PNG) and
``report.md`` (images in ``report_files/``).

Contents, per task (:func:`build_sections`): the paper's Tables 2 to 5 (mean +- SD over patients of
RMSE, SSIM, PSNR in the scaled units, with the published numbers beside ours), the same in physical
units (SUV, HU), joint-histogram fits (slope, R^2), paired t-tests and relative improvements between
scenarios; figures like the paper's Figs. 2 to 9 (reference, input and each scenario's prediction;
relative-error maps on +-10 %; joint histograms with fits), and Fig. 10 (metrics over epochs); then
provenance. The tables are made in :mod:`RobustDeepLogic.report.tables`, the figures in
:mod:`RobustDeepLogic.report.figures`; this module renders them.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from RobustDeepLogic.core.config import plain_value
from RobustDeepLogic.core.files import atomic_write_bytes, atomic_write_text
from RobustDeepLogic.core.progress import Progress
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.evaluate.figures import (
    BIAS_WINDOW,
    figure_png_bytes,
)
from RobustDeepLogic.report.data import (
    REPORT_FILES,
    REPORT_HTML,
    REPORT_MD,
    ReportData,
    load_report_data,
)
from RobustDeepLogic.report.figures import (
    _case_slices,
    figure_bias_maps,
    figure_epochs,
    figure_history,
    figure_images,
    figure_joint_histograms,
)
from RobustDeepLogic.report.tables import (
    Table,
    _task_label,
    table_fits,
    table_physical,
    table_regions,
    table_scaled,
    table_tests,
)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------
@dataclass
class Section:
    """One section of the report: a heading, a paragraph, tables and figures, in that order.

    Attributes
    ----------
    title : str
        The heading.
    tables : list of Table
        :class:`~RobustDeepLogic.report.tables.Table` objects, in order.
    figures : list of tuple
        ``(id, caption, png)``: HTML element id and file name stem, caption text, PNG bytes.
    text : str
        A paragraph of plain text before the tables; empty for none.
    """
    title: str
    tables: List[Table] = field(default_factory=list)
    figures: List[Tuple[str, str, bytes]] = field(default_factory=list)  # (id, caption, png)
    text: str = ""


def _html_table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in t.rows)
    note = f"<p class='note'>{html.escape(t.note)}</p>" if t.note else ""
    return (f"<h3>{html.escape(t.title)}</h3><table id='{t.id}'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{note}")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(t: Table) -> str:
    """A report table as Markdown: its title as a heading, a pipe table, and its note in italics.

    Parameters
    ----------
    t : Table
        The table (title, header, rows, note).

    Returns
    -------
    str
        Markdown text ending in a newline; cells with ``|`` are escaped.
    """
    lines = [f"### {t.title}", "", "| " + " | ".join(_md_escape(h) for h in t.header) + " |",
             "|" + "|".join("---" for _ in t.header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in t.rows]
    if t.note:
        lines += ["", f"*{t.note}*"]
    return "\n".join(lines) + "\n"


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
.note { font-size: 0.85em; color: #555; max-width: 60em; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #444; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
"""


def _provenance_text(data: ReportData) -> str:
    prov: Dict[str, Any] = {"evaluation folder": str(data.eval_dir)}
    if data.evaluation:
        prov["evaluation"] = {k: data.evaluation.get(k) for k in ("format", "version", "options", "provenance",
                                                                  "config") if k in data.evaluation}
    if data.run_provenance:
        prov["run"] = data.run_provenance
    configs = sorted(p.name for p in data.eval_dir.glob("robustdeep-*.config.yaml"))
    if configs:
        prov["config files"] = configs
    if data.history:
        prov["history"] = {t: sorted(v) for t, v in data.history.items()}
    prov["patients"] = {t: sorted({r["patient"] for r in data.final if r["task"] == t}) for t in data.tasks}
    return yaml.safe_dump(plain_value(prov, nonfinite=True), sort_keys=False, default_flow_style=False,
                          allow_unicode=True)


def build_sections(data: ReportData, patient: Optional[str] = None,
                   pairs: Optional[Sequence[Tuple[str, str]]] = None,
                   progress: Optional[Progress] = None) -> List[Section]:
    """The report's sections, one per task: its tables and figures.

    Parameters
    ----------
    data : ReportData
        The report's data (:func:`RobustDeepLogic.report.data.load_report_data`).
    patient : str, optional
        The patient shown in image figures; None (or a patient without slices) shows the one with the
        most scenarios.
    pairs : sequence of tuple of str, optional
        Scenario pairs for the t-tests (see :func:`RobustDeepLogic.report.tables.table_tests`).
    progress : Progress, optional
        Reports one step per task (stage ``report``); None is silent.

    Returns
    -------
    list of Section
        In the order of ``data.tasks``.
    """
    progress = progress or Progress()
    sections = []
    with progress.stage("report", total=len(data.tasks)) as st:
        for task in data.tasks:
            sec = Section(f"{_task_label(data, task)} ({task})")
            sec.tables += [table_scaled(data, task), table_physical(data, task), table_fits(data, task),
                           table_tests(data, task, pairs)]
            regions = table_regions(data, task)
            if regions is not None:
                sec.tables.append(regions)
            shown, slices = _case_slices(data, task, patient)
            if slices:
                sec.figures.append((f"fig-{task}-images", f"Reference, input and predictions of patient {shown} "
                                    "(the paper's Figs. 2-9 form).",
                                    figure_png_bytes(figure_images(data, task, shown, slices))))
                sec.figures.append((f"fig-{task}-bias", f"Relative error (P - R) / R of patient {shown}, "
                                    f"colour scale ±{100 * BIAS_WINDOW:.0f} %.",
                                    figure_png_bytes(figure_bias_maps(data, task, shown, slices))))
            fig = figure_joint_histograms(data, task)
            if fig is not None:
                sec.figures.append((f"fig-{task}-jointhist", "Joint histograms of reference against predicted "
                                    "voxels (all patients, head mask) with the identity and the pooled "
                                    "least-squares line.", figure_png_bytes(fig)))
            fig = figure_history(data, task)
            if fig is not None:
                sec.figures.append((f"fig-{task}-history", "Validation metrics after each epoch (the paper's "
                                    "Fig. 10: robustness over epochs).", figure_png_bytes(fig)))
            fig = figure_epochs(data, task)
            if fig is not None:
                sec.figures.append((f"fig-{task}-epochs", "Test metrics of per-epoch predictions.",
                                    figure_png_bytes(fig)))
            sections.append(sec)
            st.advance(message=task)
    return sections


def build_report(
    run: PathLike,
    out_dir: Optional[PathLike] = None,
    *,
    patient: Optional[str] = None,
    pairs: Optional[Sequence[Tuple[str, str]]] = None,
    title: str = "RobustDeep evaluation report",
    preface: Sequence[Section] = (),
    progress: Optional[Progress] = None,
) -> Dict[str, Path]:
    """Write ``report.html`` and ``report.md`` (+ ``report_files/*.png``) for an evaluation folder.

    Parameters
    ----------
    run : str or os.PathLike
        A folder with ``metrics.csv`` (or ``evaluation/metrics.csv``).
    out_dir : str or os.PathLike, optional
        Where the report goes (default: the evaluation folder); created if needed.
    patient : str, optional
        The patient shown in image figures (default: the one with the most scenarios).
    pairs : sequence of tuple of str, optional
        Scenario pairs for t-tests (default: those of
        :data:`RobustDeepLogic.evaluate.statistics.DEFAULT_PAIRS` that are present).
    title : str, optional
        Title of both pages.
    preface : sequence of Section, optional
        Sections placed before the per-task ones (e.g. a study's design and headline).
    progress : Progress, optional
        Reports the per-task step of :func:`build_sections`; None is silent.

    Returns
    -------
    dict of str to pathlib.Path
        ``{"html": report.html, "markdown": report.md, "files": report_files folder}`` (the folder
        is created only when there is a figure).

    Raises
    ------
    InputError
        If the folder holds no valid ``metrics.csv`` (see
        :func:`RobustDeepLogic.report.data.load_report_data`).
    """
    data = load_report_data(run)
    out = Path(out_dir) if out_dir is not None else data.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    sections = list(preface) + build_sections(data, patient, pairs, progress)
    provenance = _provenance_text(data)
    intro = ("Metrics over the head mask of every test patient; RMSE and PSNR in the scaled [0, 1] units "
             "unless stated. Two SSIMs are reported and labelled: the paper's single global statistic "
             "and the standard windowed SSIM. The paper's numbers (clinical data; "
             f"{data.paper.get('source', '')}) are shown beside ours for reference; our data differ.")
    # HTML
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"]
    md = [f"# {title}", "", intro, ""]
    files_dir = out / REPORT_FILES
    for sec in sections:
        parts.append(f"<h2>{html.escape(sec.title)}</h2>")
        md += [f"## {sec.title}", ""]
        if sec.text:
            parts.append(f"<p>{html.escape(sec.text)}</p>")
            md += [sec.text, ""]
        for t in sec.tables:
            parts.append(_html_table(t))
            md.append(markdown_table(t))
        for fid, caption, png in sec.figures:
            b64 = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure id='{fid}'><img alt='{html.escape(fid)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
            atomic_write_bytes(files_dir / f"{fid}.png", png)
            md += [f"![{fid}]({REPORT_FILES}/{fid}.png)", "", f"*{caption}*", ""]
    parts.append(f"<h2>Provenance</h2><pre id='provenance'>{html.escape(provenance)}</pre></body></html>")
    md += ["## Provenance", "", "```yaml", provenance.rstrip(), "```", ""]
    html_path = atomic_write_text(out / REPORT_HTML, "\n".join(parts) + "\n")
    md_path = atomic_write_text(out / REPORT_MD, "\n".join(md))
    return {"html": html_path, "markdown": md_path, "files": files_dir}
