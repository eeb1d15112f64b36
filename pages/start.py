"""Start here: what deep learning is, in a few honest sentences, and a map of the labs."""
import streamlit as st

from ui import widgets

widgets.route_through_app()

st.title("🧠 Deep Learning Lab")
st.markdown(
    """
**Deep learning** trains *neural networks*: stacks of layers, each made of simple units (*neurons*) that
take a weighted sum of their inputs and pass it through a non-linear function. Nobody writes the weights by
hand — the network **learns them from examples**.

**How it learns.** The network makes a prediction, a *loss* measures how wrong it is, and
**backpropagation** computes — with the chain rule — how much each weight contributed to that error.
**Gradient descent** then nudges every weight a little in the direction that shrinks the loss. Repeat over
many small batches of data, and the loss falls.

**Why depth matters.** Each layer builds on the one before: early layers find simple patterns (edges,
straight boundaries), later layers combine them into more abstract ones (curves, shapes, objects). That
*hierarchy of features* is what lets deep networks handle images, sound and text.

**Why GPUs matter.** Training is mostly multiplying large matrices, billions of independent
multiply-adds. A GPU does thousands of them at once, so models that would take weeks on a CPU train in
hours. (This app runs on a CPU too; the sidebar shows which device you have.)

**Honest caveats.** A network only learns what its data shows it: with too little data it memorises
(*overfitting*), with biased data it learns the bias, and its reasons are hidden unless we probe them.
"""
)

st.subheader("The labs")
st.page_link("pages/playground.py", label="**Network Playground** — build a network layer by layer on 2-D data "
             "and watch it learn: neurons, depth, features, learning rate, overfitting, gradients.", icon="🕸️")
st.page_link("pages/backprop.py", label="**Backprop, step by step** — follow one example forward and backward "
             "through a small network, every number checked against PyTorch's autograd.", icon="⛓️")
st.page_link("pages/gradflow.py", label="**Deep nets: gradient flow** — watch gradients vanish through 20 layers, "
             "then fix it with ReLU + He init, batch norm or residual connections.", icon="🌊")
st.page_link("pages/optimizers.py", label="**Optimizers** — race SGD, momentum, Adam and friends on loss surfaces; "
             "learning-rate range test, schedules, batch size, loss landscapes.", icon="🏔️")
st.page_link("pages/cnn.py", label="**CNN Lab** — build a convolutional network for images layer by layer, train "
             "it live, and see what each layer detects: filters, feature maps, predictions.", icon="🧩")
st.page_link("pages/explain.py", label="**Explainability Lab** — ask a trained network *why*, with Captum "
             "attribution maps, and test whether each explanation deserves your trust.", icon="🔎")
st.markdown(
    """
**Tip for a first visit:** open the Playground, pick lesson 1 in the *Lesson* box, press ▶ Train, and follow
the lessons in order. Then step through one backward pass to see where the gradients come from.
"""
)
