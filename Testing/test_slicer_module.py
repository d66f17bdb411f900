"""Checks of the Slicer module that run without Slicer (issue 9).

- The .ui against the module's code: every widget the code uses exists with the expected class, every
  ``SlicerParameterName`` names a parameter of the ``@parameterNodeWrapper`` class with a widget class
  that Slicer's GUI connectors accept for its type, MRML widgets get the scene.
- ``RobustDeep.py`` imports (with stand-ins for Slicer's Qt modules) and still reaches the engine
  although its logic class is called ``RobustDeepLogic`` like the engine package.
- The engine is found both in a clone and in the installed layout.
- The job protocol (``RobustDeepLib.process``) against real child processes: JSON progress lines,
  errors, cancel of a process tree, kill after the grace period, and a real engine command failing on
  bad input with an ``error`` event and exit status 2.
- The module's command lines parse with the engine's own parser (for the commands it has).
- The engine calls behind the blend preview (``RobustDeepLib.stages``).

The MRML glue (``RobustDeepLib.mrml_*``) is tested in ``Testing/MRML`` in an environment of its own.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Set, Tuple

import numpy as np
import pytest
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "RobustDeep"
MODULE_FILE = MODULE_DIR / "RobustDeep.py"
LIB_DIR = MODULE_DIR / "RobustDeepLib"
#: Where the module's constants are assigned: RobustDeep.py, the parameters' choices, the .ui's widgets.
CONSTANT_FILES = (MODULE_FILE, LIB_DIR / "choices.py", LIB_DIR / "ui.py")
UI_FILE = MODULE_DIR / "Resources" / "UI" / "RobustDeep.ui"
ICON_FILE = MODULE_DIR / "Resources" / "Icons" / "RobustDeep.png"

if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from RobustDeepLib import engine as rdlib  # noqa: E402

from RobustDeepLib import command_lines as rdcmd  # noqa: E402
from RobustDeepLib import process as rdproc  # noqa: E402
from RobustDeepLib.bias import bias_for_display  # noqa: E402
from RobustDeepLib import stages  # noqa: E402

# Widget classes that Slicer's parameterNodeWrapper GUI connectors accept for a parameter type
# (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py; they compare exact classes).
CONNECTABLE: Dict[str, Set[str]] = {
    "bool": {"QCheckBox", "ctkCheckBox", "QPushButton", "ctkCheckablePushButton"},
    "int": {"QSpinBox", "QSlider", "QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget",
            "ctkDoubleSlider", "ctkDoubleSpinBox", "qMRMLSpinBox"},
    "float": {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSlider",
              "ctkDoubleSpinBox", "qMRMLSpinBox"},
    "str": {"QLineEdit", "QLabel", "QTextEdit"},
    "choice": {"QComboBox", "ctkComboBox"},
    "path": {"ctkPathLineEdit", "ctkDirectoryButton"},
    "node": {"qMRMLNodeComboBox"},
}
QT_BUILTIN = {"QLabel", "QPushButton", "QSpinBox", "QDoubleSpinBox", "QComboBox", "QCheckBox",
              "QLineEdit", "QTableWidget", "QProgressBar", "QPlainTextEdit", "QTextEdit", "QWidget"}


# --------------------------------------------------------------------------------------------------
# Reading the .ui and the module source
# --------------------------------------------------------------------------------------------------
def ui_widgets() -> Dict[str, str]:
    """{widget name: class} of every widget in the .ui."""
    root = ET.parse(UI_FILE).getroot()
    return {w.get("name"): w.get("class") for w in root.iter("widget")}


def ui_parameter_bindings() -> Dict[str, Tuple[str, str]]:
    """{parameter name: (widget name, widget class)} from the SlicerParameterName properties."""
    root = ET.parse(UI_FILE).getroot()
    out: Dict[str, Tuple[str, str]] = {}
    for w in root.iter("widget"):
        for p in w.findall("property"):
            if p.get("name") == "SlicerParameterName":
                assert p.get("stdset") == "0", f"{w.get('name')}: SlicerParameterName must be dynamic (stdset=0)"
                param = p.find("string").text
                assert param not in out, f"parameter {param} bound to two widgets"
                out[param] = (w.get("name"), w.get("class"))
    return out


def module_tree(path: Path = MODULE_FILE) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def gui_files() -> List[Path]:
    """The module's GUI code: RobustDeep.py, the .ui's helpers and the panels (RobustDeepLib/*_panel.py)."""
    return [MODULE_FILE, LIB_DIR / "ui.py"] + sorted(LIB_DIR.glob("*_panel.py"))


def literal_assignment(name: str):
    """The literal value assigned to a module-level name in RobustDeep.py (or the files of its constants)."""
    for node in (stmt for path in CONSTANT_FILES for stmt in module_tree(path).body):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for target in targets:
            if isinstance(target, ast.Name) and target.id == name:
                return ast.literal_eval(node.value)
    raise KeyError(name)


def parameter_fields() -> Dict[str, str]:
    """{parameter: kind} of the @parameterNodeWrapper class (kind as in CONNECTABLE)."""
    for node in module_tree().body:
        if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "parameterNodeWrapper" for d in node.decorator_list):
            fields: Dict[str, str] = {}
            for stmt in node.body:
                if not isinstance(stmt, ast.AnnAssign):
                    continue
                text = ast.unparse(stmt.annotation)
                if "Choice(" in text:
                    kind = "choice"
                elif "pathlib.Path" in text or text == "Path":
                    kind = "path"
                elif "vtkMRML" in text:
                    kind = "node"
                else:
                    base = text.split("[", 1)[1].split(",")[0] if text.startswith("Annotated[") else text
                    kind = base.strip()
                fields[stmt.target.id] = kind
            return fields
    raise AssertionError("no @parameterNodeWrapper class in RobustDeep.py")


WIDGET_SUFFIXES = ("Button", "LineEdit", "ComboBox", "SpinBox", "Selector", "TableWidget", "Label",
                   "CheckBox", "TextEdit", "ProgressBar", "TableView", "EditorWidget")


def widget_names_used() -> Set[str]:
    """Names the module uses as widgets: ``<x>.ui.<name>`` and widget-like string constants."""
    used: Set[str] = set()
    for node in (n for path in gui_files() for n in ast.walk(module_tree(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui":
            used.add(node.attr)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier() \
                and node.value[0].islower() and node.value.endswith(WIDGET_SUFFIXES):
            used.add(node.value)
    return used


# --------------------------------------------------------------------------------------------------
# The .ui against the code
# --------------------------------------------------------------------------------------------------
def test_every_widget_the_code_uses_is_declared_and_in_the_ui_with_its_class():
    declared: Dict[str, str] = literal_assignment("UI_WIDGETS")
    used = widget_names_used() - set(declared.values())  # class names are constants too
    assert used, "found no widget uses in RobustDeep.py"
    assert used - set(declared) == set(), f"used but not declared in UI_WIDGETS: {sorted(used - set(declared))}"
    widgets = ui_widgets()
    missing = {n for n in declared if n not in widgets}
    assert not missing, f"not in RobustDeep.ui: {sorted(missing)}"
    wrong = {n: (widgets[n], c) for n, c in declared.items() if widgets[n] != c}
    assert not wrong, f"class in .ui differs from UI_WIDGETS (ui, expected): {wrong}"
    unused = set(declared) - used
    assert not unused, f"declared but never used: {sorted(unused)}"


def test_parameter_bindings_name_parameters_with_connectable_widgets():
    fields = parameter_fields()
    bindings = ui_parameter_bindings()
    assert len(bindings) >= 20
    for param, (widget, cls) in bindings.items():
        assert param in fields, f"{widget} binds unknown parameter {param!r}"
        kind = fields[param]
        assert cls in CONNECTABLE[kind], f"{widget} ({cls}) cannot show parameter {param!r} of kind {kind}"
    # A combo box bound to a plain str (no Choice) would make connectGui raise: none may exist.
    for param, (widget, cls) in bindings.items():
        if cls in CONNECTABLE["choice"]:
            assert fields[param] == "choice"
    # Every parameter the user edits in a panel is bound (selectedPatient is set from the table).
    unbound = set(fields) - set(bindings)
    assert unbound == {"selectedPatient"}, unbound


def test_ui_declares_custom_widgets_and_gives_mrml_widgets_the_scene():
    root = ET.parse(UI_FILE).getroot()
    assert root.find("widget").get("class") == "qMRMLWidget"
    custom = {c.find("class").text for c in root.iter("customwidget")}
    used = set(ui_widgets().values())
    assert used - QT_BUILTIN - custom == set(), f"undeclared custom widgets: {used - QT_BUILTIN - custom}"
    receivers = {c.find("receiver").text for c in root.iter("connection")
                 if c.find("signal").text == "mrmlSceneChanged(vtkMRMLScene*)"
                 and c.find("slot").text == "setMRMLScene(vtkMRMLScene*)"}
    mrml = {n for n, c in ui_widgets().items() if c in ("qMRMLNodeComboBox", "qMRMLTableView")}
    assert mrml and mrml <= receivers, f"MRML widgets without the scene: {mrml - receivers}"
    source = MODULE_FILE.read_text(encoding="utf-8")
    assert "maskSegmentEditorWidget.setMRMLScene(slicer.mrmlScene)" in source


def test_module_constants_agree_with_the_engine():
    from RobustDeepLogic.core.modalities import MODALITIES, PETCT_FAMILY
    from RobustDeepLogic.registration.config import INIT_MODES
    from RobustDeepLogic.cohort.tasks import BUILTIN_TASKS

    assert tuple(literal_assignment("MODALITIES")) == tuple(MODALITIES)
    assert tuple(literal_assignment("PETCT_FAMILY")) == tuple(PETCT_FAMILY)
    assert tuple(literal_assignment("TASKS")) == tuple(BUILTIN_TASKS)
    assert set(literal_assignment("INIT_MODES")) == set(INIT_MODES)


def test_cmake_lists_every_module_file_and_registers_the_self_test():
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    lib = sorted(p.name for p in (MODULE_DIR / "RobustDeepLib").glob("*.py"))
    for name in lib:
        assert f"${{MODULE_NAME}}Lib/{name}" in cmake, f"{name} missing from RobustDeep/CMakeLists.txt"
    assert "Resources/UI/${MODULE_NAME}.ui" in cmake and "Resources/Icons/${MODULE_NAME}.png" in cmake
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in cmake
    assert "RobustDeepLogic/*.py" in cmake  # the engine is packaged with the module
    root = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in root and "add_subdirectory(RobustDeep)" in root
    assert ICON_FILE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------------
# RobustDeep.py imports and reaches the engine despite the name clash
# --------------------------------------------------------------------------------------------------
STUB_SLICER = textwrap.dedent(
    """
    import sys, types

    class _Anything(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            value = type(name, (), {"__init__": lambda self, *a, **k: None})
            setattr(self, name, value)
            return value

    def module(name):
        m = _Anything(name)
        sys.modules[name] = m
        return m

    for name in ("qt", "ctk", "vtk"):
        module(name)
    slicer = module("slicer")
    i18n = module("slicer.i18n"); i18n.tr = lambda text: text; i18n.translate = lambda ctx, text: text
    pnw = module("slicer.parameterNodeWrapper")
    pnw.parameterNodeWrapper = lambda cls: cls
    class _Validator:
        def __init__(self, *args, **kwargs):
            self.args = args
    pnw.Choice = _Validator; pnw.WithinRange = _Validator
    slm = module("slicer.ScriptedLoadableModule")
    for base in ("ScriptedLoadableModule", "ScriptedLoadableModuleWidget", "ScriptedLoadableModuleLogic"):
        setattr(slm, base, type(base, (), {"__init__": lambda self, *a, **k: None}))
    import unittest  # Slicer's test base is a unittest.TestCase, found by unittest's loader (ctest)
    slm.ScriptedLoadableModuleTest = type("ScriptedLoadableModuleTest", (unittest.TestCase,),
                                          {"delayDisplay": lambda self, *a, **k: None})
    util = module("slicer.util"); util.VTKObservationMixin = type("VTKObservationMixin", (), {})
    slicer.util = util; slicer.i18n = i18n; slicer.parameterNodeWrapper = pnw
    slicer.ScriptedLoadableModule = slm
    """
)


def run_module_with_stubs(module_dir: Path, body: str, cwd: Path) -> dict:
    """Import RobustDeep.py from ``module_dir`` with Slicer stand-ins; ``body`` prints a JSON dict."""
    script = STUB_SLICER + textwrap.dedent(
        f"""
        import importlib.util, json
        spec = importlib.util.spec_from_file_location("RobustDeep", {str(module_dir / "RobustDeep.py")!r})
        mod = importlib.util.module_from_spec(spec)
        sys.modules["RobustDeep"] = mod
        spec.loader.exec_module(mod)
        """
    ) + textwrap.dedent(body)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_robustdeep_py_reaches_the_engine_despite_its_logic_class_name(tmp_path):
    info = run_module_with_stubs(MODULE_DIR, """
        import RobustDeepLogic as by_name
        print(json.dumps({
            "logic_is_class": isinstance(mod.RobustDeepLogic, type),
            "logic_base": mod.RobustDeepLogic.__mro__[1].__name__,
            "engine_file": mod.rdengine.__file__,
            "engine_version": mod.rdengine.__version__,
            "same_as_sys_modules": sys.modules["RobustDeepLogic"] is mod.rdengine,
            "by_name_is_engine": by_name is mod.rdengine,
            "import_error": mod.ENGINE_IMPORT_ERROR,
            "static_engine": mod.RobustDeepLogic.engine() is mod.rdengine,
            "engine_root": str(mod.ENGINE_ROOT),
            "widgets": len(mod.UI_WIDGETS),
        }))
    """, cwd=tmp_path)
    assert info["logic_is_class"] and info["logic_base"] == "ScriptedLoadableModuleLogic"
    assert info["import_error"] is None
    assert info["same_as_sys_modules"] and info["by_name_is_engine"] and info["static_engine"]
    assert Path(info["engine_file"]).resolve() == (REPO / "RobustDeepLogic" / "__init__.py").resolve()
    assert Path(info["engine_root"]).resolve() == REPO
    assert info["widgets"] == len(literal_assignment("UI_WIDGETS"))


def _installed_layout(tmp_path: Path) -> Path:
    """The folder layout of an installed extension: module, its Lib and the engine side by side."""
    lib = tmp_path / "qt-scripted-modules"
    lib.mkdir()
    shutil.copy(MODULE_FILE, lib / "RobustDeep.py")
    shutil.copytree(MODULE_DIR / "RobustDeepLib", lib / "RobustDeepLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "RobustDeepLogic", lib / "RobustDeepLogic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return lib


def test_engine_is_found_beside_an_installed_module_and_above_a_clones_module(tmp_path):
    assert rdlib.find_engine_root(MODULE_DIR) == REPO  # clone: one folder up
    lib = _installed_layout(tmp_path)
    assert rdlib.find_engine_root(lib) == lib  # installed: beside RobustDeep.py
    assert rdlib.find_engine_root(tmp_path / "nowhere") is None
    info = run_module_with_stubs(lib, """
        print(json.dumps({"engine_file": mod.rdengine.__file__, "root": str(mod.ENGINE_ROOT)}))
    """, cwd=tmp_path)
    # The installed copy wins over any other engine on the path (e.g. an editable install).
    assert Path(info["engine_file"]).resolve() == (lib / "RobustDeepLogic" / "__init__.py").resolve()
    assert Path(info["root"]).resolve() == lib.resolve()


# --------------------------------------------------------------------------------------------------
# The job protocol against real processes
# --------------------------------------------------------------------------------------------------
def python_job(code: str, **kwargs) -> rdproc.EngineJob:
    return rdproc.EngineJob([sys.executable, "-u", "-c", textwrap.dedent(code)], **kwargs).start()


def test_parse_line_and_error_text():
    assert rdproc.parse_line('{"event": "log", "level": "INFO", "message": "x"}\n')["event"] == "log"
    assert rdproc.parse_line("not json")["event"] == "output"
    assert rdproc.parse_line('{"no": "event"}')["event"] == "output"
    assert rdproc.parse_line('{"event": "log"}', stream="stderr")["event"] == "output"
    text = rdproc.describe_error({"event": "error", "message": "bad", "file": "/f", "patient": "P1",
                                  "hint": "fix it"})
    assert text == "P1, /f: bad (hint: fix it)"
    assert rdproc.progress_fraction({"done": 3, "total": 4}) == 0.75
    assert rdproc.progress_fraction({"done": 3, "total": None}) is None


def test_job_reads_progress_result_and_plain_output_in_order():
    job = python_job("""
        import json, sys, time
        for i in range(3):
            print(json.dumps({"event": "progress", "stage": "s", "done": i + 1, "total": 3, "message": ""}))
            time.sleep(0.05)
        print("a plain line")
        print("to stderr", file=sys.stderr)
        print(json.dumps({"event": "result", "command": "t", "outputs": {"x": "/y"}, "figures": {}}))
    """)
    events: List[dict] = []
    running_at_exit: List[bool] = []

    def record(event: dict) -> None:
        events.append(event)
        if event["event"] == "exit":
            running_at_exit.append(job.running)

    assert job.wait(timeout=20, on_event=record) == 0
    assert running_at_exit == [False]  # a GUI that reacts to the exit event sees the job ended
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "exit" and events[-1]["returncode"] == 0 and not events[-1]["cancelled"]
    stdout_kinds = [e["event"] for e in events if e.get("stream") != "stderr" and e["event"] != "exit"]
    assert stdout_kinds == ["progress", "progress", "progress", "output", "result"]
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3]
    assert job.result["outputs"] == {"x": "/y"}
    assert job.stderr_lines == ["to stderr"]
    assert not job.running and job.finished


def test_poll_never_blocks_while_the_process_runs():
    job = python_job("""
        import time
        time.sleep(2)
    """)
    start = time.monotonic()
    assert job.poll() == []
    assert time.monotonic() - start < 0.5
    assert job.running
    job.cancel()
    assert job.wait(timeout=15) is not None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (ended, not reaped by its parent) counts as ended.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(os.name == "nt", reason="process groups are POSIX")
def test_cancel_stops_the_whole_process_tree():
    job = python_job("""
        import subprocess, sys, time, json
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(json.dumps({"event": "log", "level": "INFO", "message": str(child.pid)}), flush=True)
        time.sleep(60)
    """, grace_seconds=10)
    events: List[dict] = []
    deadline = time.monotonic() + 20
    while not any(e["event"] == "log" for e in events):
        assert time.monotonic() < deadline, "no output from the job"
        events += job.poll()
        time.sleep(0.02)
    grandchild = int(next(e for e in events if e["event"] == "log")["message"])
    assert _pid_alive(grandchild)
    job.cancel()
    rc = job.wait(timeout=30, on_event=events.append)
    assert rc == -signal.SIGTERM  # terminate was enough: not killed after the grace period
    assert events[-1] == {"event": "exit", "returncode": rc, "cancelled": True}
    for _ in range(50):
        if not _pid_alive(grandchild):
            break
        time.sleep(0.05)
    assert not _pid_alive(grandchild), "the grandchild survived the cancel"


@pytest.mark.skipif(os.name == "nt", reason="signals are POSIX")
def test_cancel_kills_a_process_that_ignores_terminate_after_the_grace_period():
    job = python_job("""
        import signal, time, json
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(json.dumps({"event": "log", "level": "INFO", "message": "ready"}), flush=True)
        time.sleep(60)
    """, grace_seconds=0.5)
    deadline = time.monotonic() + 20
    while job.last_progress is None and not any(e["event"] == "log" for e in job.poll()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    start = time.monotonic()
    job.cancel()
    rc = job.wait(timeout=15)
    elapsed = time.monotonic() - start
    assert rc == -signal.SIGKILL
    assert 0.4 <= elapsed < 10
    assert job.cancelled


def test_engine_command_with_bad_input_gives_an_error_event_and_status_2(tmp_path):
    """The real engine, run as the module runs it: from elsewhere, found through PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env = rdlib.engine_env(rdlib.find_engine_root(MODULE_DIR), base=env)
    missing = tmp_path / "no-such-cohort"
    argv = rdlib.engine_argv(rdcmd.cohort_check_command(missing), python=sys.executable)
    assert argv[1:3] == ["-m", "RobustDeepLogic"] and argv[-2:] == ["--progress", "json"]
    job = rdproc.run_engine(argv, env=env, timeout=60)
    assert job.returncode == rdproc.EXIT_INPUT
    assert job.error is not None
    assert job.error["kind"] == "input" and job.error["file"] == str(missing)
    assert "not found" in job.error["message"]
    assert job.result is None


def test_the_bootstrap_runs_the_engine_of_the_given_root_whatever_the_environment(tmp_path):
    """Installed layout: the child imports the engine copy beside the module, not another one."""
    lib = _installed_layout(tmp_path)
    argv = rdlib.engine_argv(["cohort", "check", str(tmp_path / "none")], python=sys.executable,
                             engine_root=lib)
    probe = argv[:2] + [argv[2].replace("from RobustDeepLogic.cli import main; sys.exit(main(sys.argv[1:]))",
                                        "import RobustDeepLogic; print(RobustDeepLogic.__file__)")] + argv[3:4]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(probe, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert Path(out.stdout.strip()).resolve() == (lib / "RobustDeepLogic" / "__init__.py").resolve()
    job = rdproc.run_engine(argv, env=env, timeout=60)
    assert job.returncode == rdproc.EXIT_INPUT and job.error["file"] == str(tmp_path / "none")


def test_engine_command_success_gives_a_result_event(tmp_path):
    """A quick real command that succeeds: the cohort listing of a cohort written by the engine."""
    from RobustDeepLogic.cohort.manifest import Cohort

    Cohort(root=tmp_path / "empty").save()
    if "cohort" not in rdlib.engine_commands():
        pytest.skip("the engine has no cohort command")
    env = rdlib.engine_env(rdlib.find_engine_root(MODULE_DIR))
    job = rdproc.run_engine(rdlib.engine_argv(["cohort", "list", str(tmp_path / "empty")]), env=env, timeout=60)
    assert job.returncode == rdproc.EXIT_OK, job.stderr_lines
    assert job.result is not None and job.result["command"] == "cohort list"


# --------------------------------------------------------------------------------------------------
# Command lines against the engine's parser
# --------------------------------------------------------------------------------------------------
COMMAND_LINES = {
    "simulate": rdcmd.simulate_command("/tmp/out", subjects=3),
    "cohort": rdcmd.cohort_check_command("/tmp/cohort"),
    "register": rdcmd.register_command("/tmp/cohort", "/tmp/registered"),
    "blend": rdcmd.blend_command("a.nii.gz", "b.nii.gz", "m.nii.gz", "o.nii.gz", levels=3, naive=True),
    "synthesize": rdcmd.synthesize_command("/tmp/registered", "/tmp/synth", masks=["m.nii.gz", "simple"],
                                           count=4, seed=7, levels=3),
    "train": rdcmd.train_command("/tmp/data", "/tmp/run", task="ld2fd", scenario="PM", steps=5, device="cpu",
                                 synthetic_cohorts=["/tmp/synth"]),
    "predict": rdcmd.predict_command("/tmp/run", ["in.nii.gz"], "/tmp/pred"),
}


@pytest.mark.parametrize("name", sorted(COMMAND_LINES))
def test_module_command_lines_parse_with_the_engine_parser(name):
    from RobustDeepLogic.cli.frame import build_parser
    from RobustDeepLogic.cli.commands import all_commands

    if name not in rdlib.engine_commands():
        pytest.skip(f"the engine has no '{name}' command yet")
    parser = build_parser(all_commands())
    argv = rdlib.engine_argv(COMMAND_LINES[name], python="python")[3:]
    args = parser.parse_args(argv)  # SystemExit (a failure) on an unknown option
    assert vars(args)["_path"].split()[0] == name
    assert vars(args)["progress"] == "json"
    assert vars(args)["_command"].name == argv[0] or vars(args)["_path"].startswith(argv[0])


def test_missing_commands_names_what_the_engine_lacks():
    have = rdlib.engine_commands()
    assert "assets" in have
    assert rdlib.missing_commands([["assets"], ["no-such-command", "x"]]) == ["no-such-command"]


def test_engine_env_puts_the_engine_first_and_keeps_the_rest():
    env = rdlib.engine_env("/engine", base={"PYTHONPATH": os.pathsep.join(["/a", "/engine"]), "X": "1"},
                           extra={"CUDA_VISIBLE_DEVICES": "-1"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(Path("/engine")), "/a"]
    assert env["X"] == "1" and env["PYTHONUNBUFFERED"] == "1" and env["CUDA_VISIBLE_DEVICES"] == "-1"


# --------------------------------------------------------------------------------------------------
# The engine calls behind the previews
# --------------------------------------------------------------------------------------------------
def _image(array: np.ndarray, origin=(10.0, -5.0, 3.0), spacing=(2.0, 2.0, 2.5)) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection((-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0))
    return image


def test_blend_preview_calls_the_engine_and_keeps_the_geometry(rng):
    a = _image(rng.random((12, 16, 20)) + 1.0)
    b = _image(rng.random((12, 16, 20)) * 3.0)
    ones = _image(np.ones((12, 16, 20)))
    out = stages.blend_images(a, b, ones, levels=2, naive=True)
    np.testing.assert_allclose(sitk.GetArrayFromImage(out["laplacian"]), sitk.GetArrayFromImage(a), atol=1e-5)
    assert out["laplacian"].GetOrigin() == a.GetOrigin() and out["laplacian"].GetDirection() == a.GetDirection()
    half = np.zeros((12, 16, 20), np.float32)
    half[:, :, :10] = 1
    out = stages.blend_images(a, b, _image(half), levels=2, naive=True)
    lap, naive = (sitk.GetArrayFromImage(out[k]) for k in ("laplacian", "naive"))
    np.testing.assert_allclose(naive[:, :, :10], sitk.GetArrayFromImage(a)[:, :, :10], atol=1e-6)
    assert not np.allclose(lap, naive)  # the pyramid softens the seam


def test_blend_preview_resamples_a_mask_on_another_grid_and_rejects_unregistered_pairs(rng):
    a = _image(rng.random((8, 10, 12)))
    b = _image(rng.random((8, 10, 12)))
    coarse = _image(np.ones((4, 5, 6)), spacing=(4.0, 4.0, 5.0))
    m = stages.mask_on_grid(coarse, a)
    assert m.shape == (8, 10, 12) and 0.0 <= m.min() and m.max() <= 1.0 and m.sum() > 0
    out = stages.blend_images(a, b, coarse, levels=1, naive=False)  # the coarse mask is resampled
    assert set(out) == {"laplacian"} and out["laplacian"].GetSize() == a.GetSize()
    shifted = _image(rng.random((8, 10, 12)), origin=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="not on one grid"):
        stages.blend_images(a, shifted, coarse, levels=1)


def test_mask_specs_follow_the_engines_syntax():
    assert stages.mask_spec("simple") == "simple"
    assert stages.mask_spec("sphere", " centre=0,-20,10; radius=30 ;") == "sphere:centre=0,-20,10;radius=30"
    with pytest.raises(ValueError):
        stages.mask_spec("  ")


def test_mask_presets_and_generators_come_from_the_engine():
    if not rdlib.engine_has("masks"):
        pytest.skip("the engine has no masks module yet")
    from RobustDeepLogic import masks

    choices = stages.mask_choices()
    assert choices[: len(masks.PRESETS)] == list(masks.PRESETS)
    assert set(masks.GENERATORS) <= set(choices) and len(choices) == len(set(choices))
    assert "radius" in stages.mask_help("sphere")
    template = _image(np.zeros((20, 24, 22)), origin=(21.0, 23.0, -20.0), spacing=(2.0, 2.0, 2.0))
    simple = stages.make_mask("simple", template)
    array = sitk.GetArrayFromImage(simple)
    assert simple.GetOrigin() == template.GetOrigin() and simple.GetSpacing() == template.GetSpacing()
    assert array.min() == 0.0 and array.max() == 1.0  # a split of the head: both parents present
    sphere = sitk.GetArrayFromImage(stages.make_mask(stages.mask_spec("sphere", "centre=0,0,0; radius=8"), template))
    assert 0 < sphere.sum() < array.size


def test_sample_pairs_limits_and_keeps_the_region(rng):
    ref = rng.random((10, 10, 10))
    region = np.zeros_like(ref)
    region[2:5] = 1
    x, y = stages.sample_pairs(ref, ref * 2, region, max_points=50)
    assert len(x) == 50 and np.allclose(y, 2 * x)
    assert set(np.round(x, 12)) <= set(np.round(ref[2:5].ravel(), 12))


def test_a_missing_engine_stage_is_a_clear_error():
    with pytest.raises(stages.EngineStageMissing, match="no 'no_such_stage' module"):
        stages._stage("no_such_stage")


def test_review_figures_come_from_the_engines_metrics():
    if not rdlib.engine_has("evaluate.metrics"):
        pytest.skip("the engine has no metrics module yet")
    reference = np.zeros((10, 12, 14), np.float32)
    reference[2:8, 2:10, 2:12] = 2.0
    reference[4:6, 4:8, 4:10] = 6.0
    head = reference > 0
    out = stages.review_figures(_image(reference * 1.05), _image(reference), modality="FD")
    bias = sitk.GetArrayFromImage(out["bias_percent"])
    assert out["bias_percent"].GetOrigin() == _image(reference).GetOrigin()
    np.testing.assert_allclose(bias[head], 5.0, atol=1e-3)  # +5 % where there is head
    assert np.all(bias[~head] == 0)  # 0 outside the engine's head mask (here: the non-zero box)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out["head"]) > 0, head)  # the region it used
    assert out["head"].GetOrigin() == _image(reference).GetOrigin()
    shown = sitk.GetArrayFromImage(bias_for_display(out["bias_percent"], out["head"]))
    assert np.isnan(shown[~head]).all()  # no value outside the head (transparent in a slice view)
    np.testing.assert_allclose(shown[head], bias[head])  # a 0 % voxel inside the head stays 0
    expected_rmse = float(np.sqrt(np.mean((0.05 * reference[head] / 15.0) ** 2)))
    assert out["metrics"]["rmse"] == pytest.approx(expected_rmse, rel=0.05)  # scaled units, head region
    assert out["fit"]["slope"] == pytest.approx(1.05, rel=1e-6) and out["fit"]["r2"] == pytest.approx(1.0)
    assert "15" in out["units"]
    assert {(r["units"], r["region"]) for r in out["rows"]} == {("scaled", "head"), ("physical", "head")}
    x, y = out["pairs"]
    np.testing.assert_allclose(y, 1.05 * x, rtol=1e-5)
    # CT: relative to HU + 1000 (attenuation), never to HU itself, which crosses zero.
    ct = np.where(head, 40.0, -1000.0).astype(np.float32)
    region = _image(head.astype(np.uint8))
    ct_out = stages.review_figures(_image(ct + 52.0), _image(ct), region, modality="CT")
    np.testing.assert_allclose(sitk.GetArrayFromImage(ct_out["bias_percent"])[head], 5.0, rtol=1e-4)
    with pytest.raises(ValueError, match="one grid"):
        stages.review_figures(_image(reference, origin=(0.0, 0.0, 0.0)), _image(reference))
    with pytest.raises(ValueError, match="T1"):
        stages.review_figures(_image(reference), _image(reference), modality="T1")


def test_review_modalities_agree_between_module_and_glue():
    assert tuple(literal_assignment("REVIEW_MODALITIES")) == stages.REVIEW_MODALITIES


# --------------------------------------------------------------------------------------------------
# Dependencies
# --------------------------------------------------------------------------------------------------
def test_dependency_checks_do_not_import_and_name_what_is_missing():
    from RobustDeepLib import dependencies as deps

    assert deps.is_importable("numpy") and not deps.is_importable("no_such_package_robustdeep")
    assert deps.missing_requirements((("numpy", "numpy"), ("no_such_package_robustdeep", "nspr>=1"))) == ["nspr>=1"]
    info = deps.compute_info(import_torch=False)
    assert info.versions["SimpleITK"] is not None
    if info.torch_version is not None:
        assert "torch" in info.summary()


def test_install_torch_without_the_pytorch_extension_says_what_to_do():
    from RobustDeepLib import dependencies as deps

    if deps.is_importable("PyTorchUtils"):
        pytest.skip("PyTorchUtils is importable here")
    with pytest.raises(deps.MissingPyTorchExtension, match="Extensions Manager"):
        deps.install_torch(ask=False)


def test_glue_modules_outside_mrml_import_without_slicer_or_qt():
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import RobustDeepLib, RobustDeepLib.engine, RobustDeepLib.process, RobustDeepLib.stages, "
            "RobustDeepLib.dependencies, RobustDeepLib.choices, RobustDeepLib.process_tree, RobustDeepLib.package_index\n"
            "bad = [m for m in ('slicer', 'qt', 'ctk', 'vtk', 'torch') if m in sys.modules]\n"
            "print(','.join(bad))" % str(MODULE_DIR))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
    mrml_files = sorted((MODULE_DIR / "RobustDeepLib").glob("mrml_*.py"))
    assert mrml_files
    for path in mrml_files:
        mrml_source = path.read_text(encoding="utf-8")
        assert "import qt" not in mrml_source and "slicer.util" not in mrml_source.split('"""', 2)[2], path.name
