"""The Dask cluster every stage runs on, and the one way hl submits work to it.

    results = run_tasks(train_task, [(spec, run, domain, seed), ...], scheduler, workers, "hl-train")

:func:`run_tasks` runs ``fn(*job, threads)`` per job on an existing scheduler when given, else on a LocalCluster
set up for torch (:func:`connect`); extraction, segment and pixel training all go through it.

A LocalCluster starts ``workers`` processes of one task thread each. Three Dask defaults that slow torch are
changed for those processes (measured with ``benchmarks/extract.py`` and by timing the same forward passes in
and out of a worker):

* the nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes glibc hand freed memory back to
  the system at once and fixes its mmap threshold: every large tensor is then mapped and page-faulted anew.
  The PANN forward ran 1.25x and the weight-free ``stats`` extractor 2.3x slower so; here it is left unset;
* ``OMP_NUM_THREADS=1`` (and MKL likewise) is set to the torch threads each worker's tasks will use
  (cores // workers), so the OpenMP runtime starts at that size;
* the worker's statistical profiler (a thread sampling every task's stack every 10 ms) is off.

With ``scheduler`` the workers are the user's own (``dask worker ...``) and are left as they are; start them
with ``dask worker --no-nanny ...`` (no pre-spawn environment), or a Dask config whose
``distributed.nanny.pre-spawn-environ`` leaves ``MALLOC_TRIM_THRESHOLD_`` out, for the same speed.

A LocalCluster serves Dask's dashboard on 127.0.0.1 only (port 8787, or a free one when that is taken); its
address and the ssh tunnel that reaches it from another machine are logged at INFO on this module's logger (the
``hl`` command shows them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hl.common import HLError, one_line

log = logging.getLogger(__name__)


def local_worker_config(torch_threads: int) -> dict:
    """The Dask config under which hl starts its local workers (see the module docstring)."""
    import dask
    import distributed  # noqa: F401 - registers the distributed.* defaults

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ") or {})
    env["MALLOC_TRIM_THRESHOLD_"] = None  # None: not set for the worker (Dask's own convention)
    env.update(worker_env(torch_threads))
    return {"distributed.nanny.pre-spawn-environ": env, "distributed.worker.profile.enabled": False}


def worker_env(torch_threads: int) -> dict[str, str]:
    """Thread variables for a worker process whose tasks use ``torch_threads`` threads. Passed to the nanny as
    ``env`` too, which wins over values inherited from this process's environment."""
    n = str(max(1, int(torch_threads)))
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n}


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int = 1, resources: dict | None = None) -> Iterator:
    """A ``distributed.Client`` for ``scheduler``, or for a fresh LocalCluster of ``workers`` processes
    (closed on exit)."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise HLError(f"cannot reach the Dask scheduler at {scheduler} ({one_line(exc)})") from None
        try:
            yield client
        finally:
            # A client that lost its scheduler logs its cancelled reconnection as an error while closing:
            # the caller says it in one line instead.
            lost = client.status != "running"
            log = logging.getLogger("distributed.client")
            level = log.level
            log.setLevel(logging.CRITICAL if lost else level)
            try:
                client.close()
            finally:
                log.setLevel(level)
        return
    workers = max(1, int(workers))
    threads = max(1, (os.cpu_count() or 1) // workers)
    dashboard = dashboard_address() if _has_bokeh() else None
    with dask.config.set(local_worker_config(threads)):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=dashboard,
                               resources=resources, silence_logs=logging.ERROR, env=worker_env(threads))
    announce_dashboard(cluster if dashboard else None)
    try:
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


DASHBOARD_PORT = 8787  # Dask's usual port; the dashboard listens on 127.0.0.1 only (it has no authentication)


def dashboard_address() -> str:
    """127.0.0.1:8787, or 127.0.0.1:0 (a free port) when 8787 is taken (e.g. by another hl run)."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", DASHBOARD_PORT))
        except OSError:
            return "127.0.0.1:0"
    return f"127.0.0.1:{DASHBOARD_PORT}"


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def dashboard_lines(link: str, host: str | None = None, user: str | None = None) -> list[str]:
    """The dashboard's address and one line on reaching it from another machine (an ssh tunnel)."""
    import getpass
    import socket
    from urllib.parse import urlsplit

    port = urlsplit(link).port or 8787
    host = host or socket.gethostname()
    try:
        user = user or getpass.getuser()
    except (KeyError, OSError):
        user = "USER"
    return [f"Dask dashboard: {link} (this machine only)",
            f"  from another machine: ssh -N -L {port}:127.0.0.1:{port} {user}@{host}, "
            f"then open http://localhost:{port}/status"]


