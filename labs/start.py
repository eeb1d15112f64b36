"""Start here: what deep learning is, in a few honest sentences, and a map of the labs."""
import streamlit as st

from ui.labs import LABS

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
for lab in LABS.values():
    if not lab.default and not lab.hidden:  # every lab but this page (and the teacher's)
        st.page_link(lab.file, label=f"**{lab.title}** — {lab.blurb}", icon=lab.icon)
st.markdown(
    """
**Tip for a first visit:** open the Playground, pick lesson 1 in the *Lesson* box, press ▶ Train, and follow
the lessons in order. Then step through one backward pass to see where the gradients come from.
"""
)
