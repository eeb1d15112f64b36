"""Image datasets for the CNN Lab: offline by default, real ones when present.

Offline: scikit-learn's bundled 8×8 digits (optionally upsampled) and a
generated *shapes* set whose optional spurious cue (a corner patch coloured
by class in training data only) lets later labs teach bias and explanation.
Real: torchvision's MNIST family and CIFAR-10, read from a local data folder
(downloaded there on first use when a network is available). Yours: a zip of
one folder per class. Every loader returns the same ImageDataset, and the
IMAGE_DATASETS registry at the end is the one list of what the CNN Lab offers.
"""
from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .data2d import DataError

DATA_DIR = Path(os.environ.get("DLLAB_DATA_DIR", Path.home() / ".cache" / "deep-learning-lab" / "data"))
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_ZIP_BYTES = 50 * 2**20
MAX_UNZIPPED_BYTES = 400 * 2**20
MAX_IMAGES = 5000
MAX_PIXELS = 4096 * 4096  # one picture's decoded pixels, read from its header before it is decoded
MAX_ZIP_PIXELS = 50_000_000  # all of a zip's pictures (5,000 of 100×100): a few KB of zip can say billions
# files and folders, counted before zipfile parses them (~14 µs each; 4 MB of zip lists 200,000): a Mac's zip
# doubles the pictures (__MACOSX), folders add a few
MAX_ZIP_ENTRIES = 4 * MAX_IMAGES
PICTURE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")  # IMAGE_EXTENSIONS' formats: Pillow's other decoders stay shut
UNREADABLE = "That file is not a readable image."


