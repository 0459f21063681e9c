"""Maps on disk (hamu_core.evaluation.map_cache): computed once, read back whole, keyed by what decides them."""

import numpy as np
import pandas as pd

from hamu_core.evaluation.embedding import embed
from hamu_core.evaluation.map_cache import cached_map, load_map, map_key, map_path, save_map, stored_map
from hamu_core.models.architectures import ModelConfig, build_model


def test_a_map_is_computed_once_then_read_back_equal(digits, model, tmp_path):
    settings = dict(method="tsne", seed=0, max_points=120)
    assert stored_map(model, digits, folder=tmp_path, **settings) is None  # looking never computes
    first = cached_map(model, digits, folder=tmp_path, **settings)
    pd.testing.assert_frame_equal(first, embed(model, digits, **settings), check_dtype=False)
    stored = stored_map(model, digits, folder=tmp_path, **settings)
    pd.testing.assert_frame_equal(stored, first, check_dtype=False)
    assert list(tmp_path.joinpath("maps").iterdir()) == [map_path(map_key(model, digits, **settings), tmp_path)]


def test_the_key_changes_with_every_input_that_decides_the_map(digits, model):
    base = dict(method="tsne", seed=0, max_points=100)
    other_model = build_model(ModelConfig(hidden=(16,)), digits.input_shape, digits.n_classes, seed=1)
    keys = {map_key(model, digits, **base), map_key(other_model, digits, **base),
            map_key(model, digits, **{**base, "method": "umap"}), map_key(model, digits, **{**base, "seed": 1}),
            map_key(model, digits, **{**base, "max_points": 101})}
    assert len(keys) == 5 and all(len(k) == 32 and k.isalnum() for k in keys)  # a file name from hashes only
    assert map_key(model, digits, **base) == map_key(model, digits, **base)


def test_text_and_boolean_columns_survive_the_round_trip(tmp_path):
    frame = pd.DataFrame({"id": np.array([3, 1], dtype=np.int64), "x": [0.5, -1.25], "class_name": ["three", "one"],
                          "drawn": [True, False]})
    save_map(frame, tmp_path / "m.npz")
    back = load_map(tmp_path / "m.npz")
    pd.testing.assert_frame_equal(back, frame)


def test_an_unreadable_file_counts_as_absent_and_is_replaced(digits, model, tmp_path):
    settings = dict(method="pca", seed=0, max_points=50)
    path = map_path(map_key(model, digits, **settings), tmp_path)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a file")
    assert stored_map(model, digits, folder=tmp_path, **settings) is None
    cached_map(model, digits, folder=tmp_path, **settings)
    assert stored_map(model, digits, folder=tmp_path, **settings) is not None
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
