"""The lab pages, one per entry of the lab registry (ui/labs.py); each is run by Streamlit as a script."""
