"""The local Dask cluster hl starts: worker processes set up for torch."""

import os

import dask

from hl.pipelines.cluster import connect, local_worker_config


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
