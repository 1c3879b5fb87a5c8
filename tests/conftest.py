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
