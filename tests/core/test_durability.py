"""Durability checks: the quantizer against a hand computation and its error bound, relearning on
small digits models, and the reading's words on crafted frames.

The relearning models are real but small (an MLP (32,) trained 10 epochs on digits): the
original, a model trained without class 3 (the retrained model), and a *shallowly* unlearned
one, the original with its class-3 bias lowered just enough that no 3 is recognised. The
last is what a durability check must catch: it scores 0 % like the retrained model, yet its
knowledge is one bias away, and a few shots bring it back.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from hamu_core.audit.durability import (
    FLOAT_BITS,
    MODES,
    attack_samples,
    comes_back,
    difference_interval,
    durability_reading,
    quantization_table,
    quantize,
    quantize_tensor,
    relearning_curves,
    reverts,
)
from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_class
from hamu_core.evaluation.target import per_sample
from hamu_core.models.architectures import ModelConfig, build_model
from hamu_core.models.training import TrainConfig, retain_ids, train_model


@pytest.mark.parametrize("bits, expected", [(4, [2, -2, 1, -7]), (8, [38, -32, 13, -127])])
def test_quantize_tensor_matches_a_hand_computation(bits, expected):
    # s = 1 / L with L = 7 (4 bits) or 127 (8 bits):
    # w/s = 7w → 2.1, −1.75, 0.7, −7; 127w → 38.1, −31.75, 12.7, −127
    weights = torch.tensor([0.3, -0.25, 0.1, -1.0])
    levels = 2 ** (bits - 1) - 1
    assert torch.allclose(quantize_tensor(weights, bits), torch.tensor(expected, dtype=torch.float32) / levels)


@pytest.mark.parametrize("bits", [2, 3, 4, 8, 12])
@pytest.mark.parametrize("seed", range(5))
def test_quantize_tensor_moves_each_weight_at_most_half_a_step_onto_the_integer_grid(bits, seed):
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(7, 5, generator=generator) * 10 ** (seed - 2)
    levels = 2 ** (bits - 1) - 1
    scale = weights.abs().max() / levels
    quantized = quantize_tensor(weights, bits)
    assert ((weights - quantized).abs() <= scale / 2 * (1 + 1e-5)).all()
    grid = quantized / scale
    assert torch.allclose(grid, grid.round(), atol=1e-4) and grid.abs().max() <= levels + 1e-4
    assert quantized.abs().max() == pytest.approx(weights.abs().max().item(), rel=1e-6)  # the largest is kept


def test_quantize_tensor_leaves_an_all_zero_tensor_alone():
    assert torch.equal(quantize_tensor(torch.zeros(3, 2), 4), torch.zeros(3, 2))


def test_quantize_rounds_weight_tensors_of_a_copy_and_keeps_biases():
    model = build_model(ModelConfig(hidden=(16,)), (64,), 10, seed=0)
    before = copy.deepcopy(model.state_dict())
    quantized = quantize(model, 4)
    for name, tensor in quantized.state_dict().items():
        assert torch.equal(model.state_dict()[name], before[name])  # the model passed in is unchanged
        expected = before[name] if tensor.dim() == 1 else quantize_tensor(before[name], 4)
        assert torch.equal(tensor, expected), name
    for bits in (1, 17, 4.0):
        with pytest.raises(ValueError, match="bits"):
            quantize(model, bits)


def test_attack_samples_hold_out_the_shots_and_keep_one_sample_measurable():
    held, rest = attack_samples(np.arange(100, 120), 5, seed=0)
    assert len(held) == 5 and len(rest) == 15 and not np.intersect1d(held, rest).size
    assert np.array_equal(np.union1d(held, rest), np.arange(100, 120))
    assert attack_samples(np.array([7, 9]), 5, seed=0)[0].size == 1  # at least one forget sample is measured
    assert [a.tolist() for a in attack_samples(np.array([7]), 5, seed=0)] == [[7], [7]]
    with pytest.raises(ValueError, match="shots"):
        attack_samples(np.arange(10), 0, seed=0)


@pytest.fixture(scope="module")
def small_models():
    """Digits, class 3's ids and three small models: original, retrained without class 3, shallowly unlearned."""
    data = load_digits_data()
    forget = select_class(data, 3)
    config, recipe = ModelConfig(hidden=(32,)), TrainConfig(epochs=10)
    original = train_model(data, data.train_ids, config, recipe)
    retrain = train_model(data, retain_ids(data, forget), config, recipe)
    x, _ = data.tensors(forget)
    with torch.no_grad():
        logits = original(x)
        others = logits.clone()
        others[:, 3] = -torch.inf
        margin = float((logits[:, 3] - others.max(1).values).max())
    shallow = copy.deepcopy(original)
    with torch.no_grad():
        shallow.head.bias[3] -= margin + 1.0  # no 3 is recognised any more, yet nothing else changed
    return data, forget, {"original": original, "shallow": shallow, "retrain": retrain}


