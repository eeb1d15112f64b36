"""Deep Learning Lab: the router. Page list, sidebar (compute device, seed), global settings."""
import streamlit as st

from ui import state, widgets
from ui.labs import sections

st.set_page_config(page_title="Deep Learning Lab", page_icon="🧠", layout="wide")

PAGES = {section: [st.Page(lab.file, title=lab.title, icon=lab.icon, url_path=lab.url_path, default=lab.default)
                   for lab in group]
         for section, group in sections().items()}

state.restore_kept()  # each lab's settings outlive a visit to another page
navigation = st.navigation(PAGES)
widgets.sidebar()
navigation.run()
