"""Two-dimensional teaching datasets, input features and user CSV uploads.

The generators follow TensorFlow Playground's definitions (points in the
square [-6, 6]², noise as a fraction 0–0.5) so lessons carry over, and add
multi-class sets. Every dataset is a pure function of its settings and seed:
the same URL gives every student in a room the same points.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

DOMAIN = 6.0  # points live in [-DOMAIN, DOMAIN]²
MAX_POINTS = 5000
MAX_CSV_BYTES = 2**20  # checked before the file is read: MAX_POINTS rows of three long numbers take a third of it


class DataError(ValueError):
    """A dataset request or upload that cannot be used; the message is for the learner."""


@dataclass(frozen=True)
class DatasetInfo:
    label: str
    task: str  # "classification" | "regression"
    n_classes: int  # 1 for regression
    make: Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]
    curve: bool = False  # y-coordinate is the target of a 1-D function
    blurb: str = ""


def _uniform_disc(rng, n, r0, r1):
    r = rng.uniform(r0, r1, n)
    a = rng.uniform(0, 2 * math.pi, n)
    return np.stack([r * np.sin(a), r * np.cos(a)], 1)


def _circle(rng, n, noise):
    radius = 5.0
    inner = _uniform_disc(rng, n // 2, 0, radius * 0.5)
    outer = _uniform_disc(rng, n - n // 2, radius * 0.7, radius)
    pts = np.concatenate([inner, outer])
    jitter = rng.uniform(-radius, radius, pts.shape) * noise
    label = (np.linalg.norm(pts + jitter, axis=1) < radius * 0.5).astype(np.int64)
    return pts, label


def _xor(rng, n, noise):
    pts = rng.uniform(-5, 5, (n, 2))
    pts += np.where(pts > 0, 0.3, -0.3)
    jitter = rng.uniform(-5, 5, pts.shape) * noise
    moved = pts + jitter
    return pts, (moved[:, 0] * moved[:, 1] >= 0).astype(np.int64)


def _gaussians(centres, rng, n, noise):
    spread = 0.5 + (4 - 0.5) * noise / 0.5
    k = len(centres)
    label = np.arange(n) % k
    pts = np.asarray(centres, float)[label] + rng.normal(0, math.sqrt(spread), (n, 2))
    return pts, label.astype(np.int64)


def _spiral(arms, rng, n, noise):
    label = np.arange(n) % arms
    i = np.arange(n) // arms
    per_arm = math.ceil(n / arms)
    r = i / per_arm * 5
    t = 1.75 * i / per_arm * 2 * math.pi + label * 2 * math.pi / arms
    pts = np.stack([r * np.sin(t), r * np.cos(t)], 1) + rng.uniform(-1, 1, (n, 2)) * noise
    return pts, label.astype(np.int64)


def _moons(rng, n, noise):
    t = rng.uniform(0, math.pi, n)
    label = np.arange(n) % 2
    x = np.where(label == 0, np.cos(t), 1 - np.cos(t))
    y = np.where(label == 0, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x - 0.5, y - 0.25], 1) * 3.5 + rng.normal(0, 1, (n, 2)) * noise * 2
    return pts, label.astype(np.int64)


def _plane(rng, n, noise):
    pts = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
    moved = pts + rng.uniform(-DOMAIN, DOMAIN, pts.shape) * noise
    return pts, ((moved[:, 0] + moved[:, 1]) / 10).astype(np.float32)


_BUMPS = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]


def _bumps(rng, n, noise):
    pts = rng.uniform(-DOMAIN, DOMAIN, (n, 2))
    moved = pts + rng.uniform(-DOMAIN, DOMAIN, pts.shape) * noise
    best = np.zeros(n)
    for cx, cy, sign in _BUMPS:
        d = np.hypot(moved[:, 0] - cx, moved[:, 1] - cy)
        value = sign * np.clip(1 - d / 2, 0, 1)
        best = np.where(np.abs(value) > np.abs(best), value, best)
    return pts, best.astype(np.float32)


def _curve(rng, n, noise):
    x = rng.uniform(-DOMAIN, DOMAIN, n)
    y = 3 * np.sin(x) * np.exp(-np.abs(x) / 6) + 0.15 * x
    y = y + rng.normal(0, 1, n) * noise * 2
    return np.stack([x, y], 1), y.astype(np.float32)


DATASETS: dict[str, DatasetInfo] = {
    "circle": DatasetInfo("Circle", "classification", 2, _circle, blurb="One class inside a ring of the other."),
    "xor": DatasetInfo("XOR", "classification", 2, _xor, blurb="Opposite quadrants share a class."),
    "gauss": DatasetInfo("Two clusters", "classification", 2,
                         lambda r, n, s: _gaussians([(2, 2), (-2, -2)], r, n, s),
                         blurb="Two Gaussian clouds: a straight line separates them."),
    "spiral": DatasetInfo("Spiral", "classification", 2, lambda r, n, s: _spiral(2, r, n, s),
                          blurb="Two interleaved arms: the hardest of the classic sets."),
    "moons": DatasetInfo("Moons", "classification", 2, _moons, blurb="Two interlocking half-moons."),
    "spiral3": DatasetInfo("Spiral, 3 arms", "classification", 3, lambda r, n, s: _spiral(3, r, n, s),
                           blurb="Three classes wound together."),
    "blobs4": DatasetInfo("Four blobs", "classification", 4,
                          lambda r, n, s: _gaussians([(3, 3), (-3, 3), (-3, -3), (3, -3)], r, n, s),
                          blurb="Four classes, one per quadrant."),
    "plane": DatasetInfo("Plane (regression)", "regression", 1, _plane, blurb="Target rises along x + y."),
    "bumps": DatasetInfo("Gaussian bumps (regression)", "regression", 1, _bumps,
                         blurb="Six hills and valleys."),
    "curve": DatasetInfo("Curve y = f(x) (regression)", "regression", 1, _curve, curve=True,
                         blurb="Fit a wiggly function of x alone."),
}


@dataclass(frozen=True)
class Feature:
    label: str
    fn: Callable  # works on numpy arrays and torch tensors alike
    code: str  # the same transform as PyTorch source, for exported code
    uses_y: bool


FEATURES: dict[str, Feature] = {
    "x": Feature("x", lambda x, y: x, "x", False),
    "y": Feature("y", lambda x, y: y, "y", True),
    "x2": Feature("x²", lambda x, y: x * x, "x * x", False),
    "y2": Feature("y²", lambda x, y: y * y, "y * y", True),
    "xy": Feature("x·y", lambda x, y: x * y, "x * y", True),
    "sinx": Feature("sin x", lambda x, y: _sin(x), "torch.sin(x)", False),
    "siny": Feature("sin y", lambda x, y: _sin(y), "torch.sin(y)", True),
    "cosx": Feature("cos x", lambda x, y: _cos(x), "torch.cos(x)", False),
    "cosy": Feature("cos y", lambda x, y: _cos(y), "torch.cos(y)", True),
}


def _sin(v):
    return np.sin(v) if isinstance(v, np.ndarray) else v.sin()


def _cos(v):
    return np.cos(v) if isinstance(v, np.ndarray) else v.cos()


def feature_matrix(points, keys) -> np.ndarray:
    """Columns of the chosen input features for (N, 2) points (numpy or torch)."""
    if not keys:
        raise DataError("Pick at least one input feature: the network needs something to look at.")
    x, y = points[:, 0], points[:, 1]
    cols = [FEATURES[k].fn(x, y) for k in keys]
    if isinstance(points, np.ndarray):
        return np.stack(cols, 1).astype(np.float32)
    import torch

    return torch.stack(cols, 1)


def input_code(keys: tuple[str, ...]):
    """The chosen features as exported code (a spec.InputCode): a `features(points)` that
    computes them, and random points of the plane as demo data."""
    from ..spec import InputCode  # here, like torch above: the data alone load without torch

    return InputCode("\n".join([
        "def features(points):",
        f'    """(N, 2) tensor of (x, y) points -> (N, {len(keys)}) network inputs: '
        f'{", ".join(FEATURES[k].label for k in keys)}."""',
        "    x, y = points[:, 0], points[:, 1]",
        f"    return torch.stack([{', '.join(FEATURES[k].code for k in keys)}], dim=1)",
    ]), f"torch.rand(200, 2) * {2 * DOMAIN:g} - {DOMAIN:g}", "\n".join([
        "def read_csv(path):",
        '    """The Playground\'s "These points as CSV": (N, 2) points and their labels or targets."""',
        "    import csv",
        "    with open(path, newline=\"\") as f:",
        "        rows = [row for row in csv.reader(f) if row][1:]  # under the header x,y,label",
        "    return (torch.tensor([[float(r[0]), float(r[1])] for r in rows]),",
        "            torch.tensor([float(r[2]) for r in rows]))",
    ]))