@dataclass(frozen=True)
class ImageDataset:
    name: str
    x: np.ndarray  # (N, C, H, W) float32 in [0, 1]
    y: np.ndarray  # (N,) int64
    classes: tuple[str, ...]
    split: np.ndarray  # (N,) 0 train · 1 validation · 2 test
    note: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def part(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        mask = self.split == {"train": 0, "val": 1, "test": 2}[which]
        return self.x[mask], self.y[mask]


def split_labels(n: int, seed: int, val: float = 0.15, test: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    split = np.zeros(n, np.int8)
    order = rng.permutation(n)
    n_val, n_test = round(n * val), round(n * test)
    split[order[:n_val]] = 1
    split[order[n_val:n_val + n_test]] = 2
    return split


def resize(x: np.ndarray, size: int) -> np.ndarray:
    if x.shape[-1] == size:
        return x.astype(np.float32)
    return F.interpolate(torch.as_tensor(x, dtype=torch.float32), size=(size, size), mode="bilinear",
                         align_corners=False).clamp(0, 1).numpy()


DIGITS = tuple(str(k) for k in range(10))


def digits(size: int = 8, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), bundled: no download."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = resize((d.images / 16.0)[:, None].astype(np.float32), size)
    return ImageDataset("digits", x, d.target.astype(np.int64), DIGITS, split_labels(len(x), seed))


SHAPES = ("circle", "square", "triangle", "cross")
CUE_COLOURS = np.array([(1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.3, 0.4, 1.0), (1.0, 1.0, 0.2)], np.float32)


def shapes(n: int = 1200, size: int = 28, noise: float = 0.1, spurious: float = 0.0, seed: int = 0) -> ImageDataset:
    """Coloured circles, squares, triangles and crosses at random sizes and places.

    With `spurious` > 0, that share of training and validation images carry a
    corner patch whose colour gives the class away; test images get a random
    colour. A network that learns the patch instead of the shape fails the test.
    """
    if not 8 <= size <= 64 or not 40 <= n <= MAX_IMAGES:
        raise DataError(f"Shapes: choose 8–64 pixels and 40–{MAX_IMAGES} images.")
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(SHAPES)
    split = split_labels(n, seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    x = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        r = rng.uniform(0.18, 0.32) * size
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        dx, dy = xx - cx, yy - cy
        mask = {0: dx**2 + dy**2 <= r**2,
                1: (np.abs(dx) <= r * 0.85) & (np.abs(dy) <= r * 0.85),
                2: (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6),
                3: ((np.abs(dx) <= r * 0.3) | (np.abs(dy) <= r * 0.3)) & (np.abs(dx) <= r) & (np.abs(dy) <= r),
                }[int(y[i])]
        colour = rng.uniform(0.45, 1.0, 3).astype(np.float32)
        img = rng.uniform(0, 0.15, (3, size, size)).astype(np.float32)
        img[:, mask] = colour[:, None]
        if spurious > 0:
            patch = max(2, size // 7)
            cue = CUE_COLOURS[y[i]] if split[i] != 2 and rng.random() < spurious else rng.uniform(0, 1, 3)
            img[:, :patch, :patch] = np.asarray(cue, np.float32)[:, None, None]
        x[i] = np.clip(img + rng.normal(0, noise, img.shape), 0, 1)
    return ImageDataset("shapes", x, y.astype(np.int64), SHAPES, split,
                        f"spurious corner cue in {spurious:.0%} of training images" if spurious else "")


def torchvision_dataset(key: str, root: Path | str | None = None, max_train: int = 6000, max_test: int = 1000,
                        download: bool = True, seed: int = 0) -> ImageDataset:
    """Read a torchvision dataset from `root` (default DATA_DIR; fetching it there if allowed
    and online), subsampled so a CPU trains on it interactively."""
    import torchvision.datasets as tvd

    root = Path(root or DATA_DIR)
    source = IMAGE_DATASETS[key]
    cls_name = source.torchvision
    cls = getattr(tvd, cls_name)
    parts = []
    for train in (True, False):
        try:
            try:
                ds = cls(str(root), train=train, download=False)
            except RuntimeError:
                if not download:
                    raise
                ds = cls(str(root), train=train, download=True)
        except Exception as exc:  # offline, missing or broken files: one plain message
            raise DataError(f"{cls_name} is not in {root} and could not be downloaded ({str(exc)[:80]}). "
                            f"Copy it into {Path(root) / cls_name} (torchvision's layout), or use the offline "
                            f"sets: {' or '.join(k for k, s in IMAGE_DATASETS.items() if s.offline)}.") from None
        data = np.asarray(ds.data)
        data = data[:, None] if data.ndim == 3 else data.transpose(0, 3, 1, 2)
        targets = np.asarray(ds.targets, np.int64)
        keep = np.random.default_rng(seed).permutation(len(data))[:max_train if train else max_test]
        parts.append((data[np.sort(keep)].astype(np.float32) / 255.0, targets[np.sort(keep)]))
    (xtr, ytr), (xte, yte) = parts
    split = np.concatenate([np.zeros(len(xtr), np.int8), np.full(len(xte), 2, np.int8)])
    n_val = round(len(xtr) * 0.15)
    split[np.random.default_rng(seed).permutation(len(xtr))[:n_val]] = 1
    return ImageDataset(key, np.concatenate([xtr, xte]), np.concatenate([ytr, yte]), source.classes, split)


class PictureTooLarge(DataError):
    """A picture, or a zip's pictures together, past the pixel budget (refused, never skipped)."""


def open_picture(data: bytes):
    """A picture's bytes as a decoded PIL image, its size checked on the header before decoding."""
    return _decoded(_header(io.BytesIO(data)))


def _header(source):
    """A picture (bytes or a stream) opened lazily, its header read and its size checked, nothing decoded:
    a small PNG can hold thousands of pixels on a side (a decompression bomb)."""
    from PIL import Image

    try:
        picture = Image.open(source, formats=PICTURE_FORMATS)
    except Image.DecompressionBombError:
        raise PictureTooLarge(f"That picture has too many pixels; the limit is {MAX_PIXELS:,}.") from None
    except Exception:  # any failure on untrusted bytes: Pillow and zipfile raise OSError, SyntaxError, zlib.error, ...
        raise DataError(UNREADABLE) from None
    w, h = picture.size
    if w * h > MAX_PIXELS:
        raise PictureTooLarge(f"That picture is {w:,}×{h:,} pixels; the limit is {MAX_PIXELS:,} pixels.")
    return picture


def _decoded(picture):
    """The picture decoded now, so a damaged one fails here in one sentence, not in a later convert()."""
    try:
        picture.load()
    except Exception:  # as in _header: a broken PNG raised SyntaxError, past the pages' (OSError, ValueError)
        raise DataError(UNREADABLE) from None
    return picture


def _parts(name: str) -> tuple[str, ...]:
    """A zip entry's folders and file name, without '/', '..' or '.' (a zip may name '/x' or '../x': nothing
    is written anywhere, but they are no class's name); Windows' backslashes are read as slashes."""
    return tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("/", ".."))


def zip_folders(data: bytes, size: int = 32, grey: bool = False, seed: int = 0,
                max_bytes: int = MAX_ZIP_BYTES) -> ImageDataset:
    """A zip of one folder per class (ImageFolder layout), checked and resized.
    Unreadable images are skipped and counted in `note`."""
    if len(data) > max_bytes:
        raise DataError(f"The zip is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB.")
    if data.count(b"PK\x01\x02") > MAX_ZIP_ENTRIES:  # every entry's record starts so: an upper bound, read fast
        raise DataError(f"The zip holds more than {MAX_ZIP_ENTRIES:,} files and folders; the limit is "
                        f"{MAX_ZIP_ENTRIES:,}.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = [i for i in archive.infolist() if not i.filename.endswith("/")  # is_dir() fails on a name ""
                   and not Path(i.filename).name.startswith(".") and "__MACOSX" not in i.filename]
    except (zipfile.BadZipFile, ValueError, NotImplementedError):  # a name not the UTF-8 it claims; zip64 v23.4
        raise DataError("That file is not a zip archive.") from None
    if sum(i.file_size for i in entries) > MAX_UNZIPPED_BYTES:
        raise DataError("The zip unpacks to more than 400 MiB; send fewer or smaller images.")
    images = [i for i in entries if i.filename.lower().endswith(IMAGE_EXTENSIONS)]
    if len(images) > MAX_IMAGES:
        raise DataError(f"The zip holds {len(images):,} images; at most {MAX_IMAGES:,}, please.")
    parts = [_parts(i.filename) for i in images]
    depth = 1 if parts and len({p[0] for p in parts}) == 1 and all(len(p) > 2 for p in parts) else 0
    by_class: dict[str, list] = {}
    skipped = pixels = 0
    for info, p in zip(images, parts):
        if len(p) < depth + 2:
            skipped += 1  # an image outside any class folder
            continue
        try:  # read as a stream, header first: 1 KB of zip can unpack to 400 MB
            with archive.open(info) as entry, _header(entry) as im:
                pixels += im.size[0] * im.size[1]
                if pixels > MAX_ZIP_PIXELS:
                    raise PictureTooLarge(f"The zip's pictures add up to more than {MAX_ZIP_PIXELS:,} pixels; "
                                          "send fewer or smaller images.")
                im = _decoded(im).convert("L" if grey else "RGB").resize((size, size))
                arr = np.asarray(im, np.float32) / 255.0
        except PictureTooLarge:
            raise
        except (ValueError, OSError, RuntimeError, zipfile.BadZipFile):  # DataError: unreadable; encrypted
            skipped += 1
            continue
        by_class.setdefault(p[depth], []).append(arr[None] if grey else arr.transpose(2, 0, 1))
    if len(by_class) < 2:
        raise DataError("A classifier needs at least two classes: put each class's images in its own folder "
                        f"(found {len(by_class)} usable folder{'s' if len(by_class) != 1 else ''}).")
    if min(len(v) for v in by_class.values()) < 2:
        raise DataError("Every class folder needs at least two readable images.")
    classes = tuple(sorted(by_class))
    x = np.stack([a for c in classes for a in by_class[c]])
    y = np.concatenate([np.full(len(by_class[c]), k, np.int64) for k, c in enumerate(classes)])
    note = f"{skipped} file{'s' if skipped != 1 else ''} skipped (unreadable or outside a class folder)" \
        if skipped else ""
    return ImageDataset("upload", x, y, classes, split_labels(len(x), seed), note)


def class_balance(ds: ImageDataset) -> dict[str, list[int]]:
    """Images per class in each split."""
    return {name: [int(((ds.split == s) & (ds.y == k)).sum()) for s in range(3)] for k, name in enumerate(ds.classes)}


@dataclass(frozen=True)
class ImageSource:
    """One image dataset the CNN Lab offers: its select-box label, how it loads, what it holds."""

    label: str
    load: Callable[[int, float, int, bool], ImageDataset]  # (size, spurious cue share, seed, may download)
    classes: tuple[str, ...]
    channels: int
    sizes: tuple[int, ...]  # image sizes (pixels) a learner may pick; one: fixed by the files
    default_size: int
    torchvision: str = ""  # the torchvision class whose files it reads from DATA_DIR; "" if made offline
    spurious_cue: bool = False  # offers the spurious corner cue (see `shapes`)

    @property
    def offline(self) -> bool:
        """True: always available. False: needs local files, fetched on first use when online."""
        return not self.torchvision


def _from_torchvision(key: str) -> Callable[[int, float, int, bool], ImageDataset]:
    return lambda size, spurious, seed, download: torchvision_dataset(key, download=download, seed=seed)


IMAGE_DATASETS: dict[str, ImageSource] = {
    "digits": ImageSource("Handwritten digits (offline)", lambda size, spurious, seed, download: digits(size, seed),
                          DIGITS, 1, (8, 16, 28), 16),
    "shapes": ImageSource("Shapes (offline, generated)",
                          lambda size, spurious, seed, download: shapes(1200, size, 0.1, spurious, seed),
                          SHAPES, 3, (16, 28, 32), 28, spurious_cue=True),
    "mnist": ImageSource("MNIST (torchvision)", _from_torchvision("mnist"), DIGITS, 1, (28,), 28, "MNIST"),
    "fashion": ImageSource("FashionMNIST (torchvision)", _from_torchvision("fashion"),
                           ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                            "boot"), 1, (28,), 28, "FashionMNIST"),
    "kmnist": ImageSource("KMNIST (torchvision)", _from_torchvision("kmnist"),
                          ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"), 1, (28,), 28, "KMNIST"),
    "cifar10": ImageSource("CIFAR10 (torchvision)", _from_torchvision("cifar10"),
                           ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
                           3, (32,), 32, "CIFAR10"),
}
