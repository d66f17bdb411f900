#!/usr/bin/env python3
"""Check that the working tree differs from a git revision only in docstrings and comments.

    python scripts/docstring_only.py [REV] [PATH ...]

For every Python file changed since ``REV`` (default ``HEAD``) under the given paths (default: the
engine and the Slicer module), both versions are parsed and compared with docstrings removed: the
code must be the same statement for statement. Used for documentation-only changes. Exit 1 on any
difference (the files are named).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def strip_docstrings(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False)


def main(argv) -> int:
    rev = argv[0] if argv and not Path(argv[0]).exists() else "HEAD"
    paths = [a for a in argv if Path(a).exists()] or ["RobustDeepLogic", "RobustDeep"]
    changed = subprocess.run(["git", "diff", "--name-only", rev, "--", *paths], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout.split()
    bad = []
    for name in changed:
        if not name.endswith(".py") or not (REPO / name).exists():
            continue
        old = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=REPO, capture_output=True, text=True)
        if old.returncode != 0:
            bad.append(f"{name} (new file)")
            continue
        if strip_docstrings(ast.parse(old.stdout)) != strip_docstrings(ast.parse((REPO / name).read_text())):
            bad.append(name)
    for name in bad:
        print(f"code changed: {name}")
    print(f"{len(changed)} files changed, {len(bad)} with code changes")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
