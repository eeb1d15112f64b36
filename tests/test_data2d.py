import numpy as np
import pytest

from dl_core.data import data2d
from dl_core.data.data2d import DATASETS, FEATURES, DataError, feature_matrix, make_dataset, parse_csv, to_csv


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_is_deterministic_and_well_formed(name):
    a = make_dataset(name, 300, 0.1, 0.6, seed=7)
    b = make_dataset(name, 300, 0.1, 0.6, seed=7)
    c = make_dataset(name, 300, 0.1, 0.6, seed=8)
    info = DATASETS[name]
    assert np.array_equal(a.points, b.points) and np.array_equal(a.targets, b.targets)
    assert np.array_equal(a.is_train, b.is_train)
    assert not np.array_equal(a.points, c.points)
    assert a.points.shape == (300, 2) and a.points.dtype == np.float32
    assert a.is_train.sum() == 180
    assert np.isfinite(a.points).all() and np.abs(a.points).max() < 12
    if info.task == "classification":
        assert set(np.unique(a.targets)) == set(range(info.n_classes))
        counts = np.bincount(a.targets)
        assert counts.min() >= 300 / info.n_classes * 0.8  # balanced classes
    else:
        assert a.targets.dtype == np.float32 and a.targets.std() > 0


def test_noise_moves_points_or_labels():
    clean = make_dataset("circle", 400, 0.0, 0.5, 3)
    noisy = make_dataset("circle", 400, 0.5, 0.5, 3)
    inside = np.linalg.norm(clean.points, axis=1) < 2.5
    assert np.array_equal(clean.targets, inside.astype(int))  # no noise: labels follow the geometry
    assert (noisy.targets != (np.linalg.norm(noisy.points, axis=1) < 2.5)).sum() > 10


@pytest.mark.parametrize("bad", [dict(n_samples=2), dict(noise=0.9), dict(train_ratio=1.0), dict(name="nope")])
def test_bad_dataset_requests_are_refused_with_a_sentence(bad):
    args = dict(name="circle", n_samples=100, noise=0.0, train_ratio=0.5) | bad
    with pytest.raises(DataError, match=r"\w+ \w+"):
        make_dataset(**args)


def test_features_match_their_formulas_in_numpy_and_torch():
    import torch

    pts = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
    m = feature_matrix(pts, tuple(FEATURES))
    x, y = pts[:, 0], pts[:, 1]
    expected = np.stack([x, y, x * x, y * y, x * y, np.sin(x), np.sin(y), np.cos(x), np.cos(y)], 1)
    np.testing.assert_allclose(m, expected, rtol=1e-6)
    np.testing.assert_allclose(feature_matrix(torch.tensor(pts), tuple(FEATURES)).numpy(), expected, rtol=1e-6)
    with pytest.raises(DataError, match="at least one input feature"):
        feature_matrix(pts, ())


def test_csv_round_trip_classification_and_regression():
    ds = make_dataset("spiral3", 60, 0.0, 0.5, 1)
    back = parse_csv(to_csv(ds).encode())
    assert back.task == "classification" and back.n_classes == 3
    np.testing.assert_allclose(back.points, ds.points, atol=1e-4)
    assert np.array_equal(back.targets, ds.targets)
    reg = parse_csv(b"x,y,target\n0,0,0.5\n1,1,1.5\n2,2,2.5\n3,3,3.5\n")
    assert reg.task == "regression" and reg.targets.tolist() == [0.5, 1.5, 2.5, 3.5]
    headerless = parse_csv(b"0,0,3\n1,1,7\n2,2,3\n3,3,7\n")
    assert headerless.task == "classification" and headerless.targets.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xff\xfe\x00garbage\x00", "not text"),
    (b"a,b,c\n1,2,3\n", "header must be"),
    (b"x,y,label\n1,2\n3,4\n5,6\n7,8\n", "three numbers|3 columns"),
    (b"x,y,label\n1,2,0\n", "at least 4 rows"),
    (b"x,y,label\n", "a header but no rows"),  # it said "this file has 1 column"
    (b"x,y,label\n1,2,0\n1,nan,1\n1,2,0\n3,4,1\n", "NaN"),
    (b"x,y,label\n1,2,0\n2,2,0\n3,3,0\n4,4,0\n", "two different labels"),
    (b"x,y,label\n1,2,0.5\n2,2,0\n3,3,1\n4,4,0\n", "whole numbers"),
    (b"x,y,label\n1,2,0\nfoo,2,0\n3,3,1\n4,4,0\n", "three numbers"),
])
def test_bad_csv_gets_a_clear_message(content, message):
    with pytest.raises(DataError, match=message):
        parse_csv(content)


def test_added_points_join_the_chosen_split_and_are_validated():
    ds = make_dataset("circle", 100, 0.0, 0.5, 1)
    more = ds.with_points([[0.1, 0.2], [5, 5]], [1, 0], train=True)
    assert len(more.points) == 102 and more.is_train[-2:].all() and more.targets[-2:].tolist() == [1, 0]
    with pytest.raises(DataError, match="between 0 and 1"):
        ds.with_points([[0, 0]], [2])
    with pytest.raises(DataError, match="At most"):
        ds.with_points(np.zeros((data2d.MAX_POINTS, 2)), np.zeros(data2d.MAX_POINTS, int))
