"""The teacher's view: the room at a glance and a challenge board, behind the teacher's token.

The token is set when the server starts (DLLAB_TEACHER_TOKEN); without it the page is
off. Learners who open the address see a password box and nothing of the room; wrong tokens are
limited for the whole server (dl_core/classroom.py's Gate), and the session that gave the right
one keeps a seal only the token makes, not a flag a file could set. The page shows counts and
names, never run ids.
"""
import os

import streamlit as st

from dl_core.classroom import CHALLENGES, GATE, LESSON, MIN_TOKEN_CHARS, board, room
from dl_core.engine import RUNS, executor
from ui import state, widgets

ss = st.session_state
widgets.keep_alive()
st.title("🧑‍🏫 Teacher's view")
token = os.environ.get("DLLAB_TEACHER_TOKEN", "")
if not token:
    st.info("The teacher's view is off on this server. Start it with a token of your choice, e.g. "
            "`DLLAB_TEACHER_TOKEN=… streamlit run app.py` (see docs/CLASSROOM.md).")
    st.stop()
if not GATE.sealed(ss.get(state.TEACHER), widgets.session_id(), token):
    given = st.text_input("Teacher's token", type="password", key="teacher_token")
    verdict = GATE.check(given, token) if given else None
    if verdict == "short" or (verdict is None and len(token) < MIN_TOKEN_CHARS):
        st.error(f"This server's teacher token is shorter than {MIN_TOKEN_CHARS} characters, so the view stays "
                 "off: restart the server with a longer DLLAB_TEACHER_TOKEN.")
    elif verdict == "ok":
        ss[state.TEACHER] = GATE.seal(widgets.session_id(), token)
        ss.pop("teacher_token", None)
        st.rerun()
    elif verdict == "wait":
        st.error("Too many wrong tokens were tried on this server: wait a minute, then try again.")
    elif verdict == "wrong":
        st.error("That is not this server's teacher token.")
    st.stop()

choice = st.selectbox("Challenge for the class", ["none", *CHALLENGES],
                      format_func=lambda k: "No challenge" if k == "none" else CHALLENGES[k].title,
                      index=0 if LESSON.challenge is None else 1 + list(CHALLENGES).index(LESSON.challenge))
LESSON.challenge = None if choice == "none" else choice


@st.fragment(run_every=2.0)
def live():
    r = room(RUNS, executor())
    c = st.columns(5)
    c[0].metric("Learners connected", r["connected"])
    c[1].metric("Training now", r["training"])
    c[2].metric("Waiting for a turn", r["queued"])
    c[3].metric("Server load", f"{r['load_avg']:.1f} / {r['cpus']} cores" if r["load_avg"] is not None else "–")
    c[4].metric("Web process memory", f"{r['rss_mb']:.0f} MB")
    st.caption(f"Training runs on {r['lanes']} {r['backend']} workers, at most {r['capacity']} jobs taking turns; "
               f"{r['runs']} network{'s' * (r['runs'] != 1)} on the server.")
    if LESSON.challenge is None:
        st.caption("Pick a challenge above: learners see it in their sidebar, and the board fills as they train.")
        return
    challenge = CHALLENGES[LESSON.challenge]
    st.subheader(f"🏆 {challenge.title}")
    st.caption(challenge.rule + " Learners appear under the name they chose in their sidebar, else as "
               "'Learner n'.")
    rows = board(challenge, RUNS)
    if not rows:
        st.info("Nobody has trained on this challenge's data yet.")
        return
    st.dataframe([{"learner": row["learner"], "reached": "✅" if row["reached"] else "…",
                   "best so far": round(row["best"], 4)} for row in rows], hide_index=True, width="stretch")


live()
