"""The study's report in the paper's form: tables and figures in HTML and Markdown.

Modules: :mod:`.data` (what the report reads: an evaluation folder, histories, provenance, the
paper's numbers), :mod:`.tables` (the tables of one task), :mod:`.figures` (the figures of one
task), :mod:`.document` (the sections and the HTML and Markdown files; ``robustdeep report``). The
package re-exports their public names. It reads what :mod:`RobustDeepLogic.evaluate` writes; see
docs/evaluation.md.
"""

from RobustDeepLogic.report.data import (
    HISTORY_DIR,
    HISTORY_METRICS,
    REPORT_FILES,
    REPORT_HTML,
    REPORT_MD,
    SCENARIO_ORDER,
    TASK_ORDER,
    TEST_METRICS,
    ReportData,
    final_rows,
    find_evaluation,
    load_histories,
    load_paper_results,
    load_report_data,
    read_history,
)
from RobustDeepLogic.report.document import Section, build_report, build_sections
from RobustDeepLogic.report.figures import (
    figure_bias_maps,
    figure_epochs,
    figure_history,
    figure_images,
    figure_joint_histograms,
)
from RobustDeepLogic.report.tables import (
    Table,
    table_fits,
    table_physical,
    table_regions,
    table_scaled,
    table_tests,
)

__all__ = [
    "REPORT_HTML",
    "REPORT_MD",
    "REPORT_FILES",
    "HISTORY_DIR",
    "SCENARIO_ORDER",
    "TASK_ORDER",
    "TEST_METRICS",
    "HISTORY_METRICS",
    "load_paper_results",
    "find_evaluation",
    "read_history",
    "load_histories",
    "final_rows",
    "ReportData",
    "load_report_data",
    "Section",
    "build_sections",
    "build_report",
    "figure_images",
    "figure_bias_maps",
    "figure_joint_histograms",
    "figure_history",
    "figure_epochs",
    "Table",
    "table_scaled",
    "table_physical",
    "table_fits",
    "table_tests",
    "table_regions",
]
