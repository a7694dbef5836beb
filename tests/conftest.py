"""Test set-up shared by every tier.

- TRITON_INTERPRET=1 must be set before any module defining Triton kernels is imported, so kernel tests run on
  the CPU interpreter where there is no GPU.
- Tests marked `gpu` are skipped where CUDA is absent; `slow` tests run by default (`-m "not slow"` skips them).
- One intra-op thread by default: on 2-core CI machines oversubscription makes small models several times slower.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("GENLAB_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(int(os.environ["GENLAB_THREADS"]))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def seed():
    torch.manual_seed(0)
    return 0


@pytest.fixture
def python():
    """The interpreter running the tests (the project's venv), for subprocess smoke tests."""
    return sys.executable


@pytest.fixture
def repo_root():
    return ROOT
