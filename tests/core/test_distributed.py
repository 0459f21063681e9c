"""Data-parallel steps on torch.distributed: two gloo processes under torchrun take the same steps as
one process on the same batches (within 1e-6 relative), and the ranks never drift apart.

The comparison runs ``distributed_worker.py`` as real subprocesses: plainly (one process, no
process group) and under ``torchrun --standalone --nproc_per_node 2`` on the CPU.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hamu_core.runs.distributed import DataParallel, start
from hamu_core.runs.store import RunStore

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("distributed_worker.py")
REL = 1e-6  # float32 sums added in another order differ by ~1e-7 relative; the acceptance bound is 1e-6
TINY = 1e-9  # below this magnitude a value is compared absolutely (a relative error of ~0 is meaningless)


def close(a, b, scale: float | None = None) -> bool:
    """Equal strings, flags and counts; floats within REL (NaN equal to NaN); dicts and lists item by item.

    Floats are compared relative to their own size, or to ``scale`` when one is given: a cosine
    is a ratio bounded by 1, and one near 0 (nearly orthogonal gradients) loses its leading
    digits to cancellation, so its error is measured against that bound, not against itself.
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], 1.0 if k.startswith("cos") else scale) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, scale) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        bound = REL * scale if scale is not None else TINY
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=REL, abs_tol=bound)
    return a == b


def launch(*prefix: str, out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *prefix, str(WORKER), str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("distributed")
    launch(out=out)
    launch("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", out=out)
    return {name: json.loads((out / f"{name}.json").read_text()) for name in ("single", "rank0", "rank1")}


def test_two_processes_take_the_steps_one_process_takes(written):
    single, ranked = written["single"], written["rank0"]
    assert set(single) == {"hamu-q", "hamu-u", "scrub", "gdiff", "hamu-q, 1 forget sample"}
    for method, want in single.items():
        got = ranked[method]
        assert len(got["history"]) == len(want["history"]) == 4
        for mine, theirs in zip(got["history"], want["history"]):
            assert mine["branch"] == theirs["branch"] and mine["step"] == theirs["step"]
            assert close(mine, theirs), (method, mine["step"])
        w, v = torch.tensor(got["weights"]), torch.tensor(want["weights"])
        assert float((w - v).norm() / v.norm()) <= REL, method


def test_every_rank_holds_the_same_weights_and_history(written):
    assert written["rank0"] == written["rank1"]


def test_the_worker_moves_the_weights(written):
    """Guards the comparison: the steps did change the model, so equal weights mean equal steps."""
    for method, result in written["single"].items():
        assert all(r["step_norm"] > 0 for r in result["history"]), method


@given(world=st.integers(1, 6), n=st.integers(1, 40))
def test_the_shards_of_a_batch_are_the_batch_in_order(world, n):
    x, y = torch.arange(n * 2.0).reshape(n, 2), torch.arange(n)
    shards = [DataParallel(rank, world).shard((x, y)) for rank in range(world)]
    assert torch.equal(torch.cat([s[0] for s in shards]), x) and torch.equal(torch.cat([s[1] for s in shards]), y)
    sizes = [len(s[1]) for s in shards]
    assert max(sizes) - min(sizes) <= 1


def test_a_rank_outside_the_group_is_refused():
    with pytest.raises(ValueError, match=r"rank must lie in \[0, 1\]"):
        DataParallel(2, 2)


def test_start_outside_torchrun_names_the_launch_command(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node N"):
        start()


def test_torchrun_run_stores_on_rank_0_what_one_process_stores(tmp_path):
    """The CLI end to end: ``torchrun --nproc_per_node 2 -m hamu_core run ... --distributed`` against a plain run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    args = ["run", "--method", "hamu-q", "--dataset", "digits", "--epochs", "2", "--forget-class", "3", "--steps", "4",
            "--until", "none", "--quiet", "--label", "ranked", "--device", "cpu"]
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for launcher, store in (([], "one"), (torchrun, "two")):
        extra = ["--distributed"] if launcher else []
        done = subprocess.run([sys.executable, *launcher, "-m", "hamu_core", *args, "--store", str(tmp_path / store),
                               *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("run_id:") == 1  # rank 0 alone reports
    stored = {}
    for store in ("one", "two"):
        with RunStore(tmp_path / store) as opened:
            runs = opened.list_runs()
            assert len(runs) == 1  # one writer: the other rank stored nothing here
            stored[store] = opened.get_run(runs["id"][0])
    one, two = stored["one"], stored["two"]
    assert (two.status, two.label, two.settings) == (one.status, one.label, one.settings)
    assert len(two.history) == len(one.history) == 4
    for mine, theirs in zip(two.history, one.history):
        assert close({k: v for k, v in mine.items() if k != "wall_ms"},
                     {k: v for k, v in theirs.items() if k != "wall_ms"})
    assert [e["step"] for e in two.evaluations] == [e["step"] for e in one.evaluations]


def test_distributed_outside_torchrun_is_one_plain_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run([sys.executable, "-m", "hamu_core", "run", "--dataset", "digits", "--forget-class", "3",
                           "--store", str(tmp_path), "--distributed"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2 and "torchrun --nproc_per_node N" in done.stderr and "Traceback" not in done.stderr
