"""The module's dependency handling inside Slicer, with Slicer stood in (issue 14 items 3 and 9).

- A background job whose command lacks the engine's packages does not start: the user is told what is
  missing and to press 'Install dependencies...' (before, every job died on ``No module named 'yaml'``).
- pip installs nothing without the user's consent on Slicer 5.8 / 5.10, whose ``slicer.util.pip_install``
  never asks (Slicer 5.12's ``slicer.packaging.pip_ensure`` asks by itself).
"""

from __future__ import annotations

import sys
import types

import pytest

from test_slicer_module import MODULE_DIR, run_module_with_stubs

if str(MODULE_DIR) not in sys.path:
    sys.path.insert(0, str(MODULE_DIR))

from RobustDeepLib import dependencies as deps  # noqa: E402


def test_commands_needing_torch_name_it_first_and_the_others_only_the_light_packages(monkeypatch):
    monkeypatch.setattr(deps, "is_importable", lambda name: name not in ("torch", "yaml"))
    assert deps.missing_for_command(["train", "c", "--out", "r"]) == ["torch", "pyyaml>=5.4"]
    assert deps.missing_for_command(["register", "c", "o"]) == ["pyyaml>=5.4"]
    monkeypatch.setattr(deps, "is_importable", lambda name: True)
    assert deps.missing_for_command(["simulate", "o"]) == []
    deps.check_command_requirements(["simulate", "o"])  # nothing missing: no error


def test_a_job_lacking_packages_does_not_start_and_says_what_to_press(tmp_path):
    info = run_module_with_stubs(MODULE_DIR, """
        from RobustDeepLib import dependencies
        dependencies.missing_requirements = lambda *a: ["pyyaml>=5.4"]
        started = []
        import RobustDeepLib.jobs_panel as jobs
        jobs.EngineJob = lambda *a, **k: started.append(a)
        try:
            mod.RobustDeepLogic().startEngineJob(["register", "cohort", "out"])
            message = None
        except dependencies.DependenciesMissing as exc:
            message = str(exc)
        print(json.dumps({"message": message, "started": len(started)}))
    """, cwd=tmp_path)
    assert info["started"] == 0
    assert info["message"] is not None
    assert "pyyaml>=5.4" in info["message"] and "Install dependencies" in info["message"]
    assert "'register'" in info["message"]


def _fake_slicer(monkeypatch, *, confirm: bool, with_pip_ensure: bool) -> dict:
    """A ``slicer`` module as Slicer 5.8 / 5.10 (no ``slicer.packaging``) or 5.12 has it; records calls."""
    calls: dict = {"confirm": [], "pip_install": [], "pip_ensure": []}
    slicer = types.ModuleType("slicer")
    slicer.util = types.SimpleNamespace(
        confirmOkCancelDisplay=lambda text, **kw: calls["confirm"].append(text) or confirm,
        pip_install=lambda reqs: calls["pip_install"].append(list(reqs)),
    )
    if with_pip_ensure:
        slicer.packaging = types.SimpleNamespace(
            pip_ensure=lambda reqs, requester=None: calls["pip_ensure"].append(list(reqs)))
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.setattr(deps, "missing_requirements", lambda *a: ["pyyaml>=5.4", "tqdm>=4.60"])
    return calls


def test_slicer_before_5_12_asks_before_pip_installs_anything(monkeypatch):
    calls = _fake_slicer(monkeypatch, confirm=False, with_pip_ensure=False)
    with pytest.raises(deps.InstallDeclined, match="cancelled"):
        deps.install_requirements(confirm=True)
    assert len(calls["confirm"]) == 1 and "pyyaml>=5.4" in calls["confirm"][0]
    assert calls["pip_install"] == []  # declined: nothing installed
    calls = _fake_slicer(monkeypatch, confirm=True, with_pip_ensure=False)
    assert deps.install_requirements(confirm=True) == ["pyyaml>=5.4", "tqdm>=4.60"]
    assert calls["pip_install"] == [["pyyaml>=5.4", "tqdm>=4.60"]] and len(calls["confirm"]) == 1


def test_slicer_5_12_lets_pip_ensure_ask_and_the_self_test_installs_without_asking(monkeypatch):
    calls = _fake_slicer(monkeypatch, confirm=False, with_pip_ensure=True)
    assert deps.install_requirements(confirm=True) == ["pyyaml>=5.4", "tqdm>=4.60"]
    assert calls["pip_ensure"] == [["pyyaml>=5.4", "tqdm>=4.60"]] and calls["confirm"] == []
    calls = _fake_slicer(monkeypatch, confirm=False, with_pip_ensure=False)
    deps.install_requirements(confirm=False)  # the self-test: no dialog
    assert calls["confirm"] == [] and calls["pip_install"] == [["pyyaml>=5.4", "tqdm>=4.60"]]
