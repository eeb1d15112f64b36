"""Deep Learning Lab: the router. Page list, sidebar (compute device, seed), global settings."""
import streamlit as st

from ui import state, widgets

st.set_page_config(page_title="Deep Learning Lab", page_icon="🧠", layout="wide")

PAGES = {
    "Start here": [st.Page("pages/start.py", title="Start here", icon="🏠", default=True)],
    "Foundations": [st.Page("pages/playground.py", title="Network Playground", icon="🕸️", url_path="playground")],
    "How networks learn": [
        st.Page("pages/backprop.py", title="Backprop, step by step", icon="⛓️", url_path="backprop"),
        st.Page("pages/gradflow.py", title="Deep nets: gradient flow", icon="🌊", url_path="gradflow"),
        st.Page("pages/optimizers.py", title="Optimizers", icon="🏔️", url_path="optimizers"),
    ],
    "Architectures": [st.Page("pages/cnn.py", title="CNN Lab", icon="🧩", url_path="cnn")],
    "Look inside": [st.Page("pages/explain.py", title="Explainability Lab", icon="🔎", url_path="explain")],
}

state.restore_kept()  # each lab's settings outlive a visit to another page
navigation = st.navigation(PAGES)
widgets.sidebar()
navigation.run()
