#!/usr/bin/env python3
"""Check numpydoc docstrings of public functions, classes and methods.

    python scripts/check_docstrings.py [PATH ...]      (default: RobustDeepLogic)

Rules, for every public (not underscore) module-level function and class, and every public method of a
public class, in the given files or folders:

- a docstring, with a one-line summary;
- a function or method that takes arguments (``self`` / ``cls`` aside) has a ``Parameters`` section
  that names each of them (``*args`` / ``**kwargs`` as ``*args`` / ``**kwargs``); a class documents its
  constructor's arguments in its own docstring (numpydoc style), under ``Parameters`` or, for a
  dataclass, ``Attributes``;
- a function whose return annotation is not ``None`` has a ``Returns`` (or ``Yields``) section.

Every module has a module docstring. Properties, ``@overload`` stubs and methods that override a
documented protocol (``__call__`` aside, dunder methods are skipped) need only a summary. Prints each
problem as ``file:line name: problem`` and exits 1 when there is any.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Iterable, Iterator, List, Optional

SECTION = re.compile(r"^\s*(Parameters|Returns|Yields|Attributes|Raises|Other Parameters)\s*\n\s*-{3,}",
                     re.M)


def _sections(doc: str) -> dict:
    """The numpydoc sections of ``doc``: ``{title: body}``."""
    found = list(SECTION.finditer(doc))
    out = {}
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(doc)
        out[m.group(1)] = doc[m.end():end]
    return out


def _documented_names(body: str) -> set:
    names = set()
    for line in body.splitlines():
        m = re.match(r"^\s{0,8}(\*{0,2}[A-Za-z_][\w]*(?:\s*,\s*\*{0,2}[A-Za-z_][\w]*)*)\s*(:|$)", line)
        if m and not line.startswith(" " * 9):
            names.update(n.strip() for n in m.group(1).split(","))
    return names


def _arguments(fn: ast.FunctionDef, method: bool) -> List[str]:
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    if method and names and names[0] in ("self", "cls"):
        names = names[1:]
    if a.vararg:
        names.append("*" + a.vararg.arg)
    if a.kwarg:
        names.append("**" + a.kwarg.arg)
    return names


def _decorators(node) -> set:
    out = set()
    for d in node.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        out.add(d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", ""))
    return out


def _check_function(fn, method: bool, where: str) -> Iterator[str]:
    doc = ast.get_docstring(fn)
    if not doc:
        yield f"{where}: no docstring"
        return
    decorators = _decorators(fn)
    if decorators & {"property", "setter", "overload", "cached_property"}:
        return
    sections = _sections(doc)
    args = _arguments(fn, method)
    if args:
        body = sections.get("Parameters", "") + sections.get("Other Parameters", "")
        if not body:
            yield f"{where}: no Parameters section"
        else:
            documented = _documented_names(body)
            stripped = {n.lstrip("*") for n in documented}
            missing = [n for n in args if n not in documented and n.lstrip("*") not in stripped]
            if missing:
                yield f"{where}: Parameters lacks {', '.join(missing)}"
    returns = fn.returns
    if returns is not None and not (isinstance(returns, ast.Constant) and returns.value is None) \
            and "Returns" not in sections and "Yields" not in sections:
        yield f"{where}: no Returns section"


def _check_class(cls: ast.ClassDef, where: str) -> Iterator[str]:
    doc = ast.get_docstring(cls)
    if not doc:
        yield f"{where}: no docstring"
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
    if doc and init is not None and _arguments(init, True):
        sections = _sections(doc)
        body = sections.get("Parameters", "") + sections.get("Attributes", "") \
            + sections.get("Other Parameters", "")
        documented = {n.lstrip("*") for n in _documented_names(body)}
        missing = [n for n in _arguments(init, True) if n.lstrip("*") not in documented]
        if missing:
            yield f"{where}: Parameters lacks {', '.join(missing)}"
    for node in cls.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield from _check_function(node, True, f"{where}.{node.name}")


def check_file(path: Path) -> List[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    problems = []
    if not ast.get_docstring(tree):
        problems.append(f"{path}:1: no module docstring")
    for node in tree.body:
        if getattr(node, "name", "_").startswith("_"):
            continue
        where = f"{path}:{node.lineno} {getattr(node, 'name', '')}"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            problems += list(_check_function(node, False, where))
        elif isinstance(node, ast.ClassDef):
            problems += list(_check_class(node, where))
    return problems


def python_files(paths: Iterable[str]) -> List[Path]:
    out: List[Path] = []
    for p in map(Path, paths):
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    problems = [msg for f in python_files(argv or ["RobustDeepLogic"]) for msg in check_file(f)]
    for msg in problems:
        print(msg)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
