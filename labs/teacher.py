"""The teacher's view: the room at a glance and a challenge board, behind the teacher's token.

The token is set when the server starts (DLLAB_TEACHER_TOKEN); without it the page is
off. Learners who open the address see a password box and nothing of the room. The page
shows counts and names, never run ids.
"""
import hmac
import os

import streamlit as st

from dl_core.classroom import CHALLENGES, LESSON, board, room
from dl_core.engine import RUNS, executor
from ui import widgets

ss = st.session_state
widgets.keep_alive()
st.title("🧑‍🏫 Teacher's view")
token = os.environ.get("DLLAB_TEACHER_TOKEN", "")
if not token:
    st.info("The teacher's view is off on this server. Start it with a token of your choice, e.g. "
            "`DLLAB_TEACHER_TOKEN=… streamlit run app.py` (see docs/CLASSROOM.md).")
    st.stop()
if not ss.get("teacher_ok"):
    given = st.text_input("Teacher's token", type="password", key="teacher_token")
    if given and hmac.compare_digest(given.encode(), token.encode()):
        ss["teacher_ok"] = True
        ss.pop("teacher_token", None)
        st.rerun()
    if given:
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
