"""Sweeps on Ray: the same stored runs as the local engine, runs carried between stores, and a plain
message when Ray is not installed.

Ray is an optional extra. Outside CI a machine without it skips the one test that needs it;
under CI (``CI`` set) a missing Ray fails that test, so the Ray engine is never silently untested.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig
from hamu_core.runs.experiment import ExperimentSpec, ForgetChoice, execute
from hamu_core.runs.run_transfer import pack, unpack
from hamu_core.runs.store import RunStore
from hamu_core.runs.sweep import LocalEngine, run_sweep, sweep_specs

ROOT = Path(__file__).resolve().parents[2]
BASE = ExperimentSpec(forget=ForgetChoice("class", cls="3"), dataset="digits", model=ModelConfig(arch="mlp"),
                      train=TrainConfig(epochs=2))
STEPS = 3


def ray_or_fail():
    """The ray module; skipped where Ray is not installed, except under CI, where that is a failure."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed but CI is set: install requirements-dev.txt (ray>=2.40)")
        pytest.skip("Ray is an optional extra (pip install '.[ray]')")
    return ray


def same(a, b) -> bool:
    """Equal values, NaN equal to NaN (records use NaN for 'not applicable'), recursing into dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def content(stored) -> dict:
    """What a stored run says, less what names this copy of it: id, times, and each step's wall-clock time."""
    return {"settings": stored.settings, "dataset": stored.dataset, "forget_ids": stored.forget_ids,
            "seed": stored.seed, "retain_batch_size": stored.retain_batch_size, "status": stored.status,
            "forget_batch_size": stored.forget_batch_size, "label": stored.label, "request_ref": stored.request_ref,
            "history": [{k: v for k, v in r.items() if k != "wall_ms"} for r in stored.history],
            "evaluations": list(stored.evaluations)}


def stored_cells(folder: Path, table) -> list[dict]:
    """The sweep's stored runs, in the order of its cells (the table's rows)."""
    with RunStore(folder) as store:
        return [content(store.get_run(run_id)) for run_id in table["run_id"]]


def test_a_packed_run_unpacks_into_another_store_with_the_same_content(tmp_path):
    spec = sweep_specs(BASE, ["hamu-q"], [0.01], [1])[0]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with RunStore(tmp_path / "a") as source:
        outcome = execute(spec, source, steps=26, stop_when=(), with_eval=True, label="cell", request_ref="T-1")
        packed = pack(source, outcome.run_id)
        original = source.get_run(outcome.run_id)
        original_steps = source.checkpoint_steps(outcome.run_id)
    with RunStore(tmp_path / "b") as target:
        copy_id = unpack(packed, target)
        copied = target.get_run(copy_id)
        assert target.checkpoint_steps(copy_id) == original_steps == [0, 25]
        for step in original_steps:
            got, want = target.load_checkpoint(copy_id, step)[1], packed.checkpoints[step]
            assert all(torch.equal(got[k], want[k]) for k in want)
    assert copy_id != original.id
    assert same(content(copied), content(original))
    assert any("evaluation" in e for e in copied.evaluations)  # the final report's evaluation travelled too


def test_unpack_refuses_a_run_still_running(tmp_path):
    with RunStore(tmp_path) as store:
        run_id = store.create_run(settings={"method": "ga"}, dataset={}, forget_ids=[1], seed=0, retain_batch_size=4)
        with pytest.raises(ValueError, match="still running"):
            unpack(pack(store, run_id), store)


def test_a_ray_sweep_stores_the_same_runs_as_the_local_engine(tmp_path):
    ray = ray_or_fail()
    from hamu_core.runs.ray_engine import RayEngine

    specs = sweep_specs(BASE, ["hamu-q", "gdiff"], [0.01, 0.02], [0])[:3] + sweep_specs(BASE, ["gdiff"], [], [1])
    assert len(specs) == 4
    folders = {name: tmp_path / name for name in ("local", "ray")}
    for folder in folders.values():
        folder.mkdir()
    local = run_sweep(specs, str(folders["local"]), steps=STEPS, stop_when=(), engine=LocalEngine(workers=2),
                      with_eval=False)
    assert not ray.is_initialized()
    on_ray = run_sweep(specs, str(folders["ray"]), steps=STEPS, stop_when=(), with_eval=False,
                       engine=RayEngine(num_cpus=2, cpus_per_task=1))
    assert not ray.is_initialized()  # the engine shut down the Ray it started
    key = ["method", "constraint", "seed", "status", "steps", "stop", "reported_step"]
    assert local[key].equals(on_ray[key])
    want, got = stored_cells(folders["local"], local), stored_cells(folders["ray"], on_ray)
    assert len(got) == len(want) == 4
    for cell, spec in enumerate(specs):
        assert (got[cell]["settings"]["method"], got[cell]["seed"]) == (spec.method, spec.seed)
        assert len(got[cell]["history"]) == STEPS
        assert same(got[cell], want[cell]), spec


def test_without_ray_the_cli_says_how_to_install_it_and_the_local_engine_still_runs(tmp_path):
    """Ray hidden from a subprocess (a ``None`` entry in sys.modules makes its import fail)."""
    script = ("import sys; sys.modules['ray'] = None\n"
              "from hamu_core.cli import main\n"
              "args = ['sweep', '--dataset', 'digits', '--epochs', '2', '--forget-class', '3', '--steps', '1',"
              " '--until', 'none', '--no-eval', '--quiet', '--store', sys.argv[1]]\n"
              "codes = [main(args + ['--engine', 'ray']), main(args)]\n"
              "print('CODES', codes, 'RAY', sys.modules['ray'])\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "CODES [2, 0] RAY None" in done.stdout
    message = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(message) == 1 and "needs Ray" in message[0] and "pip install '.[ray]'" in message[0], done.stderr
    with RunStore(tmp_path) as store:
        runs = store.list_runs()
    assert len(runs) == 1 and runs["status"].tolist() == ["finished"]  # the local engine ran the cell


def test_engine_options_are_refused_with_the_wrong_engine(tmp_path, capsys):
    from hamu_core.cli import main

    base = ["sweep", "--dataset", "digits", "--forget-class", "3", "--quiet", "--store", str(tmp_path / "store")]
    for extra, words in ((["--address", "auto"], "--address is an option of --engine ray"),
                         (["--gpus-per-task", "0.5"], "--gpus-per-task is an option of --engine ray"),
                         (["--engine", "ray", "--workers", "2"], "--workers is an option of --engine local")):
        assert main([*base, *extra]) == 2
        assert words in capsys.readouterr().err
    assert not (tmp_path / "store").exists()  # refused before anything was stored


def test_the_cli_sweeps_on_ray_into_the_store(tmp_path):
    ray_or_fail()
    table_file = tmp_path / "sweep.csv"
    done = subprocess.run([sys.executable, "-m", "hamu_core", "sweep", "--dataset", "digits", "--epochs", "2",
                           "--forget-class", "3", "--methods", "gdiff", "--seeds", "0,1", "--steps", "2", "--until",
                           "none", "--no-eval", "--quiet", "--engine", "ray", "--cpus-per-task", "1", "--retries", "1",
                           "--store", str(tmp_path / "store"), "--csv", str(table_file)],
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with RunStore(tmp_path / "store") as store:
        runs = store.list_runs()
    assert sorted(runs["id"]) == sorted(pd.read_csv(table_file)["run_id"])
    assert runs["status"].tolist() == ["finished", "finished"] and runs["steps"].tolist() == [2, 2]
