"""Data augmentation: random variations of each training batch, so a network learns the
object rather than its exact pixels. Pure torch, applied inside the training job."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

AUGMENTATIONS = {
    "flip": "Mirror left–right",
    "shift": "Shift up to 10 %",
    "rotate": "Rotate up to 15°",
    "noise": "Add pixel noise",
}


def augment_batch(x: torch.Tensor, kinds: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Each image of (B, C, H, W) gets its own random draw of every chosen kind."""
    unknown = set(kinds) - set(AUGMENTATIONS)
    if unknown:
        raise ValueError(f"Unknown augmentation {sorted(unknown)}; choose from {', '.join(AUGMENTATIONS)}.")
    b = x.shape[0]
    rand = lambda *shape: torch.rand(*shape, generator=gen).to(x.device)
    if "flip" in kinds:
        x = torch.where((rand(b) < 0.5)[:, None, None, None], x.flip(-1), x)
    if "shift" in kinds or "rotate" in kinds:
        angle = (rand(b) * 2 - 1) * math.radians(15) if "rotate" in kinds else torch.zeros(b, device=x.device)
        move = (rand(b, 2) * 2 - 1) * 0.2 if "shift" in kinds else torch.zeros(b, 2, device=x.device)
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)
    if "noise" in kinds:
        x = (x + 0.08 * (torch.randn(x.shape, generator=gen).to(x.device))).clamp(0, 1)
    return x
