"""PNG previews of a few samples, so the dataset page shows what the model will see.

Samples are picked round-robin over the classes (the first of each class, then the second...), and
enlarged with nearest-neighbour so small images (8x8 digits) stay sharp and visible.
"""

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from optimizers.data import limits

_MAX_PREVIEW_SIDE = 512


def write_previews(x: np.ndarray, y: np.ndarray | None, out_dir: Path) -> dict[str, int]:
    """Write preview_0.png.. for image samples ([C, H, W] with C 1 or 3, or [H, W]); return {file name: the index
    of the sample it shows}, in order (so the page can say each one's class)."""
    shown = {}
    for number, index in enumerate(_picks(y, len(x), limits.MAX_PREVIEWS)):
        name = f"preview_{number}.png"
        partial = out_dir / f".partial-{name}"
        _as_image(x[index]).save(partial, format="PNG")
        os.replace(partial, out_dir / name)
        shown[name] = int(index)
    return shown


def _picks(y: np.ndarray | None, samples: int, count: int) -> list[int]:
    if y is None:
        return list(range(min(count, samples)))
    order = np.argsort(y, kind="stable")
    sorted_y = y[order]
    rank = np.arange(len(y)) - np.searchsorted(sorted_y, sorted_y, side="left")  # 0 for each class's first
    return order[np.lexsort((sorted_y, rank))][:count].tolist()


def _as_image(sample: np.ndarray) -> Image.Image:
    pixels = sample[None] if sample.ndim == 2 else sample
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0.0 or high > 1.0:  # not in [0, 1] (an npz of raw values): stretch to show the contrast
        pixels = (pixels - low) / ((high - low) or 1.0)
    as_bytes = np.round(pixels * 255.0).astype(np.uint8)
    image = Image.fromarray(as_bytes[0]) if len(as_bytes) == 1 else Image.fromarray(as_bytes.transpose(1, 2, 0))
    height, width = as_bytes.shape[1:]
    factor = max(1, min(math.ceil(limits.PREVIEW_MIN_SIDE / min(height, width)),
                        _MAX_PREVIEW_SIDE // max(height, width)))
    return image.resize((width * factor, height * factor), Image.Resampling.NEAREST) if factor > 1 else image
