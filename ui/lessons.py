"""Lesson presets: a title, what to try and why, and the exact settings.

A lesson sets every structural and training control (unlisted ones to their
defaults), so a lesson link behaves the same for every student.
"""
from __future__ import annotations

from .state import PLAYGROUND

ALL_FEATURES = ["x", "y", "x2", "y2", "xy", "sinx", "siny", "cosx", "cosy"]

LESSONS: dict[str, tuple[str, str, dict]] = {
    "free": ("Free play", "Change anything and press ▶ Train.", {}),
    "linear_circle": (
        "1 · A straight line can't draw a circle",
        "No hidden layer: the network can only split the plane with a straight line, so it never gets the "
        "circle right (loss stays high). Then add one hidden layer of 4 neurons — or switch on the x² and y² "
        "features — and train again.",
        {"dataset": "circle", "layers": 0}),
    "features_circle": (
        "2 · …unless you hand it the right features",
        "Still no hidden layer, but the inputs now include x² and y². A circle is a straight line in those "
        "features, so even this 'linear' model succeeds. Deep learning's trick is to learn such features itself.",
        {"dataset": "circle", "layers": 0, "features": ["x", "y", "x2", "y2"]}),
    "depth_spiral": (
        "3 · Depth builds features: the spiral",
        "Three hidden layers see only x and y. Watch the neuron pictures: the first layer draws straight edges, "
        "later layers combine them into curves, and the last into the spiral. That is a hierarchy of features.",
        {"dataset": "spiral", "layers": 3, "n1": 8, "n2": 8, "n3": 8}),
    "features_spiral": (
        "4 · Features instead of depth",
        "One hidden layer, but all seven hand-made features. Compare the time and the shape of the boundary "
        "with lesson 3: more features can stand in for depth, but someone has to choose them.",
        {"dataset": "spiral", "layers": 1, "n1": 8, "features": ALL_FEATURES[:7]}),
    "lr_too_high": (
        "5 · Too high a learning rate",
        "Plain SGD with learning rate 10: every step overshoots the minimum further than the last and the loss "
        "explodes. The app stops, restores the last good weights and tells you. Lower the rate to 0.03 and train.",
        {"dataset": "plane", "layers": 2, "n1": 8, "n2": 8, "optimizer": "sgd", "lr": 10.0, "activation": "relu"}),
    "overfit": (
        "6 · Overfitting: memorising the noise",
        "Few, noisy training points and a big network. The training loss keeps falling while the test loss "
        "turns up: the network learns the noise. Try L2 regularisation, dropout, or a smaller network.",
        {"dataset": "xor", "noise": 50, "train_pct": 10, "n": 300, "layers": 3, "n1": 48, "n2": 48, "n3": 48,
         "show_test": True}),
    "three_classes": (
        "7 · More than two classes",
        "Three interleaved arms. The output layer has one neuron per class and softmax turns them into "
        "probabilities; cross-entropy is the loss. The confusion matrix (tab below) shows who gets mixed up.",
        {"dataset": "spiral3", "layers": 3, "n1": 16, "n2": 16, "n3": 16}),
    "vanishing": (
        "8 · Vanishing gradients",
        "Eight sigmoid layers with plain SGD barely learn. Open the Gradients tab: the first layers' gradients "
        "are orders of magnitude smaller than the last one's. Switch the activation to ReLU or GELU and compare.",
        {"dataset": "circle", "layers": 8, "activation": "sigmoid", "optimizer": "sgd", "lr": 0.1}),
}


def lesson_values(key: str) -> dict:
    """Every control a lesson fixes: its overrides on top of the defaults."""
    values = {k: s.default for k, s in PLAYGROUND.items() if s.role in ("structure", "hyper")}
    values |= {"show_test": False, "discretize": False}
    values |= LESSONS[key][2]
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
