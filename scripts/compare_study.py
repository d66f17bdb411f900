#!/usr/bin/env python3
"""Compare two study folders (``robustdeep reproduce`` outputs) file by file, by content hash.

Used to prove that a refactoring changed nothing: run the same study before and after, then

    python scripts/compare_study.py STUDY_BEFORE STUDY_AFTER

Every file of either folder is compared. What legitimately differs between two runs is normalised
before hashing, and only that:

- log files (``*.log``) and the per-command resolved configuration are left out;
- in text files (JSON, CSV, YAML, Markdown, HTML), the folder's own absolute path is replaced by a
  placeholder, and timestamps, durations, host names and version strings are masked;
- in JSON files, keys that hold times (``seconds``, ``started``, ``created``, ...) are dropped;
- in CSV files, and in the tables of Markdown and HTML reports, columns that hold times are masked;
- DICOM files are compared without their UIDs, dates and times (new UIDs are made on every export);
- torch checkpoints (``.pt``) are compared by their tensors and plain values, not by bytes (the zip
  container records the archive's file names, which carry the folder name).

Every other file (NIfTI volumes, ITK transforms, PNG figures, NumPy arrays) must be byte-identical.
Exit status 0 when the folders match, 1 otherwise (each difference is printed).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import re
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

SKIP_SUFFIXES = {".log"}
TEXT_SUFFIXES = {".json", ".csv", ".yaml", ".yml", ".md", ".html", ".txt", ".tfm"}
TIME_KEYS = re.compile(r"(second|time|started|finished|created|date|elapsed|duration|host|python|"
                       r"platform|torch_version|threads|wall|per_s|_s$)", re.I)
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?")
YAML_TIME = re.compile(r"^(\s*([\w.-]+):\s*)(\S+)$", re.M)
DURATION = re.compile(r"\b\d+(\.\d+)?\s?(s|min|ms|h)\b")


def _mask_text(text: str, roots: Iterable[str]) -> str:
    for root in roots:
        text = text.replace(root, "<STUDY>")
    text = TIMESTAMP.sub("<TIME>", text)
    text = YAML_TIME.sub(lambda m: m.group(1) + ("<TIME>" if TIME_KEYS.search(m.group(2)) else m.group(3)), text)
    return DURATION.sub("<DURATION>", text)


def _drop_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_times(v) for k, v in value.items() if not TIME_KEYS.search(str(k))}
    if isinstance(value, list):
        return [_drop_times(v) for v in value]
    return value


def _checkpoint_digest(path: Path) -> str:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    h = hashlib.sha256()

    def visit(obj: Any, key: str) -> None:
        if isinstance(obj, torch.Tensor):
            h.update(key.encode())
            h.update(obj.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(obj, dict):
            for k in sorted(obj, key=str):
                if not TIME_KEYS.search(str(k)):
                    visit(obj[k], f"{key}/{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                visit(v, f"{key}[{i}]")
        else:
            h.update(f"{key}={obj!r}".encode())

    visit(state, "")
    return h.hexdigest()


def _md_tables(text: str) -> str:
    """Markdown pipe tables with their time columns (e.g. ``seconds / fold``) masked."""
    out, masked = [], set()
    for line in text.splitlines():
        if not line.startswith("|"):
            masked = set()
            out.append(line)
            continue
        cells = line.split("|")
        if not masked and not set(line) <= set("|-: "):
            masked = {i for i, c in enumerate(cells) if TIME_KEYS.search(c.strip())} or {-1}
        elif masked:
            cells = ["<TIME>" if i in masked else c for i, c in enumerate(cells)]
        out.append("|".join(cells))
    return "\n".join(out)


def _html_tables(text: str) -> str:
    """HTML tables with their time columns masked."""
    def table(match: "re.Match[str]") -> str:
        rows = re.findall(r"<tr>.*?</tr>", match.group(0), flags=re.S)
        if not rows:
            return match.group(0)
        head = re.findall(r"<th[^>]*>(.*?)</th>", rows[0], flags=re.S)
        masked = {i for i, c in enumerate(head) if TIME_KEYS.search(c)}
        body = []
        for row in rows[1:]:
            cells = re.findall(r"<td[^>]*>.*?</td>", row, flags=re.S)
            body.append("".join("<td>TIME</td>" if i in masked else c for i, c in enumerate(cells)))
        return rows[0] + "".join(body)

    return re.sub(r"<table.*?</table>", table, text, flags=re.S)


def _csv_text(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return text
    keep = [i for i, name in enumerate(rows[0]) if not TIME_KEYS.search(name)]
    return "\n".join(",".join(row[i] for i in keep if i < len(row)) for row in rows)


def _dicom_digest(path: Path) -> str:
    import pydicom

    ds = pydicom.dcmread(path)
    h = hashlib.sha256()
    for elem in ds.iterall():
        if elem.VR in ("UI", "DA", "TM", "DT"):
            continue
        h.update(f"{elem.tag}={elem.value!r}".encode())
    return h.hexdigest()


def digest(path: Path, roots: Iterable[str]) -> Optional[str]:
    """A content hash of ``path`` with run-specific parts masked; ``None`` for files not compared."""
    if path.suffix in SKIP_SUFFIXES or path.name.endswith(".config.yaml"):
        return None
    if path.suffix == ".pt":
        return _checkpoint_digest(path)
    if path.suffix == ".dcm":
        return _dicom_digest(path)
    data = path.read_bytes()
    if path.suffix in TEXT_SUFFIXES:
        text = _mask_text(data.decode("utf-8", errors="replace"), roots)
        if path.suffix == ".csv":
            text = _csv_text(text)
        if path.suffix == ".md":
            text = _md_tables(text)
        if path.suffix == ".html":
            text = _html_tables(text)
        if path.suffix == ".json":
            try:
                text = json.dumps(_drop_times(json.loads(text)), sort_keys=True)
            except json.JSONDecodeError:
                pass
        data = text.encode()
    return hashlib.sha256(data).hexdigest()


def tree_digests(folder: Path, roots: Iterable[str]) -> Dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            d = digest(path, roots)
            if d is not None:
                out[path.relative_to(folder).as_posix()] = d
    return out


def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args(argv)
    roots = [str(args.before.resolve()), str(args.after.resolve())]
    a = tree_digests(args.before, roots)
    b = tree_digests(args.after, roots)
    differ = 0
    for rel in sorted(set(a) | set(b)):
        if rel not in a or rel not in b:
            print(f"only in {'after' if rel not in a else 'before'}: {rel}")
            differ += 1
        elif a[rel] != b[rel]:
            print(f"differs: {rel}")
            differ += 1
    print(f"{len(set(a) & set(b))} files compared, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
