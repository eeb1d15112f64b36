"""A live view's counters (epoch, step, losses), kept fresh by the browser itself.

A counter redrawn by a Streamlit fragment costs a whole script run: a new script thread,
the run's bookkeeping, its messages. Twice a second for each of 30 learners that was most
of the web processes' work, and the tail of the room's update gap was Streamlit's per-run
machinery, not our 3 ms of counting (docs/PERFORMANCE.md, session 6). So the counters are a
small component (st.components.v2) that asks one HTTP route of this server for their
numbers while the job trains: a few hundred bytes of JSON, no script run.

The route answers only to a token that this process made for one job and handed to the
page that owns the job: another learner cannot name it, and it never carries a run id.
The numbers come from the lab's own `values(job)` (the same function draws the counters
on a full run), so the page and the route can never disagree on what a counter says.
"""
from __future__ import annotations

import json
import secrets
import threading
import weakref
from typing import Callable, NamedTuple

import streamlit as st
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PATH = "/lab-api/counters"


class Counter(NamedTuple):
    """One tile: its label, its value as shown, a line under it (or None) and its tooltip."""
    label: str
    value: str
    note: str | None = None
    help: str | None = None


Values = Callable[[object], list[Counter]]

_lock = threading.Lock()
_tokens: "weakref.WeakKeyDictionary[object, str]" = weakref.WeakKeyDictionary()  # job -> its token
_jobs: dict[str, tuple[weakref.ref, Values]] = {}  # token -> (job, how its counters read)


def token(job, values: Values) -> str:
    """The token that names `job`'s counters to the route (one per job, made on first use);
    it forgets the job when the job is gone."""
    with _lock:
        tok = _tokens.get(job)
        if tok is None:
            tok = _tokens[job] = secrets.token_urlsafe(18)
            weakref.finalize(job, _jobs.pop, tok, None)
        _jobs[tok] = (weakref.ref(job), values)
        return tok


def read(tok: str) -> dict | None:
    """What the route answers for `tok`: the counters now and whether the job still trains
    (the page stops asking once it does not); None for a token this process never made."""
    with _lock:
        found = _jobs.get(tok)
    job = found[0]() if found else None
    if job is None:
        return None
    return {"values": _rows(found[1](job)), "live": bool(job.status()["busy"])}


async def _route(request: Request) -> JSONResponse:
    """GET PATH?k=TOKEN. On the server's event loop: what it reads is a few numbers under the
    job's own short lock, never a picture or a history."""
    body = read(request.query_params.get("k", ""))
    if body is None:
        return JSONResponse({"error": "no such job on this server"}, status_code=404)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


ROUTES = [Route(PATH, _route, methods=["GET"])]

_JS = """
export default function(component) {
  const { data, parentElement } = component;
  const root = parentElement.querySelector('.dl-counters');
  root.style.gridTemplateColumns = `repeat(${data.values.length}, minmax(0, 1fr))`;
  const draw = (values) => {
    root.replaceChildren(...values.map(([label, value, note], i) => {
      const tile = document.createElement('div');
      tile.className = 'dl-counter';
      const help = data.helps[i];
      if (help) tile.title = help;
      for (const [cls, text] of [['dl-label', label], ['dl-value', value], ['dl-note', note]]) {
        if (text === null || text === undefined) continue;
        const el = document.createElement('div');
        el.className = cls;
        el.textContent = text;
        tile.appendChild(el);
      }
      return tile;
    }));
  };
  draw(data.values);
  if (!data.url) return;
  let stopped = false, timer = null;
  const tick = async () => {
    try {
      const reply = await fetch(data.url, { cache: 'no-store', credentials: 'same-origin' });
      if (!reply.ok) { stopped = true; return; }  // the job is gone from this server: the page reruns soon
      const body = await reply.json();
      if (stopped) return;
      draw(body.values);
      if (!body.live) { stopped = true; return; }
    } catch (e) { /* a dropped request: ask again at the next tick */ }
    if (!stopped) timer = setTimeout(tick, data.every_ms);
  };
  timer = setTimeout(tick, data.every_ms);
  return () => { stopped = true; clearTimeout(timer); };
}
"""
_CSS = """
.dl-counters { display: grid; gap: 1rem; font-family: var(--st-font, inherit); color: var(--st-text-color, inherit); }
.dl-label { font-size: 0.875rem; opacity: 0.8; }
.dl-value { font-size: 2.25rem; line-height: 1.3; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.dl-note { font-size: 0.875rem; opacity: 0.7; }
"""
_COMPONENT = st.components.v2.component("dllab.counters", html="<div class='dl-counters'></div>", css=_CSS, js=_JS)


def draw(job, values: Values, every_s: float | None, key: str = "live_counters") -> None:
    """The counters as `values(job)` reads them now; while `every_s` is set (the job trains),
    the browser asks the route for them again every `every_s` seconds."""
    shown = values(job)
    url = f"{PATH}?k={token(job, values)}" if every_s else None  # st.App mounts routes at the root, base path or not
    _COMPONENT(key=key, data={"values": _rows(shown), "helps": [c.help for c in shown],
                              "url": url, "every_ms": int(1000 * (every_s or 1))})


def _rows(shown: list[Counter]) -> list[list]:
    """[label, value, note] per counter: what the page is handed and what the route answers."""
    return [list(c[:3]) for c in shown]


def shown(element) -> dict[str, tuple[str, str | None]]:
    """label -> (value, the line under it) of a counters element as the page got it (tests read it)."""
    return {label: (value, note) for label, value, note in json.loads(element.json)["values"]}

