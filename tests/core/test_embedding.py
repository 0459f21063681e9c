"""Feature maps, annotation, neighbours, alignment and CKA (hamu_core.evaluation.embedding)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hamu_core.data.labelled import LabelledData, stratified_test_mask
from hamu_core.evaluation.embedding import (
    annotate,
    embed,
    forward_batched,
    ids_in_region,
    inside_polygon,
    layer_cka,
    linear_cka,
    linked_embeddings,
    nearest_retain_neighbours,
    procrustes_align,
    project,
)


class Projector(nn.Module):
    """features = ReLU(x W + b), logits = features H: a fixed random model (embeddings need no training)."""

    def __init__(self, d: int, width: int, c: int, seed: int = 0, rotate: torch.Tensor | None = None) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.body = nn.Linear(d, width)
        self.head = nn.Linear(width, c)
        for p in self.parameters():
            nn.init.normal_(p, generator=generator)
        self.rotate = rotate  # optional orthogonal map applied to the features

    def features(self, x):
        f = torch.relu(self.body(x))
        return f if self.rotate is None else f @ self.rotate

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def _data(n: int = 150, d: int = 6, c: int = 3) -> LabelledData:
    rng = np.random.default_rng(0)
    y = rng.integers(0, c, n)
    X = (3 * rng.normal(size=(c, d))[y] + rng.normal(size=(n, d))).astype(np.float32)
    return LabelledData("toy", "tabular", X, y, np.arange(n) * 2 + 100, stratified_test_mask(y), ("r", "g", "b"))


DATA = _data()
FORGET = DATA.train_ids[:12]


def test_forward_batched_matches_one_pass_and_restores_the_mode():
    model = Projector(6, 16, 3).train()
    x, _ = DATA.tensors(DATA.ids)
    torch.testing.assert_close(forward_batched(model, x, batch_size=7), model(x).detach())
    torch.testing.assert_close(forward_batched(model, x, features=True, batch_size=7), model.features(x).detach())
    assert model.training


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embed_frame_is_complete_and_deterministic(method):
    model = Projector(6, 16, 3)
    frame = embed(model, DATA, method=method, seed=1)
    assert list(frame.columns) == ["id", "x", "y", "label", "class_name", "split", "drawn"]
    assert frame["drawn"].all()
    np.testing.assert_array_equal(frame["id"], np.sort(DATA.ids))
    rows = DATA.rows(frame["id"].to_numpy())
    np.testing.assert_array_equal(frame["label"], DATA.y[rows])
    assert frame["class_name"].tolist() == [DATA.classes[label] for label in DATA.y[rows]]
    assert (frame["split"] == "test").sum() == DATA.is_test.sum()
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    again = embed(model, DATA, method=method, seed=1)
    pd.testing.assert_frame_equal(frame, again)


def test_pca_map_is_the_top_two_principal_components():
    model = Projector(6, 16, 3)
    feats = model.features(DATA.tensors(np.sort(DATA.ids))[0]).detach().double().numpy()
    centred = feats - feats.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    coords = embed(model, DATA, method="pca")[["x", "y"]].to_numpy()
    np.testing.assert_allclose(np.abs(coords), np.abs(centred @ vt[:2].T), rtol=1e-3, atol=1e-3)


def test_umap_map_is_deterministic_under_its_seed():
    points = np.random.default_rng(0).normal(size=(200, 8))
    threads = torch.get_num_threads()
    first = project(points, "umap", seed=3)
    assert torch.get_num_threads() == threads  # numba must not resize the pool torch computes on
    assert first.shape == (200, 2) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, project(points, "umap", seed=3))
    with ThreadPoolExecutor(2) as pool:  # concurrent requests (serialised by the lock) give the same map
        maps = list(pool.map(lambda _: project(points, "umap", seed=3), range(2)))
    for concurrent in maps:
        np.testing.assert_array_equal(first, concurrent)


def test_ids_choose_the_samples_and_max_points_the_drawn_ones():
    model = Projector(6, 16, 3)
    subset = embed(model, DATA, ids=DATA.ids[::-3])
    np.testing.assert_array_equal(subset["id"], np.sort(DATA.ids[::-3]))
    small = embed(model, DATA, max_points=40, seed=2)
    assert len(small) == len(DATA.ids) and small["drawn"].sum() == 40  # PCA maps every sample, draws 40
    again = embed(model, DATA, max_points=40, seed=2)
    np.testing.assert_array_equal(small[small["drawn"]]["id"], again[again["drawn"]]["id"])
    full = embed(model, DATA)
    np.testing.assert_allclose(small[["x", "y"]], full[["x", "y"]])  # drawing fewer never moves a point
    tsne = embed(model, DATA, method="tsne", max_points=40, seed=2)
    assert len(tsne) == 40 and tsne["drawn"].all()  # t-SNE maps only what it draws
    np.testing.assert_array_equal(tsne["id"], small[small["drawn"]]["id"])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"method": "mds"}, ValueError, "method"),
    ({"ids": [100, 1]}, KeyError, r"\[1\]"),
    ({"ids": [100, 102]}, ValueError, "at least 5"),
    ({"max_points": 2}, ValueError, "max_points"),
])
def test_embed_refuses_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        embed(Projector(6, 16, 3), DATA, **kwargs)


def test_annotate_adds_membership_and_hardness_without_touching_the_frame():
    frame = embed(Projector(6, 16, 3), DATA)
    snapshot = frame.copy()
    kappa = pd.Series([0.5, -0.25], index=FORGET[:2], name="kappa")
    cos = pd.Series([0.1], index=FORGET[:1])
    out = annotate(frame, FORGET, pd.DataFrame({"kappa": kappa, "cos": cos}))
    pd.testing.assert_frame_equal(frame, snapshot)
    by_id = out.set_index("id")
    assert (by_id.loc[FORGET, "membership"] == "forget").all()
    assert (by_id.loc[DATA.test_ids, "membership"] == "test").all()
    assert (out["membership"] == "retain").sum() == len(DATA.train_ids) - len(FORGET)
    assert by_id.loc[FORGET[1], "kappa"] == -0.25 and np.isnan(by_id.loc[FORGET[1], "cos"])
    assert out["kappa"].notna().sum() == 2
    assert "hardness" in annotate(frame, FORGET, pd.Series([1.0], index=FORGET[:1])).columns


def test_annotate_refuses_test_ids_and_column_clashes():
    frame = embed(Projector(6, 16, 3), DATA)
    with pytest.raises(ValueError, match=str(DATA.test_ids[0])):
        annotate(frame, [DATA.test_ids[0]])
    with pytest.raises(ValueError, match="overwrite"):
        annotate(frame, FORGET, pd.Series([1.0], index=FORGET[:1], name="x"))


def test_nearest_retain_neighbours_match_a_brute_force_search():
    feats = np.random.default_rng(1).normal(size=(len(DATA.ids), 5))
    table = nearest_retain_neighbours(feats, DATA, FORGET, k=3)
    retain = np.setdiff1d(DATA.train_ids, FORGET)
    unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    for _, row in table.iterrows():
        f = unit[DATA.rows([row["id"]])[0]]
        sims = {int(r): float(unit[DATA.rows([r])[0]] @ f) for r in retain}
        best = sorted(sims, key=sims.get, reverse=True)[:3]
        assert list(row["neighbour_ids"]) == best
        assert row["mean_cos"] == pytest.approx(np.mean([sims[b] for b in best]))


def test_neighbours_from_a_model_and_bad_arguments():
    model = Projector(6, 16, 3)
    from_model = nearest_retain_neighbours(model, DATA, FORGET, k=2)
    feats = model.features(DATA.tensors(DATA.ids)[0]).detach().numpy()
    from_feats = nearest_retain_neighbours(feats, DATA, FORGET, k=2)
    assert [list(v) for v in from_model["neighbour_ids"]] == [list(v) for v in from_feats["neighbour_ids"]]
    with pytest.raises(ValueError, match="k must"):
        nearest_retain_neighbours(feats, DATA, FORGET, k=0)
    with pytest.raises(ValueError, match="rows"):
        nearest_retain_neighbours(feats[:5], DATA, FORGET)
    with pytest.raises(ValueError, match="test split"):
        nearest_retain_neighbours(feats, DATA, DATA.test_ids[:2])


def test_procrustes_align_recovers_a_rotated_reflected_scaled_shifted_copy():
    reference = np.random.default_rng(2).normal(size=(30, 2))
    angle = 0.7
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([1, -1])
    moving = 3.5 * reference @ rotation + np.array([4.0, -2.0])
    np.testing.assert_allclose(procrustes_align(reference, moving), reference, atol=1e-10)


def test_linked_embeddings_align_a_model_whose_features_are_rotated():
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    a, b = Projector(6, 16, 3), Projector(6, 16, 3, rotate=q)
    linked = linked_embeddings(a, b, DATA, DATA.ids[:60], method="pca", seed=0)
    assert list(linked.columns) == ["id", "x_a", "y_a", "x_b", "y_b", "label", "class_name", "split"]
    np.testing.assert_allclose(linked[["x_b", "y_b"]].to_numpy(), linked[["x_a", "y_a"]].to_numpy(), atol=1e-3)
    other = linked_embeddings(a, Projector(6, 16, 3, seed=5), DATA, DATA.ids[:60], method="pca")
    assert not np.allclose(other[["x_b", "y_b"]].to_numpy(), other[["x_a", "y_a"]].to_numpy(), atol=1e-2)


def _feature_space_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s feature-space form ‖YᵀX‖²_F / (‖XᵀX‖_F‖YᵀY‖_F), an independent oracle."""
    x, y = x - x.mean(0), y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def test_linear_cka_properties():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6))
    y = x @ rng.normal(size=(6, 4)) + 0.5 * rng.normal(size=(40, 4))
    q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    base = linear_cka(x, y)
    assert base == pytest.approx(_feature_space_cka(x, y))
    assert 0.0 < base < 1.0
    assert linear_cka(x, y @ q) == pytest.approx(base)  # orthogonal transform
    assert linear_cka(x, 7.0 * y) == pytest.approx(base)  # isotropic scaling
    assert linear_cka(x, y @ np.diag([1.0, 10.0, 0.1, 1.0])) != pytest.approx(base)  # not any linear map
    with pytest.raises(ValueError, match="same n"):
        linear_cka(x, y[:10])


