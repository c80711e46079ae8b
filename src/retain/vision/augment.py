"""Label-preserving augmentation of a frame: mirror, a random crop, brightness and contrast.

Seeded per image and copy, so the cached augmented embeddings are reproducible.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageEnhance


def augment(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random variant: horizontal flip (p = 0.5), a crop keeping 80-100% of each side,
    brightness and contrast each scaled by 0.8-1.2."""
    out = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else image
    width, height = out.size
    keep = rng.uniform(0.8, 1.0)
    w, h = max(1, int(width * keep)), max(1, int(height * keep))
    left = int(rng.integers(0, width - w + 1))
    top = int(rng.integers(0, height - h + 1))
    out = out.crop((left, top, left + w, top + h))
    out = ImageEnhance.Brightness(out).enhance(float(rng.uniform(0.8, 1.2)))
    return ImageEnhance.Contrast(out).enhance(float(rng.uniform(0.8, 1.2)))
