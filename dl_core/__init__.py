"""Deep Learning Lab's engine: data, model specs, training jobs, probes, checkpoints.

Nothing here imports Streamlit or plotly (a test enforces it), so every piece
runs the same from a notebook, a script or a benchmark as it does in the app.
"""