def test_layer_cka_names_every_linear_layer():
    x = DATA.tensors(DATA.ids[:50])[0]
    model = Projector(6, 16, 3)
    same = layer_cka(model, Projector(6, 16, 3), x)
    assert same["layer"].tolist() == ["body", "head"] and same["cka"].tolist() == pytest.approx([1.0, 1.0])
    different = layer_cka(model, Projector(6, 16, 3, seed=9), x)
    assert (different["cka"] < 0.999).all()


SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]])


def test_points_inside_a_square_a_concave_lasso_and_a_self_crossing_one():
    points = np.array([[1, 1], [3, 1], [-0.5, 1], [1, 2.5], [0.5, 0.5], [1.9, 1.9]], dtype=float)
    assert inside_polygon(points, SQUARE).tolist() == [True, False, False, False, True, True]
    notch = np.array([[0, 0], [4, 0], [4, 4], [2, 1], [0, 4]], dtype=float)  # a V cut into the top
    assert inside_polygon(np.array([[2, 3], [1, 1], [3, 2], [2, 0.5]]), notch).tolist() == [False, True, True, True]
    bow = np.array([[0, 0], [2, 2], [2, 0], [0, 2]], dtype=float)  # two triangles meeting at (1, 1)
    probes = np.array([[0.2, 1], [1.8, 1], [1, 0.2], [1, 1.8]])
    assert inside_polygon(probes, bow).tolist() == [True, True, False, False]
    assert not inside_polygon(points, SQUARE[:2]).any()  # two vertices enclose nothing


def test_inside_polygon_agrees_with_matplotlib_on_random_lassos():
    from matplotlib.path import Path

    rng = np.random.default_rng(0)
    for _ in range(20):
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(3, 40)))
        radii = rng.uniform(0.3, 1.0, len(angles))
        lasso = np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])  # star-shaped, like a hand lasso
        points = rng.uniform(-1.1, 1.1, (500, 2))
        np.testing.assert_array_equal(inside_polygon(points, lasso), Path(lasso).contains_points(points))


def test_ids_in_region_reads_the_frame_coordinates():
    frame = pd.DataFrame({"id": [7, 3, 9, 5], "x": [1.0, 5.0, 0.5, 1.5], "y": [1.0, 1.0, 1.5, -1.0]})
    assert ids_in_region(frame, SQUARE[:, 0], SQUARE[:, 1]).tolist() == [7, 9]
    assert ids_in_region(frame.iloc[:0], SQUARE[:, 0], SQUARE[:, 1]).tolist() == []
