"""The one registry of labs: app.py's navigation, the start page's map and the tests all read LABS.

Plain data, no Streamlit: a new lab is one entry here plus its file under labs/."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lab:
    key: str        # the file's stem: labs/<key>.py
    title: str      # navigation and start-page label
    icon: str
    url_path: str   # "" for the default (start) page
    section: str    # navigation group, in order of first appearance
    blurb: str      # one line for the start page's map
    trains: bool    # the learner trains a network here (a training job with live views)
    hidden: bool = False  # reached by its address only, never listed (the teacher's view)

    @property
    def file(self) -> str:
        """Path of the page's script, relative to app.py."""
        return f"labs/{self.key}.py"

    @property
    def default(self) -> bool:
        return self.url_path == ""


LABS: dict[str, Lab] = {lab.key: lab for lab in (
    Lab("start", "Start here", "🏠", "", "Start here",
        "what deep learning is, in a few honest sentences, and a map of the labs.", trains=False),
    Lab("playground", "Network Playground", "🕸️", "playground", "Foundations",
        "build a network layer by layer on 2-D data and watch it learn: neurons, depth, features, learning "
        "rate, overfitting, gradients.", trains=True),
    Lab("backprop", "Backprop, step by step", "⛓️", "backprop", "How networks learn",
        "follow one example forward and backward through a small network, every number checked against "
        "PyTorch's autograd.", trains=False),
    Lab("gradflow", "Deep nets: gradient flow", "🌊", "gradflow", "How networks learn",
        "watch gradients vanish through 20 layers, then fix it with ReLU + He init, batch norm or residual "
        "connections.", trains=True),
    Lab("optimizers", "Optimizers", "🏔️", "optimizers", "How networks learn",
        "race SGD, momentum, Adam and friends on loss surfaces; learning-rate range test, schedules, batch "
        "size, loss landscapes.", trains=True),
    Lab("cnn", "CNN Lab", "🧩", "cnn", "Architectures",
        "build a convolutional network for images layer by layer, train it live, and see what each layer "
        "detects: filters, feature maps, predictions.", trains=True),
    Lab("sequence", "Sequence Lab", "🔁", "sequence", "Architectures",
        "train an RNN, an LSTM or a GRU on tasks that need memory, race them, and watch the memory work "
        "(and fail): states, gates, gradients through time; forecasts, a language model that writes.",
        trains=True),
    Lab("explain", "Explainability Lab", "🔎", "explain", "Look inside",
        "ask a trained network *why*, with Captum attribution maps, and test whether each explanation "
        "deserves your trust.", trains=False),
    Lab("teacher", "Teacher's view", "🧑‍🏫", "teacher", "Teacher",
        "the room at a glance and a challenge board; needs the teacher's token.", trains=False, hidden=True),
)}


def sections() -> dict[str, list[Lab]]:
    """LABS grouped by section, sections and labs in registry order."""
    out: dict[str, list[Lab]] = {}
    for lab in LABS.values():
        out.setdefault(lab.section, []).append(lab)
    return out
