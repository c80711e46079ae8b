"""Offline face detection (OpenCV's bundled Haar cascade) and the audit's image views.

The views ask what a model could be relying on:

* ``full``: the whole frame (what the model is trained on);
* ``face``: a square crop around the detected face only;
* ``background``: the frame with the face region filled with grey (room, clothes, posture);
* ``thumbnail``: an 8 x 8 colour thumbnail (192 numbers: lighting, colours, layout).

A frame without a detected face has no ``face`` or ``background`` view: the audit drops it from
every view's comparison and reports the miss rate per class, because a placeholder for "no face"
would itself tell the model the label (the not-engaged classes look away and down more often).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from PIL import Image

from retain.vision.images import INPUT_SIZE, square

View = Literal["full", "face", "background", "thumbnail"]
VIEWS: tuple[View, ...] = ("full", "face", "background", "thumbnail")
THUMBNAIL_SIDE = 8
#: Face boxes are grown by this share of their side before cropping or masking (hair, chin).
FACE_MARGIN = 0.25
_FILL = (124, 116, 104)  # the ImageNet mean colour: the backbone reads it as "nothing"


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the image it was found in."""

    left: int
    top: int
    width: int
    height: int

    def grown(self, margin: float, image_width: int, image_height: int) -> Box:
        """The box grown by ``margin`` of its side on every edge, clipped to the image."""
        dx, dy = int(self.width * margin), int(self.height * margin)
        left, top = max(0, self.left - dx), max(0, self.top - dy)
        right = min(image_width, self.left + self.width + dx)
        bottom = min(image_height, self.top + self.height + dy)
        return Box(left, top, right - left, bottom - top)


@lru_cache(maxsize=2)
def _cascade(name: str) -> Any:
    import cv2

    path = cv2.data.haarcascades + name  # type: ignore[attr-defined]
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # pragma: no cover - a broken OpenCV install
        raise RuntimeError(f"OpenCV could not load its face cascade from {path}")
    return cascade


def _largest(found: Any) -> tuple[int, int, int, int] | None:
    if len(found) == 0:
        return None
    left, top, width, height = max(found, key=lambda b: int(b[2]) * int(b[3]))
    return int(left), int(top), int(width), int(height)


def detect_face(image: Image.Image) -> Box | None:
    """The largest face in the image, or ``None`` when the detector finds none.

    Frontal faces first; then profiles facing either way (the profile cascade finds faces turned
    to one side, so the mirrored frame is searched too), since "looking away" is a class here.
    """
    import cv2

    gray = cv2.equalizeHist(np.asarray(image.convert("L"), dtype=np.uint8))
    side = min(gray.shape)
    options = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (side // 10, side // 10)}
    box = _largest(_cascade("haarcascade_frontalface_default.xml").detectMultiScale(gray, **options))
    if box is None:
        box = _largest(_cascade("haarcascade_profileface.xml").detectMultiScale(gray, **options))
    if box is None:
        mirrored = _largest(
            _cascade("haarcascade_profileface.xml").detectMultiScale(
                np.ascontiguousarray(gray[:, ::-1]), **options
            )
        )
        if mirrored is not None:
            left, top, width, height = mirrored
            box = (gray.shape[1] - left - width, top, width, height)
    return None if box is None else Box(*box)


def face_crop(image: Image.Image, box: Box, size: int = INPUT_SIZE) -> np.ndarray:
    """A square crop centred on the (grown) face box, resized to ``size``."""
    grown = box.grown(FACE_MARGIN, *image.size)
    side = max(grown.width, grown.height)
    cx, cy = grown.left + grown.width // 2, grown.top + grown.height // 2
    left = int(np.clip(cx - side // 2, 0, max(0, image.size[0] - side)))
    top = int(np.clip(cy - side // 2, 0, max(0, image.size[1] - side)))
    crop = image.crop((left, top, left + side, top + side))
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def mask_face(image: Image.Image, box: Box, size: int = INPUT_SIZE) -> np.ndarray:
    """The frame with the grown face box filled with the mean colour, then squared like ``full``."""
    grown = box.grown(FACE_MARGIN, *image.size)
    masked = image.copy()
    masked.paste(_FILL, (grown.left, grown.top, grown.left + grown.width, grown.top + grown.height))
    return square(masked, size)


def thumbnail(image: Image.Image, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """An area-averaged ``side x side`` RGB thumbnail of the whole frame, as floats in 0..1."""
    small = image.resize((side, side), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
