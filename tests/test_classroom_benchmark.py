"""The classroom benchmark's own arithmetic (benchmarks/classroom.py): what a student's page
showed, turned into the figures docs/PERFORMANCE.md reports."""
import json
import os
import subprocess
import sys
import time

import pytest

from benchmarks.classroom import Student, _cpu_seconds


def test_update_gaps_count_from_the_click_on_train_and_redraws_without_a_new_epoch_show():
    s = Student("http://127.0.0.1:1", "playground")
    s.connected_at, s.painted_at, s.trained_at = 0.0, 1.0, 5.0
    s.epochs = [(1.0, 0), (7.0, 1), (8.0, 4), (10.0, 9)]  # epoch 0 drawn at first paint, 4 s before the click
    s.reruns = [6.9, 7.9, 8.9, 9.9]
    f = s.figures()
    assert f["gaps"] == pytest.approx([2.0, 1.0, 2.0])  # the click -> epoch 1, then epoch to epoch; not 1.0 -> 7.0
    assert f["rerun_gaps"] == pytest.approx([1.0, 1.0, 1.0])
    assert f["epochs"] == 9 and f["rate"] == pytest.approx(9 / 5.0)


def test_the_counters_count_as_drawn_by_a_run_and_by_each_answer_of_their_route():
    """The counters are a component (ui/counters.py): a run draws them with their route, which
    the student then asks as the browser would; each drawing is a redraw, a new epoch an update.
    Pictures and charts alone (a full room's fragment) draw no counters and count as neither."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def counters(epoch: int, url: str | None) -> bytes:
        m = ForwardMsg()
        el = m.delta.new_element.bidi_component
        el.component_name = "dllab.counters"
        el.json = json.dumps({"values": [["Epoch", f"{epoch:,}", None], ["Step", "5", None]], "url": url,
                              "every_ms": 500})
        return m.SerializeToString()

    finished = ForwardMsg(script_finished=ForwardMsg.FINISHED_SUCCESSFULLY).SerializeToString()
    s = Student("http://127.0.0.1:1", "playground")
    s._read(counters(0, None))
    assert s.counters is None and [e for _, e in s.epochs] == [0] and not s.reruns  # before ▶ Train
    s.trained_at = 1.0
    s._read(counters(1, "/lab-api/counters?k=abc"))
    assert s.counters == ("/lab-api/counters?k=abc", 0.5)
    for data in (finished, finished):
        s._read(data)
    s.shown([["Epoch", "1", None]])  # the route's answers
    s.shown([["Epoch", "1,002", None]])
    assert len(s.reruns) == 3 and [e for _, e in s.epochs] == [0, 1, 1002]


def test_a_student_asks_the_counters_route_with_the_proxys_cookie_until_the_job_stops():
    """Against a tiny HTTP server on 127.0.0.1: the student's requests carry the cookie, and
    an answer that says the job no longer trains ends the asking."""
    import asyncio

    seen, answers = [], iter([(7, True), (8, True), (9, False)])

    async def serve(reader, writer):
        while True:
            try:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
            except asyncio.IncompleteReadError:
                return
            seen.append(head)
            epoch, live = next(answers)
            body = json.dumps({"values": [["Epoch", str(epoch), None]], "live": live}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        s = Student(f"http://127.0.0.1:{port}", "playground")
        s.trained_at, s.cookie, s.counters = 0.5, "DLLAB_WEB=web2", ("/lab-api/counters?k=t", 0.05)
        await asyncio.wait_for(s.ask_counters("127.0.0.1", port, time.monotonic() + 2), 5)
        server.close()
        return s

    s = asyncio.run(main())
    assert [e for _, e in s.epochs] == [7, 8, 9] and s.counters is None and len(seen) == 3
    assert all(h.startswith("GET /lab-api/counters?k=t HTTP/1.1") and "Cookie: DLLAB_WEB=web2" in h for h in seen)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_the_cores_split_counts_each_kind_of_process_by_its_command_line():
    """The split of the cores over a class (cpu_cores_*) adds up each kind's CPU time: a child
    whose command line names HAProxy and burns 0.5 s of CPU counts 0.5 s there, and the
    benchmark's own CPU counts under "students"."""
    burn = ("import time\ntime.sleep(1)\nend = time.process_time() + 0.5\n"
            "while time.process_time() < end: pass\ntime.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", burn, "haproxy"])
    try:
        before = _cpu_seconds()
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass
        time.sleep(2.5)  # the child's half second (after a second's sleep) is spent by now
        after = _cpu_seconds()
    finally:
        child.kill()
        child.wait()
    assert 0.25 <= after["students"] - before["students"] <= 1.0
    assert 0.3 <= after["haproxy"] - before.get("haproxy", 0.0) <= 0.7, (before, after)