@dataclass(frozen=True)
class Dataset2D:
    """Points, targets and which of them are for training."""

    name: str
    task: str
    n_classes: int
    points: np.ndarray  # (N, 2) float32
    targets: np.ndarray  # (N,) int64 labels or float32 values
    is_train: np.ndarray  # (N,) bool
    curve: bool = False

    @property
    def train(self):
        return self.points[self.is_train], self.targets[self.is_train]

    @property
    def test(self):
        return self.points[~self.is_train], self.targets[~self.is_train]

    def with_points(self, points, targets, train: bool = True) -> "Dataset2D":
        """A copy with extra points (clicked in or uploaded) added to one split."""
        points = np.asarray(points, np.float32).reshape(-1, 2)
        targets = np.asarray(targets, self.targets.dtype).reshape(-1)
        if len(points) != len(targets):
            raise DataError("Each added point needs exactly one label.")
        if self.task == "classification" and len(targets) and (targets.min() < 0 or targets.max() >= self.n_classes):
            raise DataError(f"Labels must be between 0 and {self.n_classes - 1} for this dataset.")
        if len(self.points) + len(points) > MAX_POINTS:
            raise DataError(f"At most {MAX_POINTS} points fit in the playground.")
        return replace(
            self,
            points=np.concatenate([self.points, points]),
            targets=np.concatenate([self.targets, targets]),
            is_train=np.concatenate([self.is_train, np.full(len(points), train)]),
        )


