"""How a model represents the data: penultimate features, 2-D maps, neighbours, model-to-model similarity.

Projection and annotation are kept apart on purpose. ``embed`` (features → PCA, t-SNE or
UMAP) is the expensive part and depends only on (model, dataset, method, seed), so a caller
can cache it on (model fingerprint, dataset fingerprint, method, seed). ``annotate`` adds
what changes with every selection (forget membership, per-sample hardness) and is cheap.
Every projection is deterministic under its seed, so a cached map and a fresh one agree.

A large dataset is *drawn* as a seeded subset (a browser cannot draw 70,000 points with
their hover text quickly), but PCA still *maps* every sample: for 70,000 Fashion-MNIST-sized
samples on one thread the MLP's features took 1.1 s and their PCA 0.7 s (a CNN's forward pass
took 20 s), once per model and cached. So a lasso or box drawn on the map can select every
sample inside it (``ids_in_region``), not only the drawn ones. t-SNE and UMAP of every sample
would take minutes, so they map only the drawn subset.

UMAP is imported lazily (its import and first numba compilation take seconds) and every
UMAP fit runs behind one process-wide lock: two concurrent numba fits can abort the process,
and a Streamlit server runs sessions in threads.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from torch import nn

from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import validate_forget_set
from hamu_core.models.architectures import eval_mode
from hamu_core.models.training import retain_ids

METHODS = ("pca", "tsne", "umap")
MAPS_EVERY_SAMPLE = ("pca",)  # cheap enough to map every sample; the others map only the drawn subset
BATCH_SIZE = 1024  # samples per no-grad forward pass
MIN_POINTS = 5  # fewer points than this cannot be laid out meaningfully by t-SNE or UMAP
_UMAP_LOCK = threading.Lock()


def forward_batched(model: nn.Module, x: torch.Tensor, *, features: bool = False,
                    batch_size: int = BATCH_SIZE) -> torch.Tensor:
    """``model(x)`` (or ``model.features(x)``) in no-grad batches, so memory stays bounded."""
    device = next(model.parameters()).device
    fn = model.features if features else model
    with eval_mode(model), torch.no_grad():
        out = [fn(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def penultimate_features(model: nn.Module, data: LabelledData, ids: np.ndarray) -> np.ndarray:
    """(n, d) penultimate-layer features ``model.features`` of the samples ``ids``, in that order."""
    x, _ = data.tensors(ids)
    return forward_batched(model, x, features=True).flatten(1).numpy()


def project(points: np.ndarray, method: str = "pca", *, seed: int = 0) -> np.ndarray:
    """(n, 2) map of (n, d) points by PCA, t-SNE (PCA-initialised) or UMAP, deterministic under ``seed``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if len(points) < MIN_POINTS:
        raise ValueError(f"a {method} map needs at least {MIN_POINTS} points, got {len(points)}")
    points = np.asarray(points, dtype=np.float32)
    if method == "pca":
        return PCA(n_components=2, svd_solver="full").fit_transform(points).astype(np.float64)
    if method == "tsne":
        perplexity = min(30.0, (len(points) - 1) / 3)  # t-SNE needs perplexity < n
        tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
        return tsne.fit_transform(points).astype(np.float64)
    return _umap_fit(points, seed)


def _umap_fit(points: np.ndarray, seed: int, *, approximate: bool = False) -> np.ndarray:
    """One UMAP fit under the process-wide lock; seeded, hence single-threaded and reproducible."""
    import umap  # slow to import: only when a UMAP map is asked for

    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, len(points) - 1), random_state=seed, n_jobs=1,
                        force_approximation_algorithm=approximate)
    threads = torch.get_num_threads()
    with _UMAP_LOCK:
        try:
            return reducer.fit_transform(points).astype(np.float64)
        finally:
            torch.set_num_threads(threads)  # numba's OpenMP layer resets the pool torch shares


@functools.cache
def warm_umap() -> None:
    """Import UMAP and compile its numba code once per process, before a user waits for a map.

    UMAP finds neighbours exactly below 4,096 points and by NN-descent above; each path
    compiles on first use (together about 40 s on two cores, bench/bench_eval.py), so both
    are run here on a tiny array. Meant for a background thread at start-up.
    """
    points = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    for approximate in (False, True):
        _umap_fit(points, 0, approximate=approximate)


def _choose_ids(data: LabelledData, ids) -> np.ndarray:
    chosen = np.sort(data.ids) if ids is None else np.unique(np.asarray(ids, dtype=np.int64))
    data.rows(chosen)  # KeyError naming any unknown id
    return chosen


def _drawn_subset(ids: np.ndarray, max_points: int | None, seed: int) -> np.ndarray:
    """At most ``max_points`` of ``ids``, a seeded random subset, sorted (all of them when None)."""
    if max_points is None:
        return ids
    if max_points < MIN_POINTS:
        raise ValueError(f"max_points must be at least {MIN_POINTS}, got {max_points}")
    if len(ids) <= max_points:
        return ids
    return np.sort(np.random.default_rng(seed).choice(ids, max_points, replace=False))


