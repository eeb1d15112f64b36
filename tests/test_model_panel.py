"""The "Model & code" panel: it names every network a job trains, and a model file loaded there brings
back only its lab's own settings."""
import pytest
from streamlit.testing.v1 import AppTest
from test_pages import job, open_page, poll, run

from dl_core.checkpoint import save_bytes
from ui import state
from ui.shell import upload_key


def test_a_model_file_restores_only_its_labs_own_settings_and_never_a_role():
    """A file carrying `teacher_ok: true` once opened /teacher without the token: a file's settings
    now reach the session only as the Playground's own controls, each parsed as a link's value."""
    at = open_page("playground")
    at.button(key="ctl_epoch").click().run()
    poll(at, lambda a: job(a).epoch == 1 and job(a).status()["state"] == "paused")
    values = state.widget_values(run(at).settings) | {"teacher_ok": True, "lr": "9e9", "layers": 3}
    blob = save_bytes(run(at).extra["spec"], job(at).model, {"values": values, "seed": 1})
    fresh = open_page("playground")
    fresh.file_uploader(key=upload_key("playground", 0)).set_value(("m.pt", blob, "application/octet-stream")).run()
    assert not fresh.exception and not fresh.error
    with pytest.raises(KeyError):
        fresh.session_state["teacher_ok"]
    assert fresh.session_state["lr"] == 0.03 and fresh.session_state["layers"] == 3  # invalid: its default
    assert state.settings_from({"teacher_ok": True, "batch": 7}) == state.settings_from({}) | {"batch": 7}


def test_the_model_panel_lists_every_network_with_its_optimizer_and_frozen_part():
    """A trainer of several networks (a GAN's two) or with frozen layers gets a table, one row each."""
    at = AppTest.from_string('''
from toy_trainers import ToyAdversarialTrainer, frozen_backbone_trainer
from dl_core.engine import TrainConfig, TrainingJob
from ui.shell import networks_of
networks_of(TrainingJob(ToyAdversarialTrainer(n=64), TrainConfig(lr=0.01)))
networks_of(TrainingJob(frozen_backbone_trainer(), TrainConfig(lr=0.01)))
''', default_timeout=60).run()
    gan, frozen = (df.value.to_dict("records") for df in at.dataframe)
    assert [(r["network"], r["optimizer"], r["learning rate"]) for r in gan] == [("D", "Adam", "0.01"),
                                                                               ("G", "RMSprop", "0.005")]
    assert frozen[0]["frozen"] == "1,152" and frozen[0]["parameters"] == "1,218"


def test_a_loaded_model_counts_on_from_the_epochs_it_trained():
    """Loading a 498-epoch model showed Epoch 0."""
    from test_pages import counters

    at = open_page("playground")
    at.button(key="ctl_epoch").click().run()
    poll(at, lambda a: job(a).epoch == 1 and job(a).status()["state"] == "paused")
    values = state.widget_values(run(at).settings)
    blob = save_bytes(run(at).extra["spec"], job(at).model, {"values": values, "seed": 1, "epoch": 498,
                                                             "step": 7968})
    fresh = open_page("playground")
    fresh.file_uploader(key=upload_key("playground", 0)).set_value(("m.pt", blob, "application/octet-stream")).run()
    assert not fresh.exception and job(fresh).epoch == 498 and job(fresh).step == 7968
    assert counters(fresh)["Epoch"][0] == "498"
    assert fresh.button(key="ctl_train").label == "▶ Train on"  # past the Stop of 300: it raises Stop
