"""Hostile and careless uploads (issue 14): each is refused with its rule named, in the core and the CLI,
within a small memory budget; colour images keep their channels (issue 13); names never become paths.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamu_core import cli
from hamu_core.data.labelled import DataError, check_learnable, stratified_test_mask
from hamu_core.data.limits import Limits
from hamu_core.data.uploads import NAME_CHARS, UploadConfig, display_name, load_upload
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.checkpoint import cached_train
from hamu_core.models.training import TrainConfig
from tests.hostile_files import (
    GOOD_CSV,
    HOSTILE,
    LONG_FILE_NAME,
    LONG_NAME,
    Y6,
    class_folders,
    csv_bytes,
    npz_bytes,
    zip_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
MEMORY_BUDGET = 384 * 2**20  # address space a refusal may use beyond what the loaders' imports take


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_file_is_refused_with_its_rule_and_name(kind):
    filename, build, rule = HOSTILE[kind]
    with pytest.raises(DataError) as refused:
        load_upload(build(), filename)
    message = str(refused.value)
    assert message.startswith(f"{filename}: ") and re.search(rule, message), message


def test_refusals_stay_within_a_memory_budget_in_a_limited_process(tmp_path):
    """Every hostile file loaded in one process whose address space is capped MEMORY_BUDGET above its baseline.

    The process first proves the cap bites (a 1 GiB array fails), so a refusal that
    allocated what the file declares would fail too, with MemoryError instead of DataError.
    """
    for kind, (filename, build, _) in HOSTILE.items():
        (tmp_path / kind).mkdir()
        (tmp_path / kind / filename).write_bytes(build())
    script = textwrap.dedent(f"""
        import json, resource, sys
        from pathlib import Path
        import numpy as np
        from hamu_core.data.labelled import DataError
        from hamu_core.data.uploads import load_upload
        pages = int(open("/proc/self/statm").read().split()[0])
        cap = pages * resource.getpagesize() + {MEMORY_BUDGET}
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        try:
            np.ones(2**27)
        except MemoryError:
            pass
        else:
            sys.exit("the address-space cap is not enforced: a 1 GiB array was allocated")
        answers = {{}}
        for folder in sorted(Path(sys.argv[1]).iterdir()):
            path = next(folder.iterdir())
            try:
                load_upload(path.read_bytes(), path.name)
                answers[folder.name] = "accepted"
            except DataError as err:
                answers[folder.name] = str(err)
            except MemoryError:
                answers[folder.name] = "MemoryError"
        print(json.dumps(answers))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(answers) == set(HOSTILE)
    for kind, (_, _, rule) in HOSTILE.items():
        assert re.search(rule, answers[kind]), (kind, answers[kind])


def test_a_zip_with_more_entries_than_allowed_is_refused_before_opening():
    config = UploadConfig(limits=Limits(max_zip_members=5))
    with pytest.raises(DataError, match=r"lists up to 6 entries, beyond Limits\.max_zip_members = 5"):
        load_upload(zip_bytes(class_folders()), "many.zip", config)


@pytest.mark.parametrize(("limits", "rule"), [
    (Limits(max_rows=20), r"30 rows exceed Limits\.max_rows = 20"),
    (Limits(max_features=1), r"2 feature columns exceed Limits\.max_features = 1"),
    (Limits(max_csv_cells=50), r"30 rows × 3 columns exceed Limits\.max_csv_cells = 50"),
    (Limits(max_classes=1), r"2 classes exceed Limits\.max_classes = 1"),
    (Limits(min_samples_per_class=16), r"class 'a' has 15 samples, fewer than Limits\.min_samples_per_class = 16"),
])
def test_csv_limits_are_checked_before_and_after_parsing(limits, rule):
    with pytest.raises(DataError, match=rule):
        load_upload(GOOD_CSV, "good.csv", UploadConfig(limits=limits))


def test_image_limits_apply_to_npz_headers():
    config = UploadConfig(limits=Limits(max_pixels_per_image=16, max_features=100))
    with pytest.raises(DataError, match=r"images of 25 pixels exceed Limits\.max_pixels_per_image = 16"):
        load_upload(npz_bytes(X=np.zeros((6, 5, 5)), y=Y6), "big.npz", config)
    with pytest.raises(DataError, match=r"300 values per sample .* beyond Limits\.max_features = 100"):
        load_upload(npz_bytes(X=np.zeros((6, 3, 10, 10)), y=Y6), "wide.npz", config)


def test_colour_zip_keeps_three_channels_first_in_x_and_last_in_thumbnails():
    data = load_upload(zip_bytes(class_folders(colour=(200, 30, 10))), "colour.zip")
    assert data.X.shape == (6, 3, 5, 6) and data.images.shape == (6, 5, 6, 3)
    assert np.allclose(data.X[0, :, 0, 0], np.array([200, 30, 10]) / 255.0)
    grey = load_upload(zip_bytes(class_folders()), "grey.zip")
    assert grey.X.shape == (6, 1, 5, 6) and grey.images.shape == (6, 5, 6)


