"""Deep Learning Lab: the router (app.py serves it). Page list, sidebar (compute device, seed), global settings."""
from ui import boot

boot.warm()  # before anything else: concurrent first sessions must not import the same module at once

import streamlit as st  # noqa: E402

from ui import state, widgets  # noqa: E402
from ui.labs import sections  # noqa: E402

st.set_page_config(page_title="Deep Learning Lab", page_icon="🧠", layout="wide")

PAGES = {section: [st.Page(lab.file, title=lab.title, icon=lab.icon, url_path=lab.url_path, default=lab.default,
                           visibility="hidden" if lab.hidden else "visible")
                   for lab in group]
         for section, group in sections().items()}

state.restore_kept()  # each lab's settings outlive a visit to another page
navigation = st.navigation(PAGES)
widgets.sidebar()
navigation.run()
