"""Image folders laid out like the engagement data set (class / sub-class / numbered frames).

Imported by the vision tests (``tests/`` is on ``sys.path`` because ``tests/conftest.py`` is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def draw_frame(rng: np.random.Generator, positive: bool, size: tuple[int, int] = (96, 72)) -> Image.Image:
    """A 'frame': a background, a face-like oval; the positive class is darker and bluer."""
    base = np.array([70, 80, 150]) if positive else np.array([200, 170, 120])
    pixels = np.clip(base + rng.normal(0, 18, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    cx, cy = size[0] // 2 + int(rng.integers(-6, 7)), size[1] // 2 + int(rng.integers(-4, 5))
    draw.ellipse((cx - 14, cy - 18, cx + 14, cy + 18), fill=(225, 190, 160))
    return image


def make_folder(root: Path, per_recording: int = 6, recordings: int = 3, seed: int = 0) -> Path:
    """``root/{Engaged,Not engaged}/{a,b}/NNNN.jpg``: runs of frame numbers with gaps between them."""
    rng = np.random.default_rng(seed)
    for label, name in ((False, "Engaged"), (True, "Not engaged")):
        for sub in ("a", "b"):
            folder = root / name / sub
            folder.mkdir(parents=True)
            frame = 1
            for _ in range(recordings):
                for _ in range(per_recording):
                    draw_frame(rng, label).save(folder / f"{frame:04d}.jpg", quality=90)
                    frame += 1
                frame += 50  # a gap: the next run is another recording
    return root