def test_colour_npz_in_either_channel_order_gives_the_same_inputs():
    rng = np.random.default_rng(0)
    last = rng.integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    from_last = load_upload(npz_bytes(X=last, y=Y6), "last.npz")
    from_first = load_upload(npz_bytes(X=last.transpose(0, 3, 1, 2), y=Y6), "first.npz")
    assert from_last.X.shape == (6, 3, 32, 32) and from_last.input_shape == (3, 32, 32)
    assert np.array_equal(from_last.X, from_first.X) and np.array_equal(from_last.images, last)
    assert np.array_equal(from_last.X[2, 1], last[2, :, :, 1] / np.float32(255.0))
    scaled = load_upload(npz_bytes(X=last / 255.0, y=Y6), "scaled.npz")
    assert np.array_equal(scaled.images, last)


@given(st.lists(st.integers(1, 12), min_size=2, max_size=6), st.integers(1, 6))
def test_a_learnable_dataset_always_has_a_test_a_forget_and_a_retain_sample_per_class(counts, minimum):
    limits = Limits(min_samples_per_class=max(minimum, 3))
    y = np.repeat(np.arange(len(counts)), counts)
    classes = tuple(str(c) for c in range(len(counts)))
    try:
        check_learnable("p.csv", y, classes, 4, limits)
    except DataError as err:
        assert min(counts) < limits.min_samples_per_class and "Limits.min_samples_per_class" in str(err)
        return
    is_test = stratified_test_mask(y, test_fraction=0.2, seed=0)
    for label in range(len(counts)):
        assert is_test[y == label].sum() >= 1 and (~is_test[y == label]).sum() >= 2


@given(st.text(min_size=1, max_size=400))
def test_a_displayed_name_is_short_printable_and_never_a_path(name):
    shown = display_name(name + ".csv")
    assert len(shown) <= NAME_CHARS and shown.isprintable()
    assert "/" not in shown and "\\" not in shown and shown.endswith(".csv")


def test_a_255_character_name_is_shown_but_never_used_as_a_path(tmp_path):
    assert len(LONG_NAME) == 255
    data = load_upload(GOOD_CSV, LONG_NAME)
    assert data.name == display_name(LONG_NAME) and data.name.startswith("nnn") and "/" not in data.name
    cached_train(data, None, ModelConfig(hidden=(8,)), TrainConfig(epochs=1), "original", cache_dir=tmp_path)
    files = [p.name for p in tmp_path.iterdir()]
    assert len(files) == 1 and re.fullmatch(r"original-[0-9a-f]{24}\.pt", files[0]), files


@pytest.mark.parametrize("kind", ["corrupt-crc", "pixel-bomb", "complex-X", "two-rows"])
def test_cli_refuses_a_hostile_file_with_one_line_and_exit_2(kind, tmp_path, capsys):
    filename, build, rule = HOSTILE[kind]
    (tmp_path / filename).write_bytes(build())
    code = cli.main(["run", "--data", str(tmp_path / filename), "--steps", "1", "--forget-class", "0",
                     "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"python -m hamu_core run: error: {filename}: ") and re.search(rule, err), err


def test_cli_internal_error_is_one_line_exit_1_and_debug_adds_the_traceback(monkeypatch, capsys, tmp_path):
    def broken(args):
        raise RuntimeError("the store\nbroke")

    monkeypatch.setitem(cli.VERBS, "list", broken)
    assert cli.main(["list", "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["python -m hamu_core list: internal error: RuntimeError: the store broke (a bug: "
                                "please report it with the traceback that --debug prints)"]
    assert cli.main(["list", "--debug", "--store", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "RuntimeError: the store" in err


def test_cli_in_a_real_process_refuses_a_pixel_bomb_and_runs_a_255_character_name(tmp_path):
    """The module entry point as a user starts it: a refusal exits 2 on one line; a long name just works."""
    filename, build, rule = HOSTILE["pixel-bomb"]
    (tmp_path / filename).write_bytes(build())
    long_file = tmp_path / LONG_FILE_NAME
    assert len(LONG_FILE_NAME.encode()) == 255
    long_file.write_bytes(GOOD_CSV)
    results = []
    for path in (tmp_path / filename, long_file):
        results.append(subprocess.run([sys.executable, "-m", "hamu_core", "train", "--data", str(path), "--epochs", "1",
                                       "--forget-class", "a"], cwd=ROOT, capture_output=True, text=True, timeout=300))
    refused, trained = results
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and re.search(rule, refused.stderr)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "original  test accuracy" in trained.stdout


def test_a_good_csv_still_loads_under_the_default_limits():
    data = load_upload(csv_bytes(["x,label"] + [f"{i},{'ab'[i % 2]}" for i in range(6)]), "six.csv")
    assert data.classes == ("a", "b") and len(data.ids) == 6
