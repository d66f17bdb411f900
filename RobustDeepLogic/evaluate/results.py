"""The metrics table on disk: ``metrics.csv`` written and read back.

:func:`write_metrics_csv` writes the rows of an evaluation with the columns of
:data:`~RobustDeepLogic.evaluate.cases.CSV_COLUMNS` (docs/evaluation.md); :func:`read_metrics_csv`
reads such a table back for the report. The module also converts values to plain JSON types for
``metrics.json`` and the report's provenance (private). The rows themselves are made by
:mod:`RobustDeepLogic.evaluate.evaluation`.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.core.files import (
    atomic_write_text,
)
from RobustDeepLogic.core.types import PathLike
from RobustDeepLogic.evaluate.cases import CSV_COLUMNS


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return str(value)


def write_metrics_csv(rows: Sequence[Mapping[str, Any]], path: PathLike) -> Path:
    """Write rows as a tidy CSV with :data:`~RobustDeepLogic.evaluate.cases.CSV_COLUMNS` (atomically).

    Parameters
    ----------
    rows : sequence of mapping
        Rows keyed by column name; a missing key gives an empty cell, keys outside the columns are
        left out. Floats are written exactly (``repr``), non-finite ones as ``nan``, ``inf``,
        ``-inf``; None as an empty cell.
    path : str or os.PathLike
        The CSV file; its folder is created if needed.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_format(row.get(c)) for c in CSV_COLUMNS])
    return atomic_write_text(path, buf.getvalue())


_NUMERIC = set(CSV_COLUMNS) - {"task", "scenario", "patient", "units", "unit", "modality", "region",
                               "mask_source", "reference", "prediction", "input", "epoch"}


def read_metrics_csv(path: PathLike) -> List[Dict[str, Any]]:
    """Read a metrics.csv back: numbers as floats, ``epoch`` as int or None, other columns as text.

    Columns outside :data:`~RobustDeepLogic.evaluate.cases.CSV_COLUMNS` are kept, as floats where
    they parse and as text otherwise. An empty numeric cell reads as NaN. A table without a ``units``,
    ``region`` or ``epoch`` column gets ``'scaled'``, ``'head'`` and None for it; other missing columns
    are absent from the rows.

    Parameters
    ----------
    path : str or os.PathLike
        The ``metrics.csv`` file.

    Returns
    -------
    list of dict
        One dict per row, keyed by column name.

    Raises
    ------
    InputError
        If the file is missing or lacks one of the columns ``task``, ``scenario``, ``patient``,
        ``rmse``, ``psnr``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("metrics.csv not found", file=path, hint="run 'robustdeep evaluate' first")
    text = path.read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"task", "scenario", "patient", "rmse", "psnr"} - set(reader.fieldnames or [])
    if missing:
        raise InputError(f"not a metrics table: missing column(s) {', '.join(sorted(missing))}", file=path)
    rows = []
    for raw in reader:
        row: Dict[str, Any] = {}
        for k, v in raw.items():
            if k is None:
                continue
            v = (v or "").strip()
            if k == "epoch":
                row[k] = int(float(v)) if v else None
            elif k in _NUMERIC or k not in CSV_COLUMNS:
                try:
                    row[k] = float(v) if v else float("nan")
                except ValueError:
                    row[k] = v
            else:
                row[k] = v
        row.setdefault("units", "scaled")
        row.setdefault("region", "head")
        row.setdefault("epoch", None)
        rows.append(row)
    return rows
