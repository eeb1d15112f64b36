"""The classroom benchmark's own arithmetic (benchmarks/classroom.py): what a student's page
showed, turned into the figures docs/PERFORMANCE.md reports."""
import pytest

from benchmarks.classroom import Student


def test_update_gaps_count_from_the_click_on_train_and_redraws_without_a_new_epoch_show():
    s = Student("http://127.0.0.1:1", "playground")
    s.connected_at, s.painted_at, s.trained_at = 0.0, 1.0, 5.0
    s.epochs = [(1.0, 0), (7.0, 1), (8.0, 4), (10.0, 9)]  # epoch 0 drawn at first paint, 4 s before the click
    s.reruns = [6.9, 7.9, 8.9, 9.9]
    f = s.figures()
    assert f["gaps"] == pytest.approx([2.0, 1.0, 2.0])  # the click -> epoch 1, then epoch to epoch; not 1.0 -> 7.0
    assert f["rerun_gaps"] == pytest.approx([1.0, 1.0, 1.0])
    assert f["epochs"] == 9 and f["rate"] == pytest.approx(9 / 5.0)
