"""Time to train the original model and the retrain reference on digits and Fashion-MNIST.

Prints one table row per (dataset, architecture, epochs): wall-clock seconds for each of
the two trainings, and test / forget-set accuracy so the times can be read next to what
they buy. The forget set is one class (label 3), the paper's ρ = 0 case.

    .venv/bin/python bench/bench_data.py [--fashion-epochs 1] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from hamu_core.data.builtin import fashion_mnist_missing, load_digits_data, load_fashion_mnist
from hamu_core.data.labelled import LabelledData
from hamu_core.data.selection import select_class
from hamu_core.models.architectures import ModelConfig, count_parameters
from hamu_core.models.training import TrainConfig, retain_ids, train_model


def accuracy(model: torch.nn.Module, data: LabelledData, ids) -> float:
    X, y = data.tensors(ids)
    with torch.no_grad():
        return (model(X).argmax(1) == y).float().mean().item()


def bench_row(data: LabelledData, arch: str, epochs: int) -> str:
    forget = select_class(data, 3)
    model_config, train_config = ModelConfig(arch=arch), TrainConfig(epochs=epochs)
    start = time.perf_counter()
    original = train_model(data, data.train_ids, model_config, train_config)
    t_original = time.perf_counter() - start
    start = time.perf_counter()
    retrained = train_model(data, retain_ids(data, forget), model_config, train_config)
    t_retrain = time.perf_counter() - start
    return (f"| {data.name:<13} | {arch:<4} | {count_parameters(original):>7,} | {epochs:>6} "
            f"| {len(data.train_ids):>6,} | {t_original:>10.1f} | {t_retrain:>9.1f} "
            f"| {accuracy(original, data, data.test_ids):>7.3f} | {accuracy(retrained, data, data.test_ids):>7.3f} "
            f"| {accuracy(original, data, forget):>7.3f} | {accuracy(retrained, data, forget):>7.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fashion-epochs", type=int, default=1, help="epochs on Fashion-MNIST (default recipe: 20)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; forget set = class 3\n")
    print("| dataset       | arch |  params | epochs |  train | original s | retrain s "
          "| test/o  | test/r  | forg/o  | forg/r  |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    digits = load_digits_data()
    for arch in ("mlp", "cnn"):
        print(bench_row(digits, arch, TrainConfig().epochs), flush=True)
    reason = fashion_mnist_missing()
    if reason:
        print(f"\nFashion-MNIST skipped: {reason}")
        return
    start = time.perf_counter()
    fashion = load_fashion_mnist()
    print(f"(Fashion-MNIST parsed in {time.perf_counter() - start:.1f} s)", flush=True)
    for arch in ("mlp", "cnn"):
        print(bench_row(fashion, arch, args.fashion_epochs), flush=True)


if __name__ == "__main__":
    main()
