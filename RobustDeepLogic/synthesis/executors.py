"""Where the jobs of a synthesis run: in this process, in local worker processes, or on Dask.

:func:`_run_jobs`, used by :func:`~RobustDeepLogic.synthesis.disk.synthesize`, yields the results of
:func:`~RobustDeepLogic.synthesis.subjects.synthesize_subject` as jobs finish: in this process for
``workers <= 1``; over ``workers`` spawned processes, each with ``cpu_count // workers`` torch threads;
or, with a ``scheduler``, on a Dask cluster with one thread per job: ``'dask'`` or ``'local'`` for a
local cluster of ``workers`` processes, or a scheduler address such as ``tcp://host:8786`` (needs
``pip install 'dask[distributed]'`` and a file system shared with the workers; without Dask,
:class:`~RobustDeepLogic.core.errors.InputError`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import as_completed as done
from typing import (
    Any,
    Dict,
    List,
    Optional,
)

from RobustDeepLogic.core.errors import InputError
from RobustDeepLogic.synthesis.subjects import synthesize_subject


def _run_jobs(jobs: List[Dict[str, Any]], workers: int, scheduler: Optional[str]):
    """Yield the results of :func:`synthesize_subject` as jobs finish."""
    if scheduler:
        try:
            from dask.distributed import Client, LocalCluster, as_completed
        except ImportError:
            raise InputError("the Dask scheduler needs dask[distributed]",
                             hint="pip install 'dask[distributed]' into this environment") from None
        if scheduler in ("dask", "local"):
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            cluster = None
            client = Client(scheduler)
        try:
            for job in jobs:
                job["threads"] = 1
            futures = client.map(synthesize_subject, jobs, pure=False)
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return
    if workers <= 1:
        for job in jobs:
            yield synthesize_subject(job)
        return

    threads = max(1, (os.cpu_count() or 1) // workers)
    for job in jobs:
        job["threads"] = threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futures = [ex.submit(synthesize_subject, job) for job in jobs]
        for fut in done(futures):
            yield fut.result()
