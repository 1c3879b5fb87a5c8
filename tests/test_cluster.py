"""The local Dask cluster hl starts: worker processes set up for torch."""

import os

import dask

from hl.pipelines.cluster import connect, host_threads, local_worker_config, run_tasks


def _worker_setup() -> dict:
    import dask as worker_dask

    return {
        "malloc": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "profile": worker_dask.config.get("distributed.worker.profile.enabled"),
    }


def test_config_drops_malloc_trim_and_sizes_openmp():
    cfg = local_worker_config(3)
    env = cfg["distributed.nanny.pre-spawn-environ"]
    assert env["MALLOC_TRIM_THRESHOLD_"] is None  # Dask's way of leaving a variable unset
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "3"
    assert cfg["distributed.worker.profile.enabled"] is False
    # Dask's own default is untouched
    assert dask.config.get("distributed.nanny.pre-spawn-environ")["MALLOC_TRIM_THRESHOLD_"] == 65536


def test_local_workers_run_with_that_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited values do not win over the worker's thread count
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with connect(None, workers=1) as client:
        (setup,) = client.run(_worker_setup).values()
    assert setup["malloc"] is None
    assert setup["omp"] == str(os.cpu_count() or 1)
    assert setup["profile"] is False


def _job(a: int, b: int, threads: int) -> dict:
    return {"sum": a + b, "threads": threads}


def test_run_tasks_gives_each_task_its_share_of_the_host_cores():
    seen = []
    results = run_tasks(_job, [(1, 2), (3, 4), (5, 6)], None, 2, "hl-test",
                        progress=lambda r, done, total: seen.append((done, total)))
    assert sorted(r["sum"] for r in results) == [3, 7, 11]
    assert {r["threads"] for r in results} == {max(1, (os.cpu_count() or 1) // 2)}
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert host_threads({"elsewhere": 8}) == 1 and host_threads(3) == 3
