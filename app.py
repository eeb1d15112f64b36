"""Deep Learning Lab's server: `streamlit run app.py` serves the pages (router.py), the one
HTTP route the live counters ask (ui/counters.py) and each browser's secret cookie
(ui/browsers.py), on Streamlit's own server (st.App)."""
from contextlib import asynccontextmanager

import streamlit as st
from starlette.middleware import Middleware

from ui.browsers import BrowserCookie
from ui.counters import ROUTES


@asynccontextmanager
async def lifespan(_app):
    """On the way out (Ctrl-C, SIGTERM) pause and save every training job and stop the workers,
    before uvicorn ends the process by the signal it caught (which runs no atexit handler)."""
    yield
    from dl_core.engine import shutdown

    shutdown()


app = st.App("router.py", routes=ROUTES, lifespan=lifespan, middleware=[Middleware(BrowserCookie)])