def _sample_frame(data: LabelledData, ids: np.ndarray, coords: dict[str, np.ndarray]) -> pd.DataFrame:
    """Columns id, the given coordinate columns, label, class_name, split."""
    rows = data.rows(ids)
    labels = data.y[rows]
    return pd.DataFrame({"id": ids, **coords, "label": labels,
                         "class_name": np.asarray(data.classes, dtype=object)[labels],
                         "split": np.where(data.is_test[rows], "test", "train")})


def embed(model: nn.Module, data: LabelledData, *, method: str = "pca", seed: int = 0, ids=None,
          max_points: int | None = None) -> pd.DataFrame:
    """2-D map of the model's penultimate features: columns id, x, y, label, class_name, split, drawn.

    ``ids`` limits the map to those samples (default: all). ``max_points`` bounds how many
    are drawn: a seeded random subset of at most that many has ``drawn`` True. PCA maps
    every sample anyway (``MAPS_EVERY_SAMPLE``), so a region selected on the drawn map can
    reach the others; t-SNE and UMAP map only the drawn subset. Rows are sorted by id.
    """
    chosen = _choose_ids(data, ids)
    drawn = _drawn_subset(chosen, max_points, seed)
    mapped = chosen if method in MAPS_EVERY_SAMPLE else drawn
    coords = project(penultimate_features(model, data, mapped), method, seed=seed)
    frame = _sample_frame(data, mapped, {"x": coords[:, 0], "y": coords[:, 1]})
    return frame.assign(drawn=np.isin(mapped, drawn))


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which of the (n, 2) ``points`` lie inside the closed (m, 2) ``polygon`` (even-odd rule).

    A ray cast to the right from each point crosses the boundary an odd number of times
    exactly when the point is inside; it works for any simple or self-crossing lasso. A
    point exactly on an edge may fall on either side; fewer than 3 vertices enclose nothing.
    """
    points, polygon = np.asarray(points, dtype=float), np.asarray(polygon, dtype=float)
    inside = np.zeros(len(points), dtype=bool)
    if len(polygon) < 3:
        return inside
    x, y = points[:, 0], points[:, 1]
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)  # the edge spans the ray's height (never true for a flat edge)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_cross)
    return inside


def ids_in_region(frame: pd.DataFrame, xs, ys) -> np.ndarray:
    """Sorted ids of the map's samples (columns id, x, y) inside the polygon with vertices (xs, ys)."""
    polygon = np.column_stack([np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)])
    inside = inside_polygon(frame[["x", "y"]].to_numpy(dtype=float), polygon)
    return np.sort(frame["id"].to_numpy(dtype=np.int64)[inside])


def annotate(frame: pd.DataFrame, forget_ids, hardness: pd.Series | pd.DataFrame | None = None) -> pd.DataFrame:
    """A copy of an ``embed`` frame with a ``membership`` column and per-sample hardness columns.

    membership is "forget", "retain" (training, not forgotten) or "test". ``hardness`` is a
    Series (its name becomes the column, e.g. "kappa") or a DataFrame / dict of Series
    (e.g. columns "kappa", "cos"), indexed by sample id; samples without a value get NaN.
    """
    forget = np.asarray(forget_ids, dtype=np.int64).ravel()
    out = frame.copy()
    is_forget = out["id"].isin(forget).to_numpy()
    in_test = is_forget & (out["split"] == "test").to_numpy()
    if in_test.any():
        raise ValueError(f"forget ids {out['id'][in_test].head(10).tolist()} are test samples; "
                         "test samples are never forgotten")
    out["membership"] = np.where(is_forget, "forget", np.where(out["split"] == "test", "test", "retain"))
    if hardness is None:
        return out
    if isinstance(hardness, pd.Series):
        table = hardness.to_frame(hardness.name or "hardness")
    else:
        table = pd.DataFrame(hardness)
    if not table.index.is_unique:
        raise ValueError("hardness has repeated sample ids in its index")
    clash = [c for c in table.columns if c in out.columns]
    if clash:
        raise ValueError(f"hardness columns {clash} would overwrite columns of the embedding frame")
    for column in table.columns:
        out[column] = out["id"].map(table[column]).astype(float)
    return out


def nearest_retain_neighbours(features_or_model: np.ndarray | nn.Module, data: LabelledData, forget_ids,
                              k: int = 5) -> pd.DataFrame:
    """For each forget sample, its ``k`` most cosine-similar retain samples in feature space.

    ``features_or_model`` is a model (its penultimate features are computed) or an (n, d)
    array aligned with the rows of ``data``. Columns: id, neighbour_ids and neighbour_cos
    (lists, most similar first) and mean_cos, their mean. Forget samples with a high mean
    cosine sit among retain samples: they are the hard ones to forget without collateral damage.
    """
    forget = validate_forget_set(data, forget_ids)
    retain = retain_ids(data, forget)
    if not 1 <= k <= len(retain):
        raise ValueError(f"k must lie in [1, {len(retain)}] (the retain set size), got {k}")
    if isinstance(features_or_model, nn.Module):
        feats = torch.from_numpy(penultimate_features(features_or_model, data, data.ids))
    else:
        feats = torch.as_tensor(np.asarray(features_or_model, dtype=np.float32))
        if len(feats) != len(data.ids):
            raise ValueError(f"features have {len(feats)} rows but {data.name} has {len(data.ids)} samples")
    feats = F.normalize(feats.flatten(1).double(), dim=1)
    retain_feats = feats[data.rows(retain)]
    forget_feats = feats[data.rows(forget)]
    cos, idx = zip(*(torch.topk(chunk @ retain_feats.T, k, dim=1) for chunk in forget_feats.split(BATCH_SIZE)))
    cos, idx = torch.cat(cos).numpy(), torch.cat(idx).numpy()  # (n_forget, k)
    return pd.DataFrame({"id": forget, "neighbour_ids": list(retain[idx]), "neighbour_cos": list(cos),
                         "mean_cos": cos.mean(axis=1)})