def _split(n: int, train_ratio: float, rng) -> np.ndarray:
    if not 0.05 <= train_ratio <= 0.95:
        raise DataError("The training share must be between 5% and 95%.")
    n_train = min(max(1, round(n * train_ratio)), n - 1)
    is_train = np.zeros(n, bool)
    is_train[rng.permutation(n)[:n_train]] = True
    return is_train


def make_dataset(name: str, n_samples: int = 500, noise: float = 0.0, train_ratio: float = 0.5,
                 seed: int = 0) -> Dataset2D:
    """Generate one registered dataset, deterministically for a seed."""
    if name not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}.")
    if not 4 <= n_samples <= MAX_POINTS:
        raise DataError(f"Choose between 4 and {MAX_POINTS} points.")
    if not 0 <= noise <= 0.5:
        raise DataError("Noise must be between 0 and 50%.")
    info = DATASETS[name]
    rng = np.random.default_rng(seed)
    pts, targets = info.make(rng, n_samples, noise)
    return Dataset2D(name, info.task, info.n_classes, pts.astype(np.float32), targets,
                     _split(n_samples, train_ratio, rng), info.curve)


def parse_csv(data: bytes, train_ratio: float = 0.5, seed: int = 0) -> Dataset2D:
    """Read a user CSV of x, y, label (classes) or x, y, target (regression).

    A header naming the third column "label" or "target" decides the task;
    without one, whole numbers with at most 8 distinct values are labels.
    """
    if len(data) > MAX_CSV_BYTES:  # a 50 MB file took 600 MB and 2.4 s to be told it had too many rows
        raise DataError(f"The file is {len(data) / 2**20:.1f} MiB; the limit is {MAX_CSV_BYTES / 2**20:g} MiB "
                        f"({MAX_POINTS:,} rows).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("That file is not text: upload a CSV with columns x, y and label (or target).") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError("The CSV file is empty.")
    first = [c.strip().lower() for c in lines[0].split(",")]
    header = None
    if any(c and not _is_number(c) for c in first):
        header, lines = first, lines[1:]
        if len(header) != 3 or header[:2] != ["x", "y"] or header[2] not in ("label", "target"):
            raise DataError("The header must be exactly x,y,label (classification) or x,y,target (regression).")
    if len(lines) > MAX_POINTS:
        raise DataError(f"At most {MAX_POINTS:,} rows, please; this file has {len(lines):,}.")
    if not lines:  # a header alone (numpy would read it as one empty column)
        raise DataError("The CSV has a header but no rows of data: add at least 4 rows of x, y and label.")
    try:
        arr = np.loadtxt(io.StringIO("\n".join(lines)), delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError:
        raise DataError("Every row must hold three numbers separated by commas: x, y and label/target.") from None
    if arr.shape[1] != 3:
        raise DataError(f"Each row needs 3 columns (x, y, label or target); this file has {arr.shape[1]}.")
    if len(arr) < 4:
        raise DataError("The CSV needs at least 4 rows of data.")
    if not np.isfinite(arr).all():
        raise DataError("Some values are missing, NaN or infinite.")
    if np.abs(arr[:, :2]).max() > 1e4:
        raise DataError("Coordinates above 10,000 are not useful here; rescale x and y first.")
    third = arr[:, 2]
    whole = np.all(third == np.round(third)) and len(np.unique(third)) <= 8
    is_labels = header[2] == "label" if header else whole
    rng = np.random.default_rng(seed)
    if is_labels:
        if not whole:
            raise DataError("Labels must be whole numbers with at most 8 different values.")
        classes, labels = np.unique(third, return_inverse=True)
        if len(classes) < 2:
            raise DataError("A classification CSV needs at least two different labels.")
        return Dataset2D("upload", "classification", len(classes), arr[:, :2].astype(np.float32),
                         labels.astype(np.int64), _split(len(arr), train_ratio, rng))
    return Dataset2D("upload", "regression", 1, arr[:, :2].astype(np.float32),
                     third.astype(np.float32), _split(len(arr), train_ratio, rng))


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def to_csv(ds: Dataset2D) -> str:
    """The dataset as the CSV format parse_csv reads back."""
    col = "label" if ds.task == "classification" else "target"
    rows = [f"{x:.6g},{y:.6g},{t:.6g}" for (x, y), t in zip(ds.points, ds.targets)]
    return "\n".join([f"x,y,{col}", *rows]) + "\n"
