"""The shadow bank: K models of the target's recipe, each trained on a random half of the data.

Per-sample membership attacks (LiRA, RMIA, U-LiRA in ``hamu_core.audit.attacks``) ask how a
sample's confidence behaves in models that trained on it and in models that did not. That
needs, for every sample, some shadows where it was IN and some where it was OUT: so the
pool holds train AND test samples, and the design is balanced (with K even, every sample
is IN in exactly K/2 shadows), which gives every sample the same number of shadows on
each side (Carlini et al., "Membership inference attacks from first principles", S&P 2022).

Shadows are the slowest part of an audit, so they are cached on disk under
``data_dir()/shadows/<key>/``, one file per shadow written atomically as soon as it is
trained: an interrupted build resumes where it stopped. Files are read with
``weights_only=True`` (``checkpoint.load_into``). Missing shadows train here, or in worker
processes started with ``spawn`` and limited to one torch thread each, as sweeps do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from hamu_core.audit.attack_scores import logit_confidence
from hamu_core.data.labelled import LabelledData
from hamu_core.models.architectures import ModelConfig, build_model, model_fingerprint
from hamu_core.models.checkpoint import CheckpointError, data_dir, load_into, save_state_dict
from hamu_core.models.device import resolve_device
from hamu_core.models.training import Progress, TrainConfig, train_model

DEFAULT_SHADOWS = 16  # 8 IN and 8 OUT per sample; ~3.5 s on digits (bench_privacy), pooled-variance regime
MIN_SHADOWS = 4  # a per-sample spread needs at least two shadows on each side
FORWARD_BATCH = 1024  # samples per stacked forward pass of all K shadows


@dataclass(frozen=True, eq=False)
class ShadowBank:
    """K shadows of one recipe and which pool samples each trained on."""

    pool_ids: np.ndarray  # (n,) sorted ids of every sample the shadows drew from: train AND test samples
    masks: np.ndarray  # (K, n) bool: masks[k, j] is True when pool_ids[j] trained shadow k
    models: tuple[nn.Module, ...]  # the K shadows, eval mode, read-only (requires_grad off)
    seed: int  # drew the masks and the shadows' training seeds
    _confidence: dict = field(default_factory=dict, init=False, repr=False)  # data fingerprint → (K, n) φ

    def __len__(self) -> int:
        return len(self.models)

    def fingerprint(self) -> str:
        """Short sha256 of the draw (ids, masks, seed) and every shadow's weights: the bank's cache key.

        Computed once per bank (the shadows are read-only), from what the bank holds rather
        than from the recipe that built it, so two banks can never share a key.
        """
        if "_fingerprint" not in self.__dict__:
            digest = hashlib.sha256(f"{self.seed}|{self.masks.shape}".encode())
            digest.update(np.ascontiguousarray(self.pool_ids))
            digest.update(np.packbits(self.masks))
            for model in self.models:
                digest.update(model_fingerprint(model).encode())
            object.__setattr__(self, "_fingerprint", digest.hexdigest()[:16])
        return self.__dict__["_fingerprint"]

    def positions(self, ids) -> np.ndarray:
        """Column positions of ``ids`` in ``pool_ids``; KeyError naming ids the shadows never drew from."""
        ids = np.asarray(ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.pool_ids, ids), 0, max(len(self.pool_ids) - 1, 0))
        known = self.pool_ids[pos] == ids
        if not known.all():
            raise KeyError(f"ids not in the shadow pool: {ids[~known][:10].tolist()}")
        return pos

    def membership(self, ids) -> np.ndarray:
        """(K, len(ids)) bool: which shadows trained on each of ``ids``."""
        return self.masks[:, self.positions(ids)]

    def confidence(self, data: LabelledData) -> np.ndarray:
        """(K, n) logit-scaled confidence φ of every shadow on every pool sample, computed once per dataset.

        All K shadows run in one vectorised pass (``torch.func.vmap`` over their stacked weights).
        """
        key = data.fingerprint()
        if key not in self._confidence:
            x, y = data.tensors(self.pool_ids)
            self._confidence[key] = logit_confidence(stacked_logits(self.models, x), y)
        return self._confidence[key]


def stacked_logits(models: tuple[nn.Module, ...], x: torch.Tensor) -> torch.Tensor:
    """(K, n, classes) logits of K models of one architecture, all at once, in no-grad batches."""
    params, buffers = stack_module_state(list(models))
    template = models[0]

    def one(p, b, inputs):
        return functional_call(template, (p, b), (inputs,))

    device = next(template.parameters()).device
    with torch.no_grad():
        parts = [vmap(one, in_dims=(0, 0, None))(params, buffers, x[i:i + FORWARD_BATCH].to(device)).cpu()
                 for i in range(0, len(x), FORWARD_BATCH)]
    return torch.cat(parts, dim=1)


def membership_masks(n: int, k: int, seed: int) -> np.ndarray:
    """(k, n) balanced random halves: each sample is IN in exactly ⌈k/2⌉ shadows, reproducibly from ``seed``.

    Column by column a random permutation of the shadows, whose first ⌈k/2⌉ take the sample.
    A balanced design gives every sample the same number of IN and OUT shadows (with k even),
    so no sample's Gaussians rest on fewer shadows than another's.
    """
    rng = np.random.default_rng([seed, n, k])
    order = np.argsort(rng.random((k, n)), axis=0)  # (k, n): per column, shadows in random order
    masks = np.zeros((k, n), dtype=bool)
    np.put_along_axis(masks, order[:(k + 1) // 2], True, axis=0)
    return masks


def shadow_train_config(train_config: TrainConfig, seed: int, index: int) -> TrainConfig:
    """The recipe with shadow ``index``'s own training seed, derived from the bank's seed and the index."""
    return dataclasses.replace(train_config, seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))


def whole_pool(data: LabelledData) -> LabelledData:
    """``data`` with every sample trainable: ``train_model`` refuses test ids, but a shadow's half may hold them."""
    return dataclasses.replace(data, is_test=np.zeros(len(data.ids), dtype=bool))


