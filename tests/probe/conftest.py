"""Shared by the probe's tests: one torch thread, one fixed set of land points."""

from __future__ import annotations

import pytest
import torch

from clay_exp.probe import TASKS, TaskData, sample_points


@pytest.fixture(autouse=True, scope="package")
def _one_thread():
    """The probe's own default (scripts/probe.py --threads 1): tiny fits stall on two busy threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="package")
def land_data() -> TaskData:
    return sample_points(TASKS["land"], n_train=600, n_test=400)
