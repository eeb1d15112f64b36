"""A classroom on this machine: N scripted students, each opening the Playground and training.

    python benchmarks/run.py classroom --json --students 30 [--seconds 60] [--start plain|classroom]

Each student speaks Streamlit's own protocol over a WebSocket to 127.0.0.1 (what the
browser's frontend sends: a page load, a click on ▶ Train as a widget trigger, and the
live view's fragment reruns at the interval the server asks for), and asks the counters'
route as their component does (ui/counters.py: a GET every so often, with the proxy's
cookie). One headless Chromium page trains beside them and measures what a real student
sees. Bounded: at most 60 students, at most 300 s of training, then everyone leaves and
the server is stopped.

Figures: first paint (p50/p95: connect → the Train button drawn), visible update gap
(p50/p95: time between two updates that show a new epoch, counted from the click on
▶ Train), chart redraw gap (p50/p95: time between two redraws of the live charts and
pictures), rerun gap (p50/p95: time between two redraws of the counters, by a run or from
the route's answer) and the share of those redraws that found no new epoch (the update
gap's two causes: a slow redraw, or a redraw before the job's next turn came back),
epochs/s per student (min and median: fairness), the room's total against a bare PyTorch
loop on all cores, exceptions shown, and the server's memory (web process and its workers)
before, at the peak and a minute after everyone left, and who used the two cores during
the class (cpu_cores_web, _workers, _haproxy, _chromium, _students: this process).

DLLAB_BENCH_WEB sets the classroom start's web processes (default 2); DLLAB_BENCH_TRACE names
a file for every student's timeline (epochs seen, redraws) as JSON. The server's output is
kept in /tmp/dllab-server-*.log.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from benchmarks.browser import free_port, spawn, wait_healthy
from classroom import streamlit_cmd

ROOT = Path(__file__).resolve().parents[1]
MAX_STUDENTS, MAX_SECONDS = 60, 300


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)


class Student:
    """One learner's browser, as far as the server can tell: Streamlit's protocol, no pixels."""

    def __init__(self, url: str, page: str):
        self.ws_url = url.replace("http", "ws") + "/_stcore/stream"
        self.page, self.page_hash, self.train_id = page, "", None
        self.connected_at = self.painted_at = self.trained_at = None
        self.epochs: list[tuple[float, int]] = []  # (when seen, epoch) each time a new epoch is drawn
        self.charts: list[float] = []  # when the live view's charts were drawn again (once per redraw)
        self.reruns: list[float] = []  # when the counters were drawn again, after ▶ Train
        self.counters: tuple[str, float] | None = None  # what the counters ask (ui/counters.py) and how often
        self.cookie = ""  # the proxy's affinity cookie, sent with every request to the route (a browser does)
        self.exceptions = 0
        self.fragments: dict[str, float] = {}  # fragment id -> rerun interval the server asked for

    def _state(self, fragment: str = "", trigger: str | None = None):
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string, cs.page_script_hash, cs.page_name = (
            "stop=never&speed=full", self.page_hash, "" if self.page_hash else self.page)
        if fragment:
            cs.fragment_id, cs.is_auto_rerun = fragment, True
        if trigger:
            w = cs.widget_states.widgets.add()
            w.id, w.trigger_value = trigger, True
        return msg.SerializeToString()

    def _read(self, data: bytes) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = ForwardMsg()
        msg.ParseFromString(data)
        kind = msg.WhichOneof("type")
        if kind == "navigation" and msg.navigation.page_script_hash:
            self.page_hash = msg.navigation.page_script_hash
        elif kind == "auto_rerun":
            self.fragments[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for f in msg.stop_auto_rerun.fragment_ids:
                self.fragments.pop(f, None)
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            which = el.WhichOneof("type")
            if which == "exception":
                self.exceptions += 1
            elif which == "button" and el.button.label == "▶ Train":
                self.train_id = el.button.id
                self.painted_at = self.painted_at or time.monotonic()
            elif which == "vega_lite_chart" and self.trained_at and (
                    not self.charts or time.monotonic() - self.charts[-1] > 0.2):
                self.charts.append(time.monotonic())
            elif which == "bidi_component" and el.bidi_component.component_name == "dllab.counters":
                data = json.loads(el.bidi_component.json)
                self.counters = (data["url"], data["every_ms"] / 1000) if data["url"] else None
                self.shown(data["values"])

    def shown(self, values: list) -> None:
        """The counters were drawn (by a run, or from the route's answer): a redraw, and an
        update if the epoch moved."""
        now = time.monotonic()
        if self.trained_at:
            self.reruns.append(now)
        epoch = int(next(v for label, v, _ in values if label == "Epoch").replace(",", "") or 0)
        if not self.epochs or epoch != self.epochs[-1][1]:
            self.epochs.append((now, epoch))

    async def ask_counters(self, host: str, port: int, stop_at: float) -> None:
        """What the counters' component does while the job trains: GET its route every
        `every` seconds, over one kept-alive connection, and draw the answer."""
        reader = writer = None
        while time.monotonic() < stop_at:
            if self.counters is None:
                await asyncio.sleep(0.05)
                continue
            path, every = self.counters
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nCookie: {self.cookie}\r\n\r\n".encode())
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = int(next(line.split(":")[1] for line in head.split("\r\n")
                                  if line.lower().startswith("content-length")))
                body = json.loads(await reader.readexactly(length))
                if head.startswith("HTTP/1.1 200"):
                    self.shown(body["values"])
                    if not body["live"]:
                        self.counters = None
            except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                reader = writer = None  # a dropped connection: a new one at the next tick
            await asyncio.sleep(every)
        if writer is not None:
            writer.close()

    async def run(self, start_at: float, stop_at: float, train: bool = True) -> None:
        import websockets

        async with websockets.connect(self.ws_url, subprotocols=["streamlit"], max_size=None,
                                      origin="http://127.0.0.1") as ws:
            self.connected_at = time.monotonic()
            self.cookie = "; ".join(c.split(";")[0] for c in ws.response.headers.get_all("Set-Cookie"))
            await ws.send(self._state())

            async def reader():
                async for data in ws:
                    self._read(data)

            address = urlsplit(self.ws_url)
            task = asyncio.create_task(reader())
            asker = asyncio.create_task(self.ask_counters(address.hostname, address.port, stop_at))
            try:
                while self.train_id is None and time.monotonic() < stop_at:
                    await asyncio.sleep(0.05)
                if not train:
                    return
                await asyncio.sleep(max(0.0, start_at - time.monotonic()))
                if self.train_id is not None:
                    self.trained_at = time.monotonic()
                    await ws.send(self._state(trigger=self.train_id))
                due: dict[str, float] = {}
                while time.monotonic() < stop_at:  # the frontend's timers for run_every fragments
                    now = time.monotonic()
                    for frag, every in list(self.fragments.items()):
                        if now >= due.setdefault(frag, now + every):
                            due[frag] = now + every
                            await ws.send(self._state(fragment=frag))
                    await asyncio.sleep(0.05)
            finally:
                task.cancel()
                asker.cancel()

    def figures(self) -> dict:
        """Update gaps count from the click on ▶ Train (the wait for the first epoch is one of
        them), not from the page's first paint: the tables in docs/PERFORMANCE.md before
        "Re-measured on 2026-11-29, last" counted from the first paint, so their first gap
        also held the seconds a student waited for the class to start."""
        before = [e for t, e in self.epochs if self.trained_at is None or t <= self.trained_at]
        shown = [(self.trained_at, before[-1] if before else 0)] if self.trained_at else []
        shown += [(t, e) for t, e in self.epochs if self.trained_at and t > self.trained_at]
        gaps = [b[0] - a[0] for a, b in zip(shown, shown[1:])]
        trained = self.epochs[-1][1] - self.epochs[0][1] if len(self.epochs) > 1 else 0
        span = (self.epochs[-1][0] - self.trained_at) if self.epochs and self.trained_at else 0
        return {"paint": (self.painted_at - self.connected_at) if self.painted_at else None, "gaps": gaps,
                "chart_gaps": [b - a for a, b in zip(self.charts, self.charts[1:])],
                "rerun_gaps": [b - a for a, b in zip(self.reruns, self.reruns[1:])],
                "epochs": trained, "rate": trained / span if span > 0 else 0.0, "exceptions": self.exceptions}


async def _visit(url: str) -> None:
    """One page load, then leave (every web process behind the proxy gets one)."""
    for _ in range(4):
        await Student(url, "playground").run(0, time.monotonic() + 60, train=False)


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (the web process and its workers)."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,rss"], capture_output=True, text=True).stdout.split("\n")[1:]
    rows = [tuple(map(int, line.split())) for line in out if line.strip()]
    family, grew = {pid}, True
    while grew:
        grew = False
        for p, parent, _ in rows:
            if parent in family and p not in family:
                family.add(p)
                grew = True
    return round(sum(rss for p, _, rss in rows if p in family) / 1024, 1)


CPU_KINDS = (("workers", "dl_core.engine.worker_main"), ("web", "streamlit run"), ("haproxy", "haproxy"),
             ("chromium", "chrom"), ("chromium", "playwright"))


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this machine's processes of each kind (CPU_KINDS, by command
    line; "students": this benchmark process). A class's split of the two cores shows who took
    them: the real Chromium page drawing a live view took 0.35-0.7 of them from the server it
    measures. Linux /proc; empty elsewhere."""
    used: dict[str, float] = {}
    if not os.path.isdir("/proc"):
        return used
    tick = os.sysconf("SC_CLK_TCK")
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        kind = "students" if int(pid) == os.getpid() else next((k for k, mark in CPU_KINDS if mark in args), None)
        if kind:
            used[kind] = used.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def _workers() -> int:
    """Training worker processes alive on this machine (the benchmark's server is the only app)."""
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum("dl_core.engine.worker_main" in line for line in out.splitlines())


def _bare_room_rate(rounds: int = 5) -> float:
    """Epochs/s of a bare PyTorch loop on the Playground's defaults, times the cores: the best of
    `rounds` short rounds (one 200-epoch round read 178 to 293 epochs/s from one run to the next
    on this shared VM; the best is the stricter reference)."""
    from benchmarks.common import bare_steps_per_s
    from dl_core.playground import Setup, make_job

    job = make_job(Setup())[0]
    steps_per_epoch = -(-job.trainer.n_train // job.config.batch_size)
    best = max(bare_steps_per_s(make_job(Setup())[0], 60) for _ in range(rounds))
    return best / steps_per_epoch * (os.cpu_count() or 1)


def _start(kind: str, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if kind == "classroom":
        cmd = [sys.executable, "classroom.py", "--web", os.environ.get("DLLAB_BENCH_WEB", "2"), "--port", str(port)]
    else:
        cmd = streamlit_cmd(port)
    proc = spawn(cmd, env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, 120)
    return proc, url


def _chromium_student(url: str, stop_at: float, out: dict) -> None:
    """One real page: first paint and the visible update gap, read off the Epoch metric."""
    import re

    from playwright.sync_api import sync_playwright

    from benchmarks.browser import CHROMIUM_ARGS, chromium, counter

    path = chromium()
    if path is None:
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        t0 = time.monotonic()
        page.goto(f"{url}/playground?stop=never&speed=full")  # as fast and as long as it can, as before the defaults
        page.get_by_role("button", name="▶ Train").wait_for(timeout=300_000)
        out["chromium_first_paint_s"] = round(time.monotonic() - t0, 2)
        page.get_by_role("button", name="▶ Train").click()
        seen, gaps = None, []
        while time.monotonic() < stop_at:
            try:
                text = counter(page, "Epoch").inner_text(timeout=1000)
                epoch = int(re.search(r"Epoch\s+([\d,]+)", text).group(1).replace(",", ""))
            except Exception:  # noqa: BLE001 - mid-redraw
                epoch = None
            if epoch is not None and (seen is None or epoch != seen[1]):
                if seen is not None:
                    gaps.append(time.monotonic() - seen[0])
                seen = (time.monotonic(), epoch)
            time.sleep(0.1)
        out["chromium_update_gap_p50_s"], out["chromium_update_gap_p95_s"] = _pct(gaps, 0.5), _pct(gaps, 0.95)
        out["chromium_exceptions"] = page.locator("[data-testid='stException']").count()
        browser.close()


def run(students: int = 10, seconds: float = 60, start: str = "plain", chromium_page: bool = True) -> dict:
    students, seconds = min(students, MAX_STUDENTS), min(seconds, MAX_SECONDS)
    import tempfile
    import threading

    # as fast and as long as it goes (scripted students send no URL)
    env = {"DLLAB_RUN_STORE": tempfile.mkdtemp(prefix="dllab-bench-runs-"), "DLLAB_SESSION_GRACE_S": "5",
           "DLLAB_SPEED": "full", "DLLAB_STOP": "never"}
    proc, url = _start(start, env)
    try:
        asyncio.run(_visit(url))  # the server as a teacher leaves it before class: opened once
        # The page warmed the workers (Executor.warm). Before class they rest (DLLAB_WORKER_IDLE_S: their
        # jobs dropped), up and ready; with DLLAB_WORKER_EXIT_S set under 90 s they are gone: a cold pool.
        exit_s = float(os.environ.get("DLLAB_WORKER_EXIT_S", "600"))
        time.sleep(float(os.environ.get("DLLAB_WORKER_IDLE_S", "20")) + 2)
        end = time.monotonic() + 90
        while exit_s < 90 and _workers() and time.monotonic() < end:
            time.sleep(1)
        time.sleep(2)
        rss_before = _rss_mb(proc.pid)
        room = [Student(url, "playground") for _ in range(students)]
        t0 = time.monotonic()
        start_at, stop_at = t0 + 5, t0 + 5 + seconds
        browser_out: dict = {}
        page = threading.Thread(target=_chromium_student, args=(url, stop_at, browser_out), daemon=True)
        if chromium_page:
            page.start()
        peak = [rss_before]

        cpu = []

        async def everyone():
            async def split():  # the cores' split over the class, from ▶ Train to just before the end
                for at in (start_at, stop_at - 1):  # (Chromium, polling till the end, is still up)
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    cpu.append((time.monotonic(), _cpu_seconds()))

            async def watch():
                while time.monotonic() < stop_at:
                    peak.append(_rss_mb(proc.pid))
                    await asyncio.sleep(2)
            await asyncio.gather(split(), watch(), *(s.run(start_at, stop_at) for s in room), return_exceptions=True)

        asyncio.run(everyone())
        if chromium_page:
            page.join(60)
        figs = [s.figures() for s in room]
        if os.environ.get("DLLAB_BENCH_TRACE"):  # every student's timeline, for a closer look
            Path(os.environ["DLLAB_BENCH_TRACE"]).write_text(json.dumps(
                [{"trained_at": s.trained_at - t0 if s.trained_at else None,
                  "epochs": [(t - t0, e) for t, e in s.epochs],
                  "reruns": [t - t0 for t in s.reruns]} for s in room]))
        # everyone left: jobs stop after the grace period, memory should come back
        time.sleep(float(os.environ.get("DLLAB_BENCH_AFTER_S", "60")))
        rss_after = _rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    paints = [f["paint"] for f in figs if f["paint"] is not None]
    gaps = [g for f in figs for g in f["gaps"]]
    chart_gaps = [g for f in figs for g in f["chart_gaps"]]
    rerun_gaps = [g for f in figs for g in f["rerun_gaps"]]
    rates = [f["rate"] for f in figs]
    bare = _bare_room_rate()
    return {"start": start, "students": students, "seconds": seconds,
            "first_paint_p50_s": _pct(paints, 0.5), "first_paint_p95_s": _pct(paints, 0.95),
            "painted": len(paints), "update_gap_p50_s": _pct(gaps, 0.5), "update_gap_p95_s": _pct(gaps, 0.95),
            "chart_redraw_gap_p50_s": _pct(chart_gaps, 0.5), "chart_redraw_gap_p95_s": _pct(chart_gaps, 0.95),
            "rerun_gap_p50_s": _pct(rerun_gaps, 0.5), "rerun_gap_p95_s": _pct(rerun_gaps, 0.95),
            "reruns_without_new_epoch": round(1 - len(gaps) / max(1, len(rerun_gaps)), 3),
            "trained_at_all": sum(1 for f in figs if f["epochs"] > 0),
            "epochs_per_s_min": round(min(rates), 2), "epochs_per_s_median": round(statistics.median(rates), 2),
            "room_epochs_per_s": round(sum(rates), 1), "bare_loop_all_cores_epochs_per_s": round(bare, 1),
            "room_vs_bare": round(sum(rates) / bare, 3), "exceptions": sum(f["exceptions"] for f in figs),
            "rss_mb_before": rss_before, "rss_mb_peak": max(peak), "rss_mb_after_1_min": rss_after,
            **{f"cpu_cores_{k}": round((v - cpu[0][1].get(k, 0.0)) / (cpu[1][0] - cpu[0][0]), 2)
               for k, v in sorted(cpu[1][1].items())},
            **browser_out}
