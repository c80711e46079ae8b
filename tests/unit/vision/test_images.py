"""Untrusted image bytes: every bad upload is an ImageError with a message, never a crash."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from retain.vision.images import INPUT_SIZE, ImageError, ImageLimits, decode, normalise, square


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _rgb(w: int = 320, h: int = 240) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB")


def _huge_png(width: int, height: int) -> bytes:
    """A valid grayscale PNG of width x height that compresses to a few kilobytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    raw = zlib.compress(b"\x00" * (width + 1) * height, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_a_jpeg_decodes_to_rgb() -> None:
    image = decode(_encode(_rgb(), "JPEG"))
    assert image.mode == "RGB" and min(image.size) >= INPUT_SIZE // 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a readable"),
        (b"%PDF-1.4\n" + b"0" * 100, "not a readable"),
    ],
)
def test_not_an_image_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode(data)


def test_truncated_jpeg_is_refused() -> None:
    data = _encode(_rgb(640, 480), "JPEG", quality=95)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode(data[: len(data) // 2])


def test_too_many_bytes_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="limit is 1,024"):
        decode(b"\xff\xd8" + b"0" * 5000, ImageLimits(max_bytes=1024))


def test_a_10000_by_10000_png_is_refused_from_its_header() -> None:
    data = _huge_png(10_000, 10_000)
    assert len(data) < 200_000  # small on the wire, 100 million pixels once decoded
    with pytest.raises(ImageError, match="pixel"):
        decode(data)


def test_other_formats_are_refused() -> None:
    with pytest.raises(ImageError, match="GIF"):
        decode(_encode(_rgb(), "GIF"))


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "LA", "P", "I;16", "1"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    source = _rgb(64, 48)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(source.convert("L"), dtype=np.uint16) * 200)
    else:
        image = source.convert(mode)
    fmt = "JPEG" if mode in {"L", "CMYK"} else "PNG"
    decoded = decode(_encode(image, fmt))
    assert decoded.mode == "RGB" and decoded.size == (64, 48)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    decoded = decode(_encode(image, "PNG"))
    assert np.asarray(decoded)[0, 0].tolist() == [255, 255, 255]


def test_square_and_normalise_shape_the_backbone_input() -> None:
    pixels = square(_rgb(640, 360))
    assert pixels.shape == (INPUT_SIZE, INPUT_SIZE, 3) and pixels.dtype == np.uint8
    batch = normalise(np.stack([pixels, pixels]))
    assert batch.shape == (2, 3, INPUT_SIZE, INPUT_SIZE) and batch.dtype == np.float32
    assert abs(float(batch.mean())) < 2.5
