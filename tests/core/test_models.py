"""The MLP and CNN: sizes, the features/head contract, seeded initialisation and fingerprints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hamu_core.models.architectures import ModelConfig, build_model, count_parameters, eval_mode, model_fingerprint

SHAPES = [(1, 8, 8), (1, 28, 28)]


@pytest.mark.parametrize("shape", SHAPES)
def test_cnn_size_is_small(shape):
    assert 20_000 <= count_parameters(build_model(ModelConfig(arch="cnn"), shape, 10)) <= 100_000


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize("shape", SHAPES)
def test_features_feed_the_last_linear_head(arch, shape):
    model = build_model(ModelConfig(arch=arch), shape, 10)
    x = torch.rand(5, *shape)
    features = model.features(x)
    assert features.shape == (5, model.head.in_features)
    assert list(model.modules())[-1] is model.head and isinstance(model.head, nn.Linear)
    assert torch.equal(model(x), model.head(features))
    assert model(x).shape == (5, 10)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_no_batchnorm_or_dropout_so_modes_agree(arch):
    model = build_model(ModelConfig(arch=arch), (1, 8, 8), 10)
    assert not any(isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)) for m in model.modules())
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model.train()(x), model.eval()(x))


def test_mlp_on_tabular_inputs():
    model = build_model(ModelConfig(hidden=(16, 8)), (7,), 3)
    assert model(torch.rand(4, 7)).shape == (4, 3) and model.features(torch.rand(4, 7)).shape == (4, 8)


def test_seed_alone_fixes_initial_weights():
    torch.manual_seed(1)
    a = build_model(ModelConfig(arch="cnn"), (1, 8, 8), 10, seed=5)
    torch.manual_seed(2)
    b = build_model(ModelConfig(arch="cnn"), (1, 8, 8), 10, seed=5)
    c = build_model(ModelConfig(arch="cnn"), (1, 8, 8), 10, seed=6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert model_fingerprint(a) == model_fingerprint(b) != model_fingerprint(c)


def test_fingerprint_follows_the_weights():
    model = build_model(ModelConfig(), (1, 8, 8), 10)
    before = model_fingerprint(model)
    assert len(before) == 16
    with torch.no_grad():
        model.head.bias[0] += 1e-6
    assert model_fingerprint(model) != before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"arch": "resnet"}, "arch"), ({"hidden": ()}, "hidden"), ({"hidden": (8, 0)}, "hidden"),
     ({"channels": (8,)}, "channels"), ({"cnn_hidden": 0}, "cnn_hidden")],
)
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**kwargs)


def test_cnn_needs_images_and_two_classes():
    with pytest.raises(ValueError, match="arch 'cnn' needs image inputs"):
        build_model(ModelConfig(arch="cnn"), (64,), 10)
    with pytest.raises(ValueError, match="n_classes must be at least 2"):
        build_model(ModelConfig(), (64,), 1)


def test_eval_mode_restores_the_callers_mode_even_after_an_error():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)).train()
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model) as inside:
            assert inside is model and not model.training and not model[1].training
            raise RuntimeError("inside")
    assert model.training and model[1].training
    with eval_mode(model.eval()):
        pass
    assert not model.training
