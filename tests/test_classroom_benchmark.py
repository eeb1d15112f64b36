"""The classroom benchmark's own arithmetic (benchmarks/classroom.py): what a student's page
showed, turned into the figures docs/PERFORMANCE.md reports."""
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


def test_a_redraw_counts_when_it_drew_the_counters_not_when_only_the_pictures_came():
    """In a full room the pictures and charts redraw in a fragment of their own (shell.live):
    such a run shows no epoch by design, and must not count as a redraw that found nothing new."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    def msg(build) -> bytes:
        m = ForwardMsg()
        build(m)
        return m.SerializeToString()

    def epoch(n: int) -> bytes:
        def build(m):
            m.delta.new_element.metric.label, m.delta.new_element.metric.body = "Epoch", str(n)
        return msg(build)

    finished = msg(lambda m: setattr(m, "script_finished", ForwardMsg.FINISHED_SUCCESSFULLY))
    s = Student("http://127.0.0.1:1", "playground")
    s.trained_at = 1.0
    for data in (epoch(1), finished, finished, epoch(1), finished, epoch(2), finished):
        s._read(data)
    assert len(s.reruns) == 3 and [e for _, e in s.epochs] == [1, 2]


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_the_cores_split_counts_each_kind_of_process_by_its_command_line():
    """The split of the cores over a class (cpu_cores_*) adds up each kind's CPU time: a child
    whose command line names HAProxy and burns 0.5 s of CPU counts 0.5 s there, and the
    benchmark's own CPU counts under "students"."""
    burn = "import time\ntime.sleep(1)\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass\ntime.sleep(30)"
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
