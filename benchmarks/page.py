"""What one page costs the browser: the Playground in headless Chromium at 1440×900 against
`streamlit run`, nothing else running.

    python benchmarks/run.py page --json

Figures: its first drawing (seconds until the ▶ Train button shows, and how many of them the
page's main thread was busy, script included: CDP's Performance metrics), then its live view
(the cores Chromium's processes use while the job trains at full speed and the page redraws
every 0.3 s, from /proc). A student's laptop pays this, and in the classroom benchmark the
server's two cores pay it too (docs/PERFORMANCE.md, session 6: 7.4 s of main thread for the
first drawing while closed panels still drew plotly and highlighted code; 1.1 cores live).
"""
from __future__ import annotations

import time

from .browser import CHROMIUM_ARGS, chromium, streamlit_server
from .classroom import _cpu_seconds

LIVE_SECONDS = 20


def _busy(cdp) -> dict[str, float]:
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {"main": metrics["TaskDuration"], "script": metrics["ScriptDuration"]}


def run() -> dict:
    from playwright.sync_api import sync_playwright

    path = chromium()
    if path is None:
        return {"error": "no Chromium (apt-get install chromium)"}
    out: dict = {}
    with streamlit_server({"DLLAB_SPEED": "full", "DLLAB_STOP": "never"}) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        warm = browser.new_page()  # the server's first session pays its imports: not the page's cost
        warm.goto(f"{url}/playground")
        warm.get_by_role("button", name="▶ Train").wait_for(timeout=120_000)
        warm.close()

        page = browser.new_page(viewport={"width": 1440, "height": 900})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        t0 = time.monotonic()
        page.goto(f"{url}/playground?stop=never&speed=full")
        page.get_by_role("button", name="▶ Train").wait_for(timeout=120_000)
        busy = _busy(cdp)
        out |= {"first_paint_s": round(time.monotonic() - t0, 2),
                "first_paint_main_thread_busy_s": round(busy["main"], 2),
                "first_paint_script_s": round(busy["script"], 2)}

        page.get_by_role("button", name="▶ Train").click()
        time.sleep(5)  # past the first epochs' redraws
        before, cpu0, t0 = _busy(cdp), _cpu_seconds(), time.monotonic()
        time.sleep(LIVE_SECONDS)
        after, cpu1, span = _busy(cdp), _cpu_seconds(), time.monotonic() - t0
        out |= {"live_chromium_cores": round((cpu1.get("chromium", 0) - cpu0.get("chromium", 0)) / span, 2),
                "live_main_thread_busy_share": round((after["main"] - before["main"]) / span, 2),
                **{f"live_{kind}_cores": round((cpu1.get(kind, 0) - cpu0.get(kind, 0)) / span, 2)
                   for kind in ("web", "workers")}}
        browser.close()
    return out
