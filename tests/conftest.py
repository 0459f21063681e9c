"""Shared test settings: reproducible hypothesis runs, and one compute thread for the whole suite.

The machine is shared and slow to start torch, so a wall-clock deadline would only make
property tests flaky; derandomize makes every run explore the same examples.

CI runs on two cores shared with other work. torch, OpenMP and BLAS each start a thread per
core by default, and on such a machine the oversubscribed threads made small models, t-SNE
and the stepping tests several times slower (10× in places) than one thread does. One
session-wide setting replaces the per-module fixtures that used to do this one by one.

Every test session writes its trained models and stored runs to a fresh folder
(``HAMU_DATA_DIR``, inherited by the CLI and server subprocesses), so a test run never
reads a user's cache nor leaves runs in it, and no result depends on an earlier run.
"""

import os
import shutil
import tempfile

import pytest
import torch
from hypothesis import settings
from threadpoolctl import threadpool_limits

from hamu_core.data.builtin import load_digits_data
from hamu_core.models.architectures import ModelConfig, build_model

settings.register_profile("ci", deadline=None, derandomize=True)
settings.load_profile("ci")


def pytest_configure(config):
    config.hamu_data_dir = tempfile.mkdtemp(prefix="hamu-tests-")
    os.environ["HAMU_DATA_DIR"] = config.hamu_data_dir


def pytest_unconfigure(config):
    shutil.rmtree(config.hamu_data_dir, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """torch and the BLAS/OpenMP pools on one thread for every test, restored at the end."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    """The built-in digits, for tests that need real data and no training."""
    return load_digits_data()


@pytest.fixture(scope="module")
def model(digits):
    """A small untrained MLP for digits: enough to step, map and measure."""
    return build_model(ModelConfig(hidden=(16,)), digits.input_shape, digits.n_classes, seed=0)
