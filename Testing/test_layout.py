"""The layout's rules (docs/developing.md), checked on the source itself.

- Imports flow one way: import-linter's contracts in ``pyproject.toml`` (a stage imports only the stages
  before it; no cycles among the modules of a package; the engine never imports Slicer or Qt) hold,
  and every sub-package of the engine has its place in the layers.
- Each source file holds one concept and at most 400 lines (tests excepted).
- Imports inside functions only for heavy or optional libraries, each with its reason below; the
  command modules import their stage when they run, so that ``robustdeep --help`` stays fast.
- One implementation of each shared concept: path types, transform files, head masks.
- Public functions and classes of the engine and of the module's Qt-free glue have numpydoc docstrings
  whose Parameters name every argument (``scripts/check_docstrings.py``).
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / "RobustDeepLogic"
MODULE = REPO / "RobustDeep"
STUDIO = REPO / "RobustDeepStudio"
MAX_LINES = 400
#: The Slicer module's files that run without Slicer (their public API is documented like the engine's).
QT_FREE_GLUE = ["engine", "command_lines", "process", "process_tree", "package_index", "stages", "dependencies", "choices", "ui", "mrml_volumes",
                "mrml_segmentations", "mrml_views", "mrml_tables", "bias"]

#: Libraries a function may import where it needs them, and why.
LAZY_IMPORTS = {
    "torch": "seconds to import; the MRML environment and Slicer's light engine have no torch",
    "matplotlib": "figures only; slow to import",
    "pydicom": "DICOM only",
    "dask": "optional (pip install 'dask[distributed]')",
    "onnx": "optional (ONNX export)",
    "tqdm": "the progress bar only",
}


def _engine_files():
    return sorted(ENGINE.rglob("*.py"))


def _layers():
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["type"] == "layers")["layers"]


def test_import_contracts_hold():
    pytest.importorskip("importlinter", reason="needs import-linter (the test extra)")
    exe = Path(sys.executable).with_name("lint-imports")
    command = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout and "3 kept" in run.stdout


def test_every_stage_package_has_its_place_in_the_layers():
    packages = {p.parent.name for p in ENGINE.glob("*/__init__.py")}
    assert packages == set(_layers())


def test_source_files_are_at_most_400_lines():
    files = _engine_files() + sorted(MODULE.rglob("*.py")) + sorted(STUDIO.rglob("*.py"))
    long = {str(f.relative_to(REPO)): n for f in files
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"split these files (at most {MAX_LINES} lines each): {long}"


def _function_imports(tree: ast.AST):
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield node.lineno, alias.name
                elif isinstance(node, ast.ImportFrom):
                    yield node.lineno, ("." * node.level) + (node.module or "")


def test_imports_inside_functions_only_for_heavy_or_optional_libraries():
    commands = ENGINE / "cli" / "commands"
    wrong = []
    for path in _engine_files():
        for line, module in _function_imports(ast.parse(path.read_text(encoding="utf-8"))):
            root = module.split(".")[0]
            if root in LAZY_IMPORTS:
                continue
            if path.parent == commands and module.startswith("RobustDeepLogic."):
                continue  # a command imports its stage when it runs: robustdeep --help stays fast
            wrong.append(f"{path.relative_to(REPO)}:{line} {module}")
    assert not wrong, "import these at the top of the module:\n" + "\n".join(wrong)


def _sources_containing(text: str):
    return sorted(str(p.relative_to(ENGINE)) for p in _engine_files()
                  if text in p.read_text(encoding="utf-8"))


def test_one_implementation_of_each_shared_concept():
    assert _sources_containing("PathLike = ") == ["core/types.py"]
    assert _sources_containing("sitk.ReadTransform(") == ["io/transforms.py"]
    assert _sources_containing("sitk.WriteTransform(") == ["io/transforms.py"]
    assert _sources_containing("binary_fill_holes(") == ["io/headmask.py"]


def test_public_functions_have_numpydoc_docstrings():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import check_docstrings
    finally:
        sys.path.pop(0)
    files = check_docstrings.python_files(
        [str(ENGINE), str(STUDIO)] + [str(MODULE / "RobustDeepLib" / f"{name}.py") for name in QT_FREE_GLUE])
    problems = [p for f in files for p in check_docstrings.check_file(f)]
    assert not problems, f"{len(problems)} docstring problems:\n" + "\n".join(problems[:40])
