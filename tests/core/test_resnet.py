"""ResNet-20: the published shape, the features/head contract, and that it trains and unlearns.

The training and unlearning tests use a narrow width on a small synthetic 32×32 colour set
so they take seconds; the architecture tests check the default (width 16) model itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hamu_core.data.labelled import LabelledData, stratified_test_mask
from hamu_core.evaluation.hardness import per_sample_hardness, per_sample_hardness_loop
from hamu_core.models.architectures import ModelConfig, build_model, count_parameters, model_fingerprint
from hamu_core.models.resnet import BasicBlock
from hamu_core.models.training import TrainConfig, train_model
from hamu_core.rules import gradients as G
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

SHAPE = (3, 32, 32)


def colour_images(n_per_class: int = 24, n_classes: int = 3, seed: int = 0) -> LabelledData:
    """Noisy 32×32 images whose class is the brightest colour channel: learnable in one or two epochs."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(0.0, 0.5, size=(len(y), *SHAPE)).astype(np.float32)
    X[np.arange(len(y)), y] += 1.5  # the whole channel of the class lights up
    return LabelledData(name="colours", kind="image", X=X, y=y.astype(np.int64), ids=np.arange(len(y), dtype=np.int64),
                        is_test=stratified_test_mask(y, test_fraction=0.25, seed=seed),
                        classes=("red", "green", "blue")[:n_classes])


def accuracy(model: nn.Module, data: LabelledData, ids: np.ndarray) -> float:
    x, y = data.tensors(ids)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_default_is_the_published_resnet20():
    model = build_model(ModelConfig(arch="resnet20"), SHAPE, 10)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 9
    assert [b.conv2.out_channels for b in blocks] == [16] * 3 + [32] * 3 + [64] * 3
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 20  # 19 weighted 3×3 conv layers plus the Linear head: the "20" in the name
    assert 260_000 <= count_parameters(model) <= 280_000


@pytest.mark.parametrize("width", [4, 16])
def test_features_feed_the_head_and_shapes_shrink_by_four(width):
    model = build_model(ModelConfig(arch="resnet20", resnet_width=width), SHAPE, 7)
    x = torch.rand(3, *SHAPE)
    with torch.no_grad():
        features = model.features(x)
        assert features.shape == (3, 4 * width) == (3, model.head.in_features)
        assert torch.equal(model(x), model.head(features))
        assert model.stages(model.stem(x)).shape == (3, 4 * width, 8, 8)


def test_resnet_refuses_flat_inputs_and_bad_width():
    with pytest.raises(ValueError, match="resnet20.*image inputs"):
        build_model(ModelConfig(arch="resnet20"), (64,), 10)
    with pytest.raises(ValueError, match="resnet_width"):
        ModelConfig(arch="resnet20", resnet_width=0)


def test_seed_alone_fixes_the_weights():
    torch.manual_seed(1)
    a = build_model(ModelConfig(arch="resnet20", resnet_width=4), SHAPE, 3, seed=2)
    torch.manual_seed(9)
    b = build_model(ModelConfig(arch="resnet20", resnet_width=4), SHAPE, 3, seed=2)
    c = build_model(ModelConfig(arch="resnet20", resnet_width=4), SHAPE, 3, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.head.weight, c.head.weight)
    assert model_fingerprint(a) == model_fingerprint(b) != model_fingerprint(c)  # 0-dim BatchNorm counters included


def test_eval_outputs_of_a_sample_do_not_depend_on_its_batch():
    """In eval mode BatchNorm uses running statistics, so per-sample losses (hardness, attacks) are well defined."""
    model = build_model(ModelConfig(arch="resnet20", resnet_width=4), SHAPE, 3)
    x = torch.randn(6, *SHAPE)
    with torch.no_grad():
        whole = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(whole, alone, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def trained():
    data = colour_images()
    config = ModelConfig(arch="resnet20", resnet_width=4)
    recipe = TrainConfig(epochs=8, batch_size=16, lr=1e-2)  # 32 batches: BatchNorm's running statistics settle
    model = train_model(data, data.train_ids, config, recipe)
    return data, model


def test_resnet_trains_on_small_colour_images(trained):
    data, model = trained
    untrained = build_model(ModelConfig(arch="resnet20", resnet_width=4), SHAPE, data.n_classes)
    assert not model.training
    assert accuracy(model, data, data.train_ids) >= 0.9 > accuracy(untrained, data, data.train_ids)
    assert accuracy(model, data, data.test_ids) >= 0.8


def test_hamu_unlearns_a_class_and_leaves_batchnorm_statistics_alone(trained):
    data, model = trained
    forget = data.train_ids[data.y[data.rows(data.train_ids)] == 0]
    retain = np.setdiff1d(data.train_ids, forget)
    rule = make_rule("hamu-q", mode="full", radius=0.5, constraint=0.05, clip_norm=None)
    base = [p.detach().clone() for p in model.parameters()]
    run = UnlearningRun(rule, model=model, retain=data.tensors(retain), forget=data.tensors(forget), seed=0)
    buffers = {k: v.clone() for k, v in run.model_.named_buffers()}
    records = run.run(3)
    assert len(records) == 3
    assert records[-1].forget_loss_after > records[0].forget_loss_before + 0.1
    assert all(r.step_norm <= 0.5 * (1 + 1e-5) for r in records)
    assert all(torch.equal(v, buffers[k]) for k, v in run.model_.named_buffers())
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), base))  # the run works on its own copy
    assert accuracy(run.model_, data, forget) < accuracy(model, data, forget)


def test_per_sample_hardness_matches_the_loop_on_resnet(trained):
    data, model = trained
    forget = data.train_ids[:6]
    retain = data.train_ids[6:]
    _, g_r = G.loss_and_gradients(model, *data.tensors(retain))
    x, y = data.tensors(forget)
    fast = per_sample_hardness(model, x, y, g_r, chunk_size=4, jvp_chunk_size=4)
    slow = per_sample_hardness_loop(model, x, y, g_r)
    torch.testing.assert_close(fast.kappa, slow.kappa, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(fast.cos, slow.cos, rtol=1e-3, atol=1e-5)
