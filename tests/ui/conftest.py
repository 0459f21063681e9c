"""Fixtures of the hamu_ui tests: the digits data and a small untrained MLP, built once per module."""

import pytest

from hamu_core.data.builtin import load_digits_data
from hamu_core.models.architectures import ModelConfig, build_model


@pytest.fixture(scope="module")
def digits():
    return load_digits_data()


@pytest.fixture(scope="module")
def model(digits):
    return build_model(ModelConfig(hidden=(16,)), digits.input_shape, digits.n_classes, seed=0)
