"""Shared fixtures of the unit tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module on one intra-op thread: the tests' tiny batched ops are fastest that way
    on a shared machine, and reductions keep one order. The previous count is restored."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked ``gpu`` unless CUDA is usable (a driver and a device)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marker gpu); no usable GPU here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
