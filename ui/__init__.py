"""The Streamlit side: session-state keys (state), shared widgets, figure builders."""
