"""A few unlearning steps on seeded synthetic data, as one process or as one rank under torchrun.

``test_distributed`` runs this script plainly (one process, no process group) and under
``torchrun --nproc_per_node 2`` (each rank a shard of every batch), and compares what they
wrote: each process writes the histories (wall-clock time left out) and the final weights of
each method as JSON, named single.json or rankN.json, into the folder given as the argument.
"""

from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn

from hamu_core.config import DEFAULTS
from hamu_core.rules.registry import make_rule
from hamu_core.runs import distributed
from hamu_core.runs.unlearner import UnlearningRun

METHODS = ("hamu-q", "hamu-u", "scrub", "gdiff")  # HAMU's solve, and a baseline that reads the original model
STEPS = 4


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 12, generator=gen), torch.randint(0, 4, (n,), generator=gen)


def model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))


def main(out: str) -> None:
    torch.set_num_threads(1)
    group = distributed.start("cpu") if "RANK" in os.environ else None
    # 25 retain samples drawn from 40 per step and 11 forget samples: shards of 13 and 12, 6 and 5
    retain, forget = data(40, 1), data(11, 2)
    # and one forget sample, which leaves rank 1 an empty shard of every forget batch
    cases = [(method, method, forget) for method in METHODS] + [("hamu-q, 1 forget sample", "hamu-q", data(1, 2))]
    results = {}
    for case, method, forget_set in cases:
        rule = make_rule(method, **DEFAULTS.method_settings(method))
        run = UnlearningRun(rule, model=model(), retain=retain, forget=forget_set, seed=7, retain_batch_size=25,
                            data_parallel=group)
        history = [{k: v for k, v in run.step().to_dict().items() if k != "wall_ms"} for _ in range(STEPS)]
        weights = torch.cat([p.detach().flatten() for p in run.model_.parameters()])
        results[case] = {"history": history, "weights": weights.tolist()}
    name = "single" if group is None else f"rank{group.rank}"
    with open(os.path.join(out, f"{name}.json"), "w", encoding="utf-8") as file:
        json.dump(results, file)
    distributed.stop()


if __name__ == "__main__":
    main(sys.argv[1])
