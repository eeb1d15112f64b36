"""Pure figure builders for the Explainability Lab: attribution overlays (pictures, which
update in place and cost well under a millisecond) and the trust charts (Vega-Lite specs)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from .charts import lines, num
from .figures import CLASS_HEX, CLASS_RGB


def overlay(image: np.ndarray, heat: np.ndarray, opacity: float, size: int = 140) -> Image.Image:
    """The input in grey (or colour) with the map on top: blue where it raises the class
    score, orange where it lowers it; stronger colour = larger attribution."""
    base = image.mean(0) if image.shape[0] == 1 else None
    rgb = np.repeat(base[..., None], 3, -1) if base is not None else image[:3].transpose(1, 2, 0)
    rgb = np.clip(rgb, 0, 1) * 255 * (1 - 0.35 * opacity)  # dim the picture so the colours read
    alpha = (opacity * np.abs(heat))[..., None]
    colour = np.where(heat[..., None] >= 0, CLASS_RGB[1], CLASS_RGB[0])
    out = (rgb * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
    return Image.fromarray(out).resize((size, size), Image.NEAREST)


def picture(image: np.ndarray, size: int = 140) -> Image.Image:
    rgb = np.repeat(image, 3, 0) if image.shape[0] == 1 else image[:3]
    return Image.fromarray((np.clip(rgb, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)).resize(
        (size, size), Image.NEAREST)


def perturbation_chart(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str,
                       reference: str = "random order") -> dict:
    """Probability of the class as pixels go, one line per method's ordering, and the
    `reference` (random) ordering as a dashed grey line that every method should beat."""
    rows = [{"share of pixels": num(f), "probability": num(p), "order": name}
            for name, (fs, ps) in curves.items() for f, p in zip(fs, ps)]
    methods = [n for n in curves if n != reference]
    colours = {m: CLASS_HEX[i % len(CLASS_HEX)] for i, m in enumerate(methods)} | {reference: "#555555"}
    spec = lines(rows, "share of pixels", "probability", "order", x_title="share of pixels", height=260,
                 colours=colours, y_domain=(0, 1), percent=True, points=True, dashed=reference, title=title)
    spec["encoding"]["x"]["axis"]["format"] = ".0%"
    return spec


def randomisation_chart(steps: list[str], corr: dict[str, list[float]], labels: dict[str, str]) -> dict:
    """Rank correlation with the trained model's map as more layers are randomised."""
    rows = [{"weights randomised": "none", "method": labels[k], "similarity": 1.0} for k in corr]
    rows += [{"weights randomised": step, "method": labels[k], "similarity": num(v)}
             for k, values in corr.items() for step, v in zip(steps, values)]
    return lines(rows, "weights randomised", "similarity", "method", x_nominal=["none", *steps], height=300,
                 x_title="weights randomised from the top layer down", y_title="similarity to the trained map",
                 y_domain=(-1, 1), points=True, legend="right")