def final(curves: pd.DataFrame, model: str, mode: str) -> float:
    rows = curves[(curves["model"] == model) & (curves["mode"] == mode)]
    return float(rows.loc[rows["step"].idxmax(), "forget_acc"])


def test_relearning_curves_are_tidy_reproducible_and_leave_the_models_alone(small_models):
    data, forget, models = small_models
    weights = {name: copy.deepcopy(m.state_dict()) for name, m in models.items()}
    curves = relearning_curves(models, data, forget, steps=6, shots=5, seed=0)
    assert list(curves.columns) == ["model", "mode", "step", "forget_acc", "forget_loss", "n_forget"]
    assert len(curves) == len(models) * len(MODES) * 7 and set(curves["n_forget"]) == {len(forget) - 5}
    pd.testing.assert_frame_equal(curves, relearning_curves(models, data, forget, steps=6, shots=5, seed=0))
    other = relearning_curves(models, data, forget, steps=6, shots=5, seed=1)
    assert not np.allclose(other["forget_loss"], curves["forget_loss"])  # other shots and batches
    for name, model in models.items():
        assert all(torch.equal(model.state_dict()[k], v) for k, v in weights[name].items())
    start = curves[curves["step"] == 0].set_index(["model", "mode"])["forget_acc"]
    for name, model in models.items():  # step 0 is the untouched model on the measured forget samples
        _, rest = attack_samples(forget, 5, seed=0)
        assert start[(name, "retain")] == start[(name, "retain+forget")] == per_sample(model, rest,
                                                                                        *data.tensors(rest))[0].mean()


def test_the_original_relearns_faster_than_a_model_that_never_saw_the_samples(small_models):
    data, forget, models = small_models
    curves = relearning_curves(models, data, forget, steps=30, shots=5, seed=0)
    shots = curves[curves["mode"] == "retain+forget"].pivot(index="step", columns="model", values="forget_acc")
    assert (shots["original"] > shots["retrain"] + 0.5).all()
    # The shallow model starts where the retrained one does, then its knowledge comes back from five samples.
    assert shots.loc[0, "shallow"] == shots.loc[0, "retrain"] == 0.0
    n = int(curves["n_forget"].iloc[0])
    assert comes_back(final(curves, "shallow", "retain+forget"), final(curves, "retrain", "retain+forget"), n)
    assert final(curves, "retrain", "retain") == 0.0  # retain data alone teaches no 3s
    reading = durability_reading(curves, quantization_table(models, data, forget, bits=(8,)), len(forget))
    relearning = [s for s in reading if s.startswith("Relearning")]
    assert len(relearning) == 2 and "The forgetting comes back" in relearning[1]


def test_quantization_table_measures_every_model_at_every_precision(small_models):
    data, forget, models = small_models
    table = quantization_table(models, data, forget, bits=(8, 4), seed=0)
    assert len(table) == len(models) * 3 and set(table["bits"]) == {FLOAT_BITS, 8, 4}
    floats = table[table["bits"] == FLOAT_BITS].set_index("model")
    for name, model in models.items():
        assert floats.loc[name, "forget_acc"] == per_sample(model, forget, *data.tensors(forget))[0].mean()
    assert ((table["mia_low"] <= table["mia_auc"]) & (table["mia_auc"] <= table["mia_high"])).all()
    eight = table[table["bits"] == 8].set_index("model")
    assert (eight["forget_acc"] - floats["forget_acc"]).abs().max() < 0.05  # int8 barely changes a small MLP


