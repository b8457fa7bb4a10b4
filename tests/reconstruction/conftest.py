"""Shared fixtures of the reconstruction tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def torch_threads():
    """torch, set to the test thread count for one test and restored after.

    Two threads as on CI; QDM_TEST_TORCH_THREADS=1 avoids OpenMP spin-waiting on a loaded machine.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("QDM_TEST_TORCH_THREADS", "2")))
    yield torch
    torch.set_num_threads(previous)
