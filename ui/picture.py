"""Choosing the one image to look inside the network with: a test image, a drawing on a
canvas, or an uploaded picture. Shared by every lab that explains an image model.

The canvas is `streamlit-drawable-canvas` (imported here only: it registers a browser
component and needs a running Streamlit). AppTest cannot draw, so the test-image path
is the default and nothing depends on the canvas being there.
"""
from __future__ import annotations

import numpy as np
import streamlit as st
from PIL import Image

from dl_core import cnn
from dl_core.data.data2d import DataError
from dl_core.data.images import ImageDataset, open_picture

from . import state

SOURCES = {"test": "🖼 Test image", "draw": "✏️ Draw", "upload": "📁 Upload"}
CANVAS_PX = 224


def _canvas(shape: tuple[int, int, int], key: str) -> np.ndarray | None:
    try:
        from streamlit_drawable_canvas import st_canvas
    except Exception as exc:  # noqa: BLE001 - any import failure means: no canvas, say so
        st.info(f"The drawing canvas is not available here ({type(exc).__name__}); upload a picture instead.")
        return None
    colour = "#ffffff"
    mode = "freedraw"
    if shape[0] == 3:
        c = st.columns(2)
        colour = c[0].color_picker("Colour", "#ffcc33", key=state.kept(f"{key}_colour"))
        mode = c[1].selectbox("Tool", ["freedraw", "circle", "rect", "polygon"], key=state.kept(f"{key}_tool"),
                              help="Circles, rectangles and polygons are filled, like the shapes images.")
    st.markdown("&nbsp;")  # room for the canvas's own toolbar, which floats above it (it covered the caption)
    result = st_canvas(fill_color=colour, stroke_width=CANVAS_PX // 12, stroke_color=colour, background_color="#000000",
                       height=CANVAS_PX, width=CANVAS_PX, drawing_mode=mode, key=f"{key}_canvas",
                       return_image_data=True)
    st.caption("Draw with the mouse; the bin icon above the canvas clears it.")
    data = result.image_data if result is not None else None
    framed = None if data is None else cnn.frame_drawing(np.asarray(data), 0.12 if shape[0] == 1 else 0.2)
    return None if framed is None else cnn.as_input(Image.fromarray(framed), shape)


@st.cache_data(show_spinner=False, max_entries=16)
def _decoded(data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
    """An uploaded picture as an input, decoded once (not again on every rerun), its size checked first."""
    return cnn.as_input(open_picture(data), shape)


def own(shape: tuple[int, int, int], key: str, source: str | None) -> tuple[np.ndarray | None, str]:
    """The learner's own image from `source` ("draw" or "upload"), shaped `shape`, or None yet."""
    if source == "draw":
        drawn = _canvas(shape, key)
        if drawn is None:
            st.caption("Nothing drawn yet.")
        return drawn, "your drawing"
    if source == "upload":
        file = st.file_uploader("A picture", type=["png", "jpg", "jpeg", "bmp", "webp"], key=f"{key}_upload")
        if file is not None:
            try:
                return _decoded(file.getvalue(), shape), "your picture"
            except (OSError, ValueError) as exc:  # DataError: unreadable, or too many pixels (read from its header)
                st.error(f"{exc if isinstance(exc, DataError) else 'That file is not a readable image.'} "
                         "Showing a test image instead.")
    return None, ""


def choose(ds: ImageDataset, key: str) -> tuple[np.ndarray, str, int | None]:
    """(image shaped like the data, caption, true class or None) for the chosen source."""
    xte, yte = ds.part("test")
    source = st.segmented_control("Which image?", list(SOURCES), format_func=SOURCES.get, default="test",
                                  key=state.kept(f"{key}_source")) or "test"
    image, caption = own(ds.shape, key, source)
    if image is not None:
        return image, caption, None
    pick = st.slider("Test image", 0, len(xte) - 1, 0, key=f"{key}_pick")
    return xte[pick], f"test image {pick} · true class: {ds.classes[yte[pick]]}", int(yte[pick])