def announce_dashboard(cluster) -> None:
    """Log where the dashboard of a local `cluster` is (INFO), or why there is none."""
    if cluster is None:
        log.info("Dask dashboard: not started (install bokeh to have one)",
                 extra={"hl_fields": {"event": "dashboard", "address": None, "reason": "bokeh is not installed"}})
        return
    link = cluster.dashboard_link
    first, tunnel = dashboard_lines(link)
    log.info("%s\n%s", first, tunnel, extra={"hl_fields": {"event": "dashboard", "address": link,
                                                           "tunnel": tunnel.split(": ", 1)[1]}})


def threads_per_host(client) -> dict[str, int]:
    """{hostname: torch threads per task} so that on every host tasks x threads never exceed its cores."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    cores = client.run(os.cpu_count)
    hostnames = client.run(lambda: __import__("socket").gethostname())
    per_host: dict[str, list[str]] = {}
    for addr, w in info.items():
        per_host.setdefault(w.get("host", addr), []).append(addr)
    out = {}
    for addrs in per_host.values():
        slots = sum(info[a]["nthreads"] for a in addrs)
        host_cores = max(cores.get(a, 1) or 1 for a in addrs)
        for a in addrs:
            out[hostnames[a]] = max(1, host_cores // max(1, slots))
    return out


def host_threads(threads: int | dict[str, int]) -> int:
    """This host's entry of a :func:`threads_per_host` mapping (a plain int is used as it is)."""
    import socket

    n = threads.get(socket.gethostname(), 1) if isinstance(threads, dict) else threads
    return max(1, int(n))


def _with_threads(fn: Callable[..., Any], threads: dict[str, int], *job) -> Any:
    return fn(*job, host_threads(threads))


def _scheduler_lost(client, exc: BaseException) -> bool:
    """True when a task's exception says the client lost its scheduler (the task itself did not fail)."""
    import asyncio
    import concurrent.futures

    cancelled = isinstance(exc, asyncio.CancelledError | concurrent.futures.CancelledError)
    return cancelled and ("scheduler-connection-lost" in str(exc) or client.status != "running")


def run_tasks(fn: Callable[..., Any], jobs: Sequence[tuple], scheduler: str | None = None, workers: int = 1,
              key_prefix: str = "hl", progress: Callable[[Any, int, int], None] | None = None, *,
              resources: dict | None = None, topics: dict[str, Callable] | None = None,
              on_error: Callable[[tuple, BaseException], Any] | None = None) -> list:
    """The one way hl submits work: ``fn(*job, threads)`` for every job as a Dask task, on ``workers`` local
    processes (a LocalCluster, closed afterwards) or on ``scheduler``'s workers. ``threads`` is the torch
    threads a task may use so that tasks x threads fit the cores of the host it runs on.

    Results come in completion order; ``progress(result, done, total)`` is called after each. Tasks carry
    ``resources`` (e.g. ``{"GPU": 1}``, and a local cluster's workers offer them); ``topics`` subscribes
    handlers to worker events (``worker.log_event``). A task that raises ends the call with that exception,
    unless ``on_error(job, exception)`` turns it into a result."""
    from distributed import as_completed

    results: list = []
    if not jobs:
        return results
    with connect(scheduler, max(1, min(len(jobs), workers)), resources=resources) as client:
        threads = threads_per_host(client)
        for topic, handler in (topics or {}).items():
            client.subscribe_topic(topic, handler)
        token = uuid.uuid4().hex[:8]
        futures = {client.submit(_with_threads, fn, threads, *job, key=f"{key_prefix}-{i}-{token}", pure=False,
                                 resources=resources): job
                   for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as exc:
                if _scheduler_lost(client, exc):
                    raise HLError(f"lost the Dask scheduler at {scheduler or 'the local cluster'} after "
                                  f"{len(results)} of {len(jobs)} tasks; what finished is kept: run again to "
                                  f"resume") from None
                if on_error is None:
                    raise
                result = on_error(futures[fut], exc)
            results.append(result)
            if progress is not None:
                progress(result, len(results), len(jobs))
    return results
