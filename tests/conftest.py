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