def bank_key(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, k: int, seed: int) -> str:
    """Everything that decides a bank's shadows, hashed: data content, model, recipe, K and seed."""
    fields = {"dataset": data.name, "data": data.fingerprint(), "model": dataclasses.asdict(model_config),
              "train": dataclasses.asdict(train_config), "k": k, "seed": seed}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def bank_folder(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, k: int, seed: int) -> Path:
    """Where the bank's shadow files live: ``data_dir()/shadows/<key>/``."""
    return data_dir() / "shadows" / bank_key(data, model_config, train_config, k, seed)


def shadow_path(folder: Path, index: int) -> Path:
    return folder / f"shadow-{index:03d}.pt"


def train_shadow(data: LabelledData, ids: np.ndarray, model_config: ModelConfig, train_config: TrainConfig,
                 path: Path, device: str = "cpu") -> Path:
    """Train one shadow on ``ids`` (train or test samples) on ``device`` and save it atomically to ``path``."""
    return save_state_dict(train_model(whole_pool(data), ids, model_config, train_config, device=device), path)


_WORKER_DATA: LabelledData | None = None  # set once per worker process by _start_worker


def _start_worker(data: LabelledData) -> None:
    """Worker set-up: one torch thread, and the dataset sent once rather than with every task."""
    global _WORKER_DATA
    torch.set_num_threads(1)
    _WORKER_DATA = data


def _with_worker_data(fn: Callable, *task):
    return fn(_WORKER_DATA, *task)


def map_over_shadows(fn: Callable, data: LabelledData, tasks: dict[int, tuple], *, workers: int,
                     done: Callable[[int, object], None]) -> None:
    """``done(i, fn(data, *tasks[i]))`` for every shadow index i: here, or in spawned worker processes.

    With ``workers == 1`` (or one task) everything runs in this process; otherwise in up
    to ``workers`` processes started with ``spawn`` (a forked PyTorch can deadlock on its
    thread pools), one torch thread each, the dataset sent to each worker once. ``fn`` must
    be a module-level function; ``done`` runs here, as each task finishes.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers == 1 or len(tasks) <= 1:
        for i, task in tasks.items():
            done(i, fn(data, *task))
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context, initializer=_start_worker,
                             initargs=(data,)) as executor:
        futures = {executor.submit(_with_worker_data, fn, *task): i for i, task in tasks.items()}
        for future in as_completed(futures):
            done(futures[future], future.result())


def _load(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, path: Path) -> nn.Module | None:
    """The shadow stored at ``path``, or None when absent or unreadable (an unreadable file is removed)."""
    if not path.is_file():
        return None
    model = build_model(model_config, data.input_shape, data.n_classes, seed=train_config.seed)
    try:
        return load_into(model, path)
    except CheckpointError:
        path.unlink(missing_ok=True)
        return None


def build_bank(data: LabelledData, model_config: ModelConfig, train_config: TrainConfig, *, k: int = DEFAULT_SHADOWS,
               seed: int = 0, workers: int = 1, progress: Progress | None = None, device: str = "cpu") -> ShadowBank:
    """The bank of ``k`` shadows of the recipe (``model_config``, ``train_config``) on ``data``.

    Shadows already on disk are loaded; the others are trained, here with ``workers=1``, else
    in ``workers`` spawned processes of one torch thread each, and saved one by one as they
    finish. ``progress(fraction, message)`` hears of every shadow, loaded or trained. Shadows
    train on ``device`` and the bank's models live there; the files on disk serve every device.
    """
    if k < MIN_SHADOWS:
        raise ValueError(f"k must be at least {MIN_SHADOWS} (two shadows on each side of every sample), got {k}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    pool = np.sort(np.asarray(data.ids, dtype=np.int64))
    masks = membership_masks(len(pool), k, seed)
    folder = bank_folder(data, model_config, train_config, k, seed)
    configs = [shadow_train_config(train_config, seed, i) for i in range(k)]
    models: list[nn.Module | None] = [_load(data, model_config, configs[i], shadow_path(folder, i)) for i in range(k)]
    missing = [i for i in range(k) if models[i] is None]
    ready = k - len(missing)
    if progress is not None and ready:
        progress(ready / k, f"shadows: {ready} of {k} loaded from cache")

    def finished(i: int, _path: Path) -> None:
        nonlocal ready
        models[i] = _load(data, model_config, configs[i], shadow_path(folder, i))
        ready += 1
        if progress is not None:
            progress(ready / k, f"shadows: {ready} of {k} (shadow {i} trained)")

    where = resolve_device(device)  # checked before any shadow trains
    tasks = {i: (pool[masks[i]], model_config, configs[i], shadow_path(folder, i), str(where)) for i in missing}
    map_over_shadows(train_shadow, data, tasks, workers=workers, done=finished)
    frozen = tuple(model.to(where).eval().requires_grad_(False) for model in models)
    return ShadowBank(pool_ids=pool, masks=masks, models=frozen, seed=seed)
