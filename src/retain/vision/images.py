"""Decoding untrusted image bytes safely, and the one preprocessing every path shares.

Checks happen before pixels are decoded: the byte size, then the header's width x height (a
10,000 x 10,000 PNG is a few kilobytes but 300 MB of pixels), then a full decode that must not be
truncated. Every mode Pillow reads (grayscale, CMYK, palette, alpha, 16-bit) becomes 8-bit RGB;
transparent pixels are composited on white. Errors are ``ImageError`` with a message for the user.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

#: The backbone's input side; every image is centre-cropped to a square and resized to it.
INPUT_SIZE = 224
#: ImageNet statistics the pretrained EfficientNet-Lite0 weights expect (RGB, 0..1 scale).
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG"})


class ImageError(ValueError):
    """The bytes are not an image this model can read, or exceed a limit."""


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds applied before decoding."""

    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


def decode(data: bytes, limits: ImageLimits | None = None) -> Image.Image:
    """Bytes of a JPEG or PNG to an RGB image, or ``ImageError`` saying why not."""
    limits = limits or ImageLimits()
    if not data:
        raise ImageError("the upload is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(f"the image is {len(data):,} bytes; the limit is {limits.max_bytes:,}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"the image has more pixels than the limit of {limits.max_pixels:,}") from None
    except UnidentifiedImageError:
        raise ImageError("not a readable JPEG or PNG image") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"not a readable JPEG or PNG image: {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageError(f"the image is {image.format or 'of an unknown format'}; send a JPEG or PNG")
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("the image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageError(
            f"the image is {width:,} x {height:,} pixels; the limit is {limits.max_pixels:,} pixels in all"
        )
    if image.format == "JPEG":
        # Decode JPEGs at the smallest scale (1/2, 1/4, 1/8) that still covers the input size:
        # several times faster. Training, the audit and serving all decode here, so they agree.
        image.draft("RGB", (INPUT_SIZE, INPUT_SIZE))
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image is truncated or corrupt: {exc}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB; transparency composited on white."""
    if image.mode == "RGB":
        return image
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) or 1.0
        return Image.fromarray((array / top * 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def square(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Centre-crop to a square on the shorter side and resize: ``(size, size, 3)`` uint8."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    cropped = image.crop((left, top, left + side, top + side))
    return np.asarray(cropped.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def normalise(batch: np.ndarray) -> np.ndarray:
    """``(n, h, w, 3)`` uint8 to the backbone's ``(n, 3, h, w)`` float32 input."""
    scaled = batch.astype(np.float32) / 255.0
    return np.ascontiguousarray(((scaled - MEAN) / STD).transpose(0, 3, 1, 2))


def read(path_or_bytes: bytes | str, limits: ImageLimits | None = None) -> Image.Image:
    """Decode a file path or bytes with the same checks as an upload."""
    if isinstance(path_or_bytes, bytes):
        return decode(path_or_bytes, limits)
    with open(path_or_bytes, "rb") as handle:
        return decode(handle.read(), limits)
