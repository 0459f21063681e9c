"""The Setup page's device picker and own-model check under ``AppTest``.

AppTest cannot drive a file uploader, so the uploaded model is placed in the session, as
an earlier upload would have left it; the page must check it against the data and say
whether it is used, with the named reason when it is not.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import save
from streamlit.testing.v1 import AppTest

from hamu_core.data.builtin import load_digits_data
from hamu_core.models.architectures import ModelConfig, build_model, model_fingerprint
from hamu_ui.own_model_view import original_model
from hamu_ui.session import SESSION_KEY, StudioSession, Upload

ROOT = Path(__file__).resolve().parents[2]
SETUP = str(ROOT / "pages/1_Setup.py")


def setup_with(session: StudioSession) -> AppTest:
    at = AppTest.from_file(SETUP, default_timeout=120)
    at.session_state[SESSION_KEY] = session
    return at.run()


def weights(n_classes: int) -> bytes:
    data = load_digits_data()
    return save(build_model(ModelConfig(arch="mlp"), data.input_shape, n_classes, seed=4).state_dict())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal given where no GPU exists")
def test_a_gpu_that_is_not_there_is_refused_and_the_device_kept():
    at = setup_with(StudioSession())
    at.selectbox(key="setup.device").select("cuda").run()
    assert not at.exception
    assert any("sees no CUDA GPU" in e.value for e in at.error)
    assert at.session_state[SESSION_KEY].device == "auto"
    at.selectbox(key="setup.device").select("cpu").run()
    assert not at.error and at.session_state[SESSION_KEY].device == "cpu"


def test_an_own_model_that_fits_is_used():
    at = setup_with(StudioSession(dataset="digits", own_model=Upload("mine.safetensors", weights(10))))
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Using your model: mine.safetensors: mlp weights" in s.value for s in at.success)


def test_an_own_model_with_the_wrong_class_count_is_refused_by_name():
    at = setup_with(StudioSession(dataset="digits", own_model=Upload("four.safetensors", weights(4))))
    assert not at.exception
    assert any("(classes)" in e.value and "4 outputs" in e.value for e in at.error)
    assert at.session_state[SESSION_KEY].own_model is None


def test_the_original_is_the_own_model_when_one_is_accepted():
    data = load_digits_data()
    expected = build_model(ModelConfig(arch="mlp"), data.input_shape, 10, seed=4)
    session = StudioSession(dataset="digits", own_model=Upload("mine.safetensors", weights(10)), device="cpu")
    original = original_model(session, data)
    assert original.key == model_fingerprint(expected)
    assert next(original.model.parameters()).device == torch.device("cpu")


def test_an_own_model_is_never_described_as_having_a_retrain_reference():
    """Setup says there is none, warns that an untrained model guesses, and Unlearn disables the reference stop."""
    session = StudioSession(dataset="digits", own_model=Upload("mine.safetensors", weights(10)))
    at = setup_with(session)
    assert any("has no retrain reference" in i.value for i in at.info)
    assert not any("is trained as soon as you choose a forget set" in i.value for i in at.info)
    assert any("no better than guessing among 10 classes" in w.value for w in at.warning)  # an untrained MLP
    data = load_digits_data()
    session = at.session_state[SESSION_KEY]
    session.set_forget(data.train_ids[data.y[~data.is_test] == 3])
    at = AppTest.from_file(str(ROOT / "pages/3_Unlearn.py"), default_timeout=120)
    at.session_state[SESSION_KEY] = session
    at.run()
    assert not at.exception and not at.error, [e.message for e in at.exception] + [e.value for e in at.error]
    stop = at.checkbox(key="unlearn.stop.reached_reference.no_target")
    assert stop.disabled and not stop.value
    assert any("No retrain reference (your own model)" in c.value for c in at.caption)
