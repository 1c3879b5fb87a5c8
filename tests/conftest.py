import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests assert values, not speed: a loaded 2-core machine must not fail them on hypothesis' 200-ms deadline.
settings.register_profile("hl", deadline=None)
settings.load_profile("hl")

# Two cores here: keep each test process to one BLAS/torch thread unless a test asks otherwise.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def local_scheduler():
    """The address of one local Dask cluster shared by the tests that need a cluster but not a fresh one of their
    own: two worker processes of one task slot each, set up as hl sets up its local workers, so tasks run one
    torch thread each (two threads per task on two busy cores cost several times more than one). One slot per
    process: tasks that seed torch's process-wide generator never run side by side in one process."""
    import logging

    import dask
    from distributed import LocalCluster

    from hl.pipelines.cluster import local_worker_config, worker_env

    with dask.config.set(local_worker_config(1)):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR, env=worker_env(1))
    with cluster:
        yield cluster.scheduler_address
