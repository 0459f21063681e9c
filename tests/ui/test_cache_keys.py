"""Streamlit computes every cache key from the objects themselves (``cache.HASH_FUNCS``).

Before, callers passed a string key beside an unhashed object, and nothing stopped a caller
from passing one model under another model's key. Now a model's key is its weights'
fingerprint, computed by ``TrainedModel`` itself, and a dataset's is its content's.
"""

import copy
import dataclasses

import numpy as np
import pytest
import torch

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_core.models.architectures import ModelConfig, TrainedModel, build_model, model_fingerprint
from hamu_ui import cache

DIGITS = load_digits_data()


def fresh_model(seed: int) -> torch.nn.Module:
    return build_model(ModelConfig(), DIGITS.input_shape, len(DIGITS.classes), seed=seed)


def test_a_trained_model_key_is_computed_never_given():
    model = fresh_model(0)
    assert TrainedModel(model).key == model_fingerprint(model)
    with pytest.raises(TypeError):
        TrainedModel(model, "someone else's key")


def test_two_models_never_share_a_cached_result():
    """Same data, same forget set, same seed: only the weights differ, and so do the cached answers."""
    a = fresh_model(0)
    b = copy.deepcopy(a)
    with torch.no_grad():
        next(b.parameters()).add_(1.0)
    forget = select_class(DIGITS, 3)
    first = cache.model_point(DIGITS, TrainedModel(a), forget, 0)
    second = cache.model_point(DIGITS, TrainedModel(b), forget, 0)
    assert first != second
    assert cache.model_point(DIGITS, TrainedModel(copy.deepcopy(a)), forget, 0) == first  # same weights: a hit


def test_the_dataset_is_keyed_by_its_content():
    DIGITS.fingerprint()  # computed and kept on the object; a changed copy must not inherit it
    relabelled = dataclasses.replace(DIGITS, y=np.roll(DIGITS.y, 1))
    model = TrainedModel(fresh_model(1))
    assert relabelled.fingerprint() != DIGITS.fingerprint()
    assert cache.test_accuracy(relabelled, model) != cache.test_accuracy(DIGITS, model)
