"""How long the Studio makes a user wait for an evaluation and for each kind of 2-D map.

Prints two tables: ``evaluate()`` on digits (1,797 samples) with the default MLP, with and
without the reference models; and PCA, t-SNE and UMAP on 2k and 10k points of 64-d
Gaussian blobs (the size of penultimate features), with UMAP's one-off warm-up (import
and numba compilation) timed on its own and each time also given as a ratio to PCA.
Run: ``.venv/bin/python bench/bench_eval.py``.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd

from hamu_core.data.builtin import load_digits_data
from hamu_core.data.selection import select_random
from hamu_core.evaluation.embedding import project, warm_umap
from hamu_core.evaluation.metrics import evaluate
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, retain_ids, train_model


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def evaluation_table() -> pd.DataFrame:
    data = load_digits_data()
    forget = select_random(data, 0.1, seed=0)
    original = train_model(data, data.train_ids, ModelConfig(), TrainConfig())
    retrain = train_model(data, retain_ids(data, forget), ModelConfig(), TrainConfig())
    cases = {"current only": {}, "+ retrain": {"retrain": retrain},
             "+ retrain + original": {"retrain": retrain, "original": original}}
    rows = [{"case": name, "n_boot": n_boot, "seconds": timed(evaluate, original, data, forget, n_boot=n_boot, **refs)}
            for name, refs in cases.items() for n_boot in (200, 1000)]
    return pd.DataFrame(rows)


def blobs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 1.5 * rng.normal(size=(10, 64))  # overlapping, like real features: one connected graph
    return (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, 64))).astype(np.float32)


def projection_table() -> pd.DataFrame:
    rows = [{"method": "umap warm-up", "points": 64, "seconds": timed(warm_umap)}]
    for n in (2_000, 10_000):
        points = blobs(n)
        rows += [{"method": method, "points": n, "seconds": timed(project, points, method, seed=0)}
                 for method in ("pca", "tsne", "umap")]
    frame = pd.DataFrame(rows)
    pca = frame[frame["method"] == "pca"].set_index("points")["seconds"]
    frame["× pca"] = [s / pca[p] if p in pca.index else np.nan for s, p in zip(frame["seconds"], frame["points"])]
    return frame


if __name__ == "__main__":
    print(f"cpus: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    print("\nevaluate() on digits (1,797 samples, 10% random forget set), MLP (128, 128)")
    print(evaluation_table().to_string(index=False, float_format="%.2f"))
    print("\n2-D maps of 64-d Gaussian blobs")
    print(projection_table().to_string(index=False, float_format="%.2f"))
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")
