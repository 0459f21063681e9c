"""One unlearning step data-parallel across processes, on torch.distributed (``torchrun``).

Each step's retain and forget batches are a pure function of (seed, step), so every rank
draws the same batches and takes its own contiguous shard of each. A rank computes the
*sum* of the cross-entropy over its shard and that sum's gradient; one all-reduce adds the
ranks' sums, and dividing by the whole batch's size gives exactly the mean loss and mean
gradient one process computes on the whole batch (float rounding aside). Clipping and the
HAMU solve then run on those global, identical quantities on every rank, so every rank
applies the same update and the weights never drift apart: nothing but the paired
gradients and the losses after the step crosses the wire. Rank 0 alone stores the run.

gloo on CPU, nccl on GPUs (one per rank: ``cuda:LOCAL_RANK``), as torchrun sets them up.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from hamu_core.models.device import resolve_device
from hamu_core.models.training import Progress
from hamu_core.rules import gradients as G
from hamu_core.runs.experiment import ExperimentSpec, Outcome, execute, prepare
from hamu_core.runs.store import RunStore
from hamu_core.runs.unlearner import DEFAULT_STOP, stop_rules

Batch = tuple[torch.Tensor, torch.Tensor]
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # what torchrun sets per process
LAUNCH = "torchrun --nproc_per_node N -m hamu_core run ... --distributed"


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the group: which shard of each batch it computes, and with whom it sums."""

    rank: int  # 0..world_size-1; rank 0 is the one that stores
    world_size: int  # processes in the group

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must lie in [0, {self.world_size - 1}], got {self.rank}")

    @classmethod
    def current(cls) -> DataParallel:
        """The place of this process in the default process group (which must be started)."""
        if not dist.is_initialized():
            raise ValueError(f"no torch.distributed process group is started; launch with {LAUNCH}")
        return cls(dist.get_rank(), dist.get_world_size())

    def shard(self, batch: Batch) -> Batch:
        """This rank's contiguous part of ``batch``: sizes differ by at most one, empty when ranks outnumber samples."""
        x, y = batch
        return torch.tensor_split(x, self.world_size)[self.rank], torch.tensor_split(y, self.world_size)[self.rank]

    def _local_sum(self, model: nn.Module, batch: Batch, params: list[nn.Parameter]) -> list[torch.Tensor]:
        """[Σ loss over this rank's shard, ∇ of that sum per parameter], each flattened."""
        x, y = self.shard(batch)
        if len(x) == 0:
            return [params[0].new_zeros(1), *(p.new_zeros(p.numel()) for p in params)]
        total = F.cross_entropy(model(x), y, reduction="sum")
        grads = torch.autograd.grad(total, params)
        return [total.detach().reshape(1), *(g.detach().flatten() for g in grads)]

    def _all_sum(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The parts concatenated and summed over the ranks, in one all-reduce."""
        flat = torch.cat(parts)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        return flat

    def paired_gradients(self, model: nn.Module, retain: Batch, forget: Batch) -> G.PairedGradients:
        """g_r and g_f of the whole batches (means, as ``gradients.paired_gradients``), computed shard by shard."""
        names, params = G.trainable_parameters(model)
        width = 1 + sum(p.numel() for p in params)  # one loss and every gradient entry, per batch
        flat = self._all_sum(self._local_sum(model, retain, params) + self._local_sum(model, forget, params))
        sides = []
        for batch, part, what in ((retain, flat[:width], "retain"), (forget, flat[width:], "forget")):
            mean = part / len(batch[0])
            G.check_finite([mean[:1]], f"{what} loss")
            chunks = torch.split(mean[1:], [p.numel() for p in params])
            grads = [chunk.reshape(p.shape).clone() for chunk, p in zip(chunks, params)]
            G.check_finite(grads, f"{what} gradient")
            sides.append((float(mean[0]), grads))
        (retain_loss, g_r), (forget_loss, g_f) = sides
        return G.PairedGradients(names, g_r, g_f, retain_loss, forget_loss)

    def mean_loss(self, model: nn.Module, batch: Batch) -> float:
        """The mean cross-entropy of the whole batch, computed shard by shard (no gradient)."""
        x, y = self.shard(batch)
        with torch.no_grad():
            total = F.cross_entropy(model(x), y, reduction="sum") if len(x) else next(model.parameters()).new_zeros(())
        return float(self._all_sum([total.reshape(1)])[0]) / len(batch[0])  # every rank joins, even on a NaN


def rank_device(device: str | torch.device = "auto") -> torch.device:
    """Where this rank computes a run set to ``device``: for CUDA, the rank's own GPU (``cuda:LOCAL_RANK``,
    as torchrun gives each process one), else the CPU. ValueError for a device that is not here."""
    where = resolve_device(device)
    if where.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return where


def start(device: str | torch.device = "auto") -> DataParallel:
    """Join the process group torchrun describes in the environment: nccl for a CUDA run, gloo on the CPU.

    ValueError naming the launch command when this process was not started by torchrun.
    """
    missing = [name for name in TORCHRUN_ENV if name not in os.environ]
    if missing:
        raise ValueError(f"--distributed needs the process group torchrun sets up ({missing[0]} is not set); "
                         f"launch with {LAUNCH}")
    where = rank_device(device)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if where.type == "cuda" else "gloo")
    return DataParallel.current()


def stop() -> None:
    """Leave the process group (every rank, after the last step)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def run_on_ranks(spec: ExperimentSpec, store_path: str | None, *, steps: int, stop_when=DEFAULT_STOP,
                 with_eval: bool = True, label: str = "", request_ref: str = "",
                 progress: Progress | None = None) -> Outcome | None:
    """``execute(spec)`` as this process's rank of torchrun's group; rank 0's outcome, None on the other ranks.

    Each rank runs on its own device (``rank_device``). Rank 0 fills the model cache first while
    the others wait, so no two ranks train the same model. Rank 0 stores the run in
    ``store_path`` and evaluates it; every other rank takes the same steps into a scratch store
    that is thrown away, since the store has one writer.
    """
    spec = dataclasses.replace(spec, device=str(rank_device(spec.device)))
    group = start(spec.device)
    try:
        rules = stop_rules(stop_when)
        if group.rank == 0:
            prepare(spec, with_retrain=with_eval or "reached_reference" in rules, progress=progress)
        dist.barrier()
        if group.rank == 0:
            with RunStore(store_path) as store:
                return execute(spec, store, steps=steps, stop_when=rules, with_eval=with_eval, label=label,
                               request_ref=request_ref, progress=progress, data_parallel=group)
        with tempfile.TemporaryDirectory(prefix="hamu-rank-") as scratch, RunStore(scratch) as store:
            execute(spec, store, steps=steps, stop_when=rules, with_eval=False, data_parallel=group)
        return None
    finally:
        stop()
