"""Pure figure builders for the Explainability Lab: attribution overlays (pictures, which
update in place and cost well under a millisecond) and the trust charts (altair)."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
from PIL import Image

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
                       reference: str = "random order") -> alt.Chart:
    """Probability of the class as pixels go, one line per method's ordering, and the
    `reference` (random) ordering as a dashed grey line that every method should beat."""
    rows = [{"share of pixels": f, "probability": s, "order": name}
            for name, (fs, ss) in curves.items() for f, s in zip(fs, ss)]
    names = list(curves)
    methods = [n for n in names if n != reference]
    colours = [CLASS_HEX[i % len(CLASS_HEX)] for i in range(len(methods))] + ["#555555"]
    domain = [*methods, reference]
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("share of pixels:Q", axis=alt.Axis(format="%")),
        y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
        color=alt.Color("order:N", sort=domain, scale=alt.Scale(domain=domain, range=colours),
                        legend=alt.Legend(orient="bottom", columns=3, title=None)),
        strokeDash=alt.condition(alt.datum.order == reference, alt.value([5, 4]), alt.value([1, 0])),
        tooltip=["order", alt.Tooltip("share of pixels:Q", format=".0%"),
                 alt.Tooltip("probability:Q", format=".1%")]).properties(height=260, title=title)


def randomisation_chart(steps: list[str], corr: dict[str, list[float]], labels: dict[str, str]) -> alt.Chart:
    """Rank correlation with the trained model's map as more layers are randomised."""
    rows = [{"weights randomised": "none", "method": labels[k], "similarity": 1.0} for k in corr]
    rows += [{"weights randomised": step, "method": labels[k], "similarity": v}
             for k, values in corr.items() for step, v in zip(steps, values)]
    order = ["none", *steps]
    return alt.Chart(pd.DataFrame(rows)).mark_line(point=True).encode(
        x=alt.X("weights randomised:N", sort=order, title="weights randomised from the top layer down",
                axis=alt.Axis(labelAngle=0)),
        y=alt.Y("similarity:Q", scale=alt.Scale(domain=[-1, 1]), title="similarity to the trained map"),
        color=alt.Color("method:N", legend=alt.Legend(orient="right", title=None)),
        tooltip=["method", "weights randomised", alt.Tooltip("similarity:Q", format=".2f")]).properties(height=300)
