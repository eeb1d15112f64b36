"""Every lab that loads model files, fed the whole bad-file corpus through its own uploader:
each file gets one plain sentence in the page, never a traceback, and no payload ever runs."""
import re

import pytest
from test_pages import open_page

from modelfiles import MARKER, corpus, small_limit
from ui.labs import LABS
from ui.shell import upload_key

INTERNALS = re.compile(r"\x1b|torch|Traceback|pickl|weights_only|_reconstruct|Error\b|Exception|File \"", re.I)
LOADING_LABS = ["playground", "cnn", "sequence"]


def test_the_loading_labs_are_the_training_labs_with_a_model_panel():
    assert set(LOADING_LABS) <= {k for k, lab in LABS.items() if lab.trains}


@pytest.mark.parametrize("lab", LOADING_LABS)
def test_every_bad_model_file_is_refused_in_one_plain_sentence(lab):
    MARKER.unlink(missing_ok=True)
    at = open_page(lab)
    before = at.session_state[f"shell_{lab}_run"]
    refused = {}
    with small_limit():
        for nonce, (name, data) in enumerate(corpus(lab).items()):
            at.file_uploader(key=upload_key(lab, nonce)).set_value((f"{name}.pt", data, "application/octet-stream"))
            at.run()
            assert not at.exception, (name, at.exception)
            errors = [e.value for e in at.error]
            assert len(errors) == 1 and errors[0].startswith(f"Could not load {name}.pt. "), (name, errors)
            refused[name] = errors[0]
    for name, message in refused.items():
        sentence = message.removeprefix(f"Could not load {name}.pt. ")
        assert not INTERNALS.search(sentence) and len(sentence) < 220 and sentence.endswith("."), (name, message)
    assert at.session_state[f"shell_{lab}_run"] is before  # nothing replaced the learner's network
    assert not MARKER.exists()
    assert len(refused) >= 40
