"""CPU against GPU on a CIFAR-sized ResNet-20: step time, hardness time, and whether the numbers agree.

Issue 13: every core path runs on CUDA when it exists and on the CPU otherwise, and the two
must agree within float tolerance. On 3×32×32 inputs (random, seeded: no dataset is
downloaded) with the published ResNet-20 (width 16, 0.27M parameters), for each device this
times (1) one training step (AdamW on a batch), (2) one HAMU-Q step of ``UnlearningRun``
(paired gradients, solve, apply, losses after), and (3) per-sample hardness κ_i and cos θ_i
of the forget set (``per_sample_hardness``). Every GPU run starts from the CPU's weights with
TF32 off, and the table's last columns give the largest relative difference between the
devices' step records and per-sample numbers. Prints a table; asserts nothing about time.

Without a GPU only the CPU column is printed. Run: ``python bench/bench_device.py``
(``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hamu_core.evaluation.hardness import per_sample_hardness
from hamu_core.models.architectures import ModelConfig, build_model, count_parameters
from hamu_core.models.device import device_label, model_device
from hamu_core.rules import gradients as G
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

SHAPE, CLASSES = (3, 32, 32), 10


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retain", type=int, default=256, help="retain batch per step (default 256, the Studio's)")
    parser.add_argument("--forget", type=int, default=128, help="forget samples (default 128)")
    parser.add_argument("--train-batch", type=int, default=128, help="training batch (default 128, the recipe's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after one warm-up; best is shown")
    parser.add_argument("--width", type=int, default=16, help="ResNet-20 width (default 16: 0.27M parameters)")
    return parser.parse_args()


def synchronised(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_ms(device: torch.device, work: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``work`` over ``repeats`` rounds after one warm-up, waiting for the GPU each time."""
    work()
    synchronised(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        synchronised(device)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def measure(base: nn.Module, device: torch.device, batches: dict, repeats: int) -> tuple[dict, dict]:
    """(milliseconds per operation, numbers to compare) for ``base`` copied onto ``device``."""
    model = copy.deepcopy(base).to(device)
    x_train, y_train = (t.to(device) for t in batches["train"])
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def train_step() -> None:
        model.train()
        loss = F.cross_entropy(model(x_train), y_train)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        model.eval()

    rule = make_rule("hamu-q", mode="full", radius=0.05, constraint=0.005, clip_norm=None)

    def fresh_run() -> UnlearningRun:
        return UnlearningRun(rule, model=copy.deepcopy(base).to(device), retain=batches["retain"],
                             forget=batches["forget"], retain_batch_size=len(batches["retain"][0]))

    run = fresh_run()
    g_r = G.loss_and_gradients(run.model_, *(t.to(device) for t in batches["retain"]))[1]
    def hardness() -> None:
        per_sample_hardness(run.model_, *batches["forget"], g_r)

    times = {"train step": best_ms(device, train_step, repeats),
             "HAMU step": best_ms(device, lambda: fresh_run().step(), repeats),
             "hardness (κ_i, cos θ_i)": best_ms(device, hardness, repeats)}
    steps = fresh_run().run(3)
    hardness = per_sample_hardness(run.model_, *batches["forget"], g_r)
    numbers = {"steps": np.array([[r.forget_loss_after, r.retain_loss_after, r.cos_rf] for r in steps]),
               "hardness": np.stack([hardness.kappa.numpy(), hardness.cos.numpy()])}
    return times, numbers


def relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))


def main() -> None:
    args = parse()
    generator = torch.Generator().manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.randn(n, *SHAPE, generator=generator), torch.randint(0, CLASSES, (n,), generator=generator)

    batches = {"train": batch(args.train_batch), "retain": batch(args.retain), "forget": batch(args.forget)}
    base = build_model(ModelConfig(arch="resnet20", resnet_width=args.width), SHAPE, CLASSES)
    torch.backends.cuda.matmul.allow_tf32 = False  # agreement means float32 against float32
    torch.backends.cudnn.allow_tf32 = False
    print(f"ResNet-20 width {args.width}: {count_parameters(base):,} parameters; train batch {args.train_batch}, "
          f"retain {args.retain}, forget {args.forget}; device {device_label('auto')}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    cpu_times, cpu_numbers = measure(base, model_device(base), batches, args.repeats)
    if not torch.cuda.is_available():
        print(f"{'operation':<26}{'cpu ms':>10}")
        for name, ms in cpu_times.items():
            print(f"{name:<26}{ms:>10.1f}")
        print("no CUDA GPU here: run this script where one exists for the GPU column, the ratio and the agreement")
        return
    gpu_times, gpu_numbers = measure(base, torch.device("cuda"), batches, args.repeats)
    print(f"{'operation':<26}{'cpu ms':>10}{'cuda ms':>10}{'cpu/cuda':>10}")
    for name, ms in cpu_times.items():
        print(f"{name:<26}{ms:>10.1f}{gpu_times[name]:>10.1f}{ms / gpu_times[name]:>9.1f}×")
    for name in cpu_numbers:
        print(f"largest relative cpu/cuda difference, {name}: {relative_gap(gpu_numbers[name], cpu_numbers[name]):.2e}")


if __name__ == "__main__":
    main()