def test_difference_interval_matches_newcombes_worked_example():
    # Newcombe 1998, Table II, example (a): 56/70 − 48/80, method 10 (score, no continuity correction)
    low, high = difference_interval(56 / 70, 70, 48 / 80, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_comes_back_when_the_difference_to_the_retrained_model_is_beyond_noise():
    n = 100
    assert comes_back(0.40, 0.02, n) and comes_back(1.0, 0.0, n)
    assert not comes_back(0.08, 0.05, n)  # 8 of 100 against 5 of 100: noise
    assert not comes_back(1 / 146, 0.0, 146)  # one sample's worth
    assert not comes_back(0.0, 0.0, n) and not comes_back(1.0, 1.0, n)
    assert not comes_back(0.0, 0.40, n)  # relearning less than retraining is no comeback


def test_reverts_needs_a_move_toward_the_original_beyond_noise_and_beyond_the_retrained_models_move():
    n = 146
    assert reverts(0.0, 0.30, 1.0, 0.0, 0.0, n)  # the unlearned model alone jumps toward the original
    assert not reverts(0.0, 1 / n, 1.0, 0.0, 0.0, n)  # one sample's worth: noise
    assert not reverts(0.0, 0.0, 1.0, 0.0, 0.0, n) and not reverts(1.0, 1.0, 0.0, 1.0, 1.0, n)  # no move at all
    assert not reverts(0.0, 0.30, 1.0, 0.0, 0.28, n)  # the retrained model moved as much: rounding, not memory
    assert not reverts(1.0, 0.70, 1.0, 0.0, 0.0, n)  # already at the original's: nothing to revert
    assert reverts(1.0, 0.60, 0.2, 0.9, 0.9, n) and not reverts(1.0, 0.60, 0.2, 0.9, 0.5, n)  # from above


def crafted_curves(unlearned_final: float, retrain_final: float) -> pd.DataFrame:
    values = {"original": (1.0, 1.0), "unlearned": (0.0, unlearned_final), "retrain": (0.0, retrain_final)}
    return pd.DataFrame([{"model": model, "mode": mode, "step": step, "forget_acc": acc, "forget_loss": 1.0,
                          "n_forget": 100}
                         for model, ends in values.items() for mode in MODES for step, acc in enumerate(ends)])


def crafted_table(unlearned_4bit: float, retrain_4bit: float) -> pd.DataFrame:
    forget = {"original": (1.0, 1.0, 1.0), "unlearned": (0.0, 0.0, unlearned_4bit),
              "retrain": (0.0, 0.0, retrain_4bit)}
    return pd.DataFrame([{"model": model, "bits": bits, "forget_acc": acc, "retain_acc": 0.99, "test_acc": 0.9,
                          "forget_loss": 1.0, "mia_auc": 0.5, "mia_low": 0.45, "mia_high": 0.55}
                         for model, accs in forget.items() for bits, acc in zip((FLOAT_BITS, 8, 4), accs)])


def test_reading_says_comes_back_and_reverts_with_the_numbers():
    reading = durability_reading(crafted_curves(0.40, 0.02), crafted_table(0.35, 0.0), 146)
    assert len(reading) == 4  # two relearning modes, two precisions, one unlearned model
    assert "0.0% → 40.0%" in reading[0] and "0.0% → 2.0%" in reading[0]
    assert "The forgetting comes back" in reading[0]
    assert reading[2].startswith("Quantized to 8 bits") and "The forgetting survives" in reading[2]
    assert reading[3].startswith("Quantized to 4 bits") and "0.0% → 35.0%" in reading[3]
    assert "The forgetting reverts" in reading[3] and "the original's 100.0%" in reading[3]


def test_reading_says_holds_and_survives_when_the_retrained_model_does_the_same():
    reading = durability_reading(crafted_curves(0.40, 0.38), crafted_table(0.35, 0.33), 146)
    assert all("The forgetting holds" in s for s in reading[:2])
    assert all("The forgetting survives" in s for s in reading[2:])


def test_reading_needs_the_retrained_model():
    curves = crafted_curves(0.4, 0.0)
    with pytest.raises(ValueError, match="retrain"):
        durability_reading(curves[curves["model"] != "retrain"], crafted_table(0.0, 0.0), 146)
