"""The module's self-test as ctest runs it (issue 14 item 1), without Slicer.

``slicer_add_python_unittest`` makes ctest call ``slicer.testing.runUnitTest(path, "RobustDeep")``, which
is ``unittest.TestLoader().loadTestsFromName("RobustDeep")`` then a text runner: every ``test_*``
method of every TestCase of ``RobustDeep.py`` runs on its own, with no arguments. Here ``RobustDeep.py``
is imported with stand-ins for Slicer (its test base a real ``unittest.TestCase``), the steps of
``RobustDeepLib/selftest.py`` are replaced by recorders, and the suite is run the way ctest runs it.
"""

from __future__ import annotations

import inspect
import socket
import threading
from pathlib import Path

from test_slicer_module import MODULE_DIR, run_module_with_stubs

CTEST_RUN = """
    import inspect, unittest
    from RobustDeepLib import selftest
    calls = []

    def recorder(name, result=None):
        def step(*args, **kwargs):
            calls.append(name)
            return result
        return step

    selftest.network_available = lambda: ONLINE
    selftest.check_dependencies = lambda test, logic, online=True: calls.append("dependencies") or HAVE_DEPS or online
    selftest.check_assets = lambda test, logic, online: calls.append("assets") or HAVE_ASSETS or online
    for name, result in (("engine_reachable", None), ("job_protocol", None), ("geometry_round_trip", None),
                         ("patients", "cohort"), ("registration", "template"), ("masks", ("seg", "file")),
                         ("blend", None), ("review", None), ("widget", None)):
        setattr(selftest, "check_" + name, recorder(name, result))

    suite = unittest.TestLoader().loadTestsFromModule(mod)   # what loadTestsFromName("RobustDeep") does

    def flat(s):
        for t in s:
            yield from (flat(t) if isinstance(t, unittest.TestSuite) else [t])

    tests = list(flat(suite))
    signatures = {t.id(): list(inspect.signature(getattr(type(t), t._testMethodName)).parameters)
                  for t in tests}
    mod.slicer.mrmlScene = type("Scene", (), {"Clear": lambda self: None})()
    result = unittest.TextTestRunner(stream=open(__import__("os").devnull, "w")).run(suite)
    print(json.dumps({"signatures": signatures, "calls": calls, "run": result.testsRun,
                      "errors": [e[1][-300:] for e in result.errors + result.failures],
                      "skipped": [s[1] for s in result.skipped]}))
"""


def ctest_run(tmp_path: Path, online: bool, have_deps: bool = True, have_assets: bool = True) -> dict:
    body = (f"ONLINE, HAVE_DEPS, HAVE_ASSETS = {online}, {have_deps}, {have_assets}\n"
            + inspect.cleandoc(CTEST_RUN.replace("\n    ", "\n")))
    return run_module_with_stubs(MODULE_DIR, body, cwd=tmp_path)


def test_every_test_method_runs_alone_and_without_arguments_as_ctest_runs_it(tmp_path):
    out = ctest_run(tmp_path, online=True)
    assert out["signatures"], "unittest found no test in RobustDeep.py"
    for name, parameters in out["signatures"].items():
        assert parameters == ["self"], f"{name} takes arguments {parameters[1:]}: ctest calls it without"
    assert out["errors"] == [] and out["skipped"] == []
    assert out["run"] == len(out["signatures"])
    # The one chained test runs every step in the order data flows.
    assert out["calls"] == ["dependencies", "engine_reachable", "job_protocol", "geometry_round_trip",
                            "patients", "assets", "registration", "masks", "blend", "review", "widget"]


def test_offline_the_steps_that_download_are_skipped(tmp_path):
    # Packages there, assets missing: the template steps are left out, the rest runs.
    out = ctest_run(tmp_path, online=False, have_deps=True, have_assets=False)
    assert out["errors"] == [] and out["skipped"] == []
    assert out["calls"] == ["dependencies", "engine_reachable", "job_protocol", "geometry_round_trip",
                            "patients", "assets", "review", "widget"]
    # Packages missing: nothing can run, the test is skipped (not failed) and says why.
    out = ctest_run(tmp_path, online=False, have_deps=False)
    assert out["errors"] == [] and out["calls"] == ["dependencies"]
    assert len(out["skipped"]) == 1 and "offline" in out["skipped"][0]


def test_the_package_index_check_answers_for_a_listening_and_a_closed_port(tmp_path):
    from RobustDeepLib import package_index

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accept = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
    accept.start()
    assert package_index.package_index_reachable(f"http://127.0.0.1:{port}/simple", timeout=5)
    server.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    free_port = closed.getsockname()[1]
    closed.close()  # nobody listens there now
    assert not package_index.package_index_reachable(f"http://127.0.0.1:{free_port}/simple", timeout=2)
    assert package_index.package_index_reachable(tmp_path.as_uri())
    assert not package_index.package_index_reachable((tmp_path / "none").as_uri())
    assert package_index.package_index_url({"PIP_INDEX_URL": "http://mirror/simple"}) == "http://mirror/simple"
    assert package_index.package_index_url({}) == package_index.DEFAULT_INDEX_URL
