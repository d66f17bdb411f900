"""Shared pytest set-up: test tiers and markers.

- ``slow``: skipped unless ``--run-slow`` or ``RD_RUN_SLOW=1`` (the default suite stays under 15 min
  on 2 cores).
- ``gpu``: skipped unless CUDA is available.
- ``assets``: skipped when the prepared template assets are missing (``robustdeep assets``);
  ``RD_REQUIRE_ASSETS=1`` (set by CI) turns that skip into a failure.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow") or os.environ.get("RD_RUN_SLOW") == "1"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch missing
        has_cuda = False
    from RobustDeepLogic.registration.assets import assets_dir, assets_ready

    have_assets = assets_ready()
    require_assets = os.environ.get("RD_REQUIRE_ASSETS") == "1"
    skip_slow = pytest.mark.skip(reason="slow: run with --run-slow or RD_RUN_SLOW=1")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_assets = pytest.mark.skip(reason=f"template assets not prepared in {assets_dir()} "
                                   "(run 'robustdeep assets')")
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "assets" in item.keywords and not have_assets and not require_assets:
            item.add_marker(skip_assets)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: on a shared 2-core machine, 2 threads spin against other
    jobs (10x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def need_assets():
    """Skip without the prepared template assets (fail instead when ``RD_REQUIRE_ASSETS=1``)."""
    from RobustDeepLogic.registration.assets import assets_ready

    if not assets_ready():
        if os.environ.get("RD_REQUIRE_ASSETS") == "1":
            pytest.fail("template assets are missing and RD_REQUIRE_ASSETS=1: run 'robustdeep assets'")
        pytest.skip("template assets not prepared (run 'robustdeep assets')")