def procrustes_align(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """``moving`` (n, 2) rotated/reflected, scaled and shifted to best match ``reference`` in least squares.

    Orthogonal Procrustes (Schönemann 1966) with the optimal isotropic scale; the reference
    is left untouched, so the first map keeps its coordinates.
    """
    ref_mean, mov_mean = reference.mean(0), moving.mean(0)
    ref_c, mov_c = reference - ref_mean, moving - mov_mean
    rotation, singular_sum = orthogonal_procrustes(mov_c, ref_c)
    scale = singular_sum / max(float((mov_c ** 2).sum()), 1e-300)
    return scale * mov_c @ rotation + ref_mean


def linked_embeddings(model_a: nn.Module, model_b: nn.Module, data: LabelledData, ids=None, *,
                      method: str = "pca", seed: int = 0) -> pd.DataFrame:
    """Both models' maps of the same samples, b aligned onto a; rows sorted by id.

    Columns: id, x_a, y_a, x_b, y_b, label, class_name, split. Each projection is computed
    independently (its axes are arbitrary), then b is Procrustes-aligned to a so that a
    sample's two positions can be joined by a line.
    """
    chosen = _choose_ids(data, ids)
    a = project(penultimate_features(model_a, data, chosen), method, seed=seed)
    b = procrustes_align(a, project(penultimate_features(model_b, data, chosen), method, seed=seed))
    return _sample_frame(data, chosen, {"x_a": a[:, 0], "y_a": a[:, 1], "x_b": b[:, 0], "y_b": b[:, 1]})


def linked_map(model_a: nn.Module, model_b: nn.Module, data: LabelledData, forget_ids, *, method: str = "pca",
               seed: int = 0, limit: int) -> pd.DataFrame:
    """``linked_embeddings`` of at most ``limit`` samples, the forget set always among them.

    Beyond ``limit`` a seeded subset is mapped in which forget samples fill at most half the
    room, so there is always context around them (the Inspect page's before/after map).
    """
    rng = np.random.default_rng(seed)
    forget, others = np.asarray(forget_ids, dtype=np.int64), np.setdiff1d(data.ids, forget_ids)
    if len(forget) + len(others) > limit:
        forget = rng.choice(forget, min(len(forget), limit // 2), replace=False)
        others = rng.choice(others, min(len(others), limit - len(forget)), replace=False)
    return linked_embeddings(model_a, model_b, data, np.union1d(forget, others), method=method, seed=seed)


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA between two activation matrices on the same n samples (Kornblith et al. 2019).

    CKA = ⟨K̃, L̃⟩ / (‖K̃‖·‖L̃‖) with K̃, L̃ the centred Gram matrices of x (n, p) and y (n, q);
    1 for identical representations, invariant to orthogonal transforms and isotropic scaling
    of either side. The Gram form costs n²·(p + q), cheap for a probe batch of wide conv outputs.
    """
    x = torch.as_tensor(x, dtype=torch.float64).flatten(1)
    y = torch.as_tensor(y, dtype=torch.float64).flatten(1)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"CKA needs two activation sets on the same n ≥ 2 samples, got {len(x)} and {len(y)}")
    x, y = x - x.mean(0), y - y.mean(0)
    gram_x, gram_y = x @ x.T, y @ y.T  # (n, n) centred Gram matrices
    denominator = float(torch.linalg.norm(gram_x) * torch.linalg.norm(gram_y))
    return float((gram_x * gram_y).sum()) / denominator if denominator > 0 else float("nan")


def layer_activations(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of every Linear and Conv layer of ``model`` on ``x``, by module name (one no-grad pass)."""
    captured: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: captured.__setitem__(name, out.detach().cpu()))
             for name, module in model.named_modules() if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    try:
        forward_batched(model, x, batch_size=len(x))
    finally:
        for hook in hooks:
            hook.remove()
    return captured


def layer_cka(model: nn.Module, reference: nn.Module, x: torch.Tensor) -> pd.DataFrame:
    """Linear CKA of each Linear/Conv layer output of ``model`` against the same layer of ``reference``."""
    acts, ref = layer_activations(model, x), layer_activations(reference, x)
    rows = [{"layer": name, "cka": linear_cka(acts[name], ref[name])} for name in acts if name in ref]
    return pd.DataFrame(rows, columns=["layer", "cka"])
