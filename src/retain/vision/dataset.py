"""Image folders laid out by class, the recordings inside them, and splits by whole recording.

Layout: ``ROOT/<class>/<sub-class>/<frame>.jpg`` (the public Student Engagement data set) or
``ROOT/<class>/<frame>.jpg``. Exactly two top-level classes; the one named by ``positive`` is the
adverse outcome (``Not engaged``), so a model's score is P(not engaged) like every risk score.

Files are numbered video frames. A run of frame numbers without a gap wider than ``max_gap`` is
one *recording* of one person; neighbouring frames are near-duplicates, so every split here keeps
a recording whole: a model must never be scored on frames of a recording it trained on.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
POSITIVE_CLASS = "Not engaged"
#: Frame numbers further apart than this start a new recording.
MAX_FRAME_GAP = 5

SOURCE = "https://www.kaggle.com/datasets/joyee19/studentengagement"
SOURCE_NOTE = (
    "Student Engagement Dataset (Kaggle, joyee19/studentengagement): webcam frames of students "
    "in online classes, in two classes with three sub-classes each (Engaged: confused, engaged, "
    "frustrated; Not engaged: Looking Away, bored, drowsy). Licence unknown: use it for development "
    "and tests only and do not redistribute it. Download it from the address above and unpack it so "
    "that the class folders sit under RETAIN_VISION_DATA_DIR (default: RETAIN_DATA_DIR/engagement)."
)

_NUMBER = re.compile(r"(\d+)")


class ImageFolderError(ValueError):
    """The folder is not laid out as two class folders of images."""


@dataclass(frozen=True)
class ImageItem:
    """One image file with its labels and the recording it belongs to."""

    path: Path
    label: int  # 1 = the positive (adverse) class
    label_name: str
    subclass: str
    frame: int | None
    group: str


@dataclass(frozen=True)
class ImageFolder:
    """The images of a folder and its two class names (negative first)."""

    root: Path
    items: tuple[ImageItem, ...]
    classes: tuple[str, str]

    @property
    def labels(self) -> np.ndarray:
        return np.array([i.label for i in self.items], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return np.array([i.group for i in self.items])

    def summary(self) -> dict[str, object]:
        """Counts by class, sub-class and recording: what `retain vision data` prints."""
        by_sub: dict[str, dict[str, int]] = {}
        for item in self.items:
            entry = by_sub.setdefault(f"{item.label_name}/{item.subclass}", {"images": 0, "recordings": 0})
            entry["images"] += 1
        for (label_name, subclass), count in Counter(
            (i.label_name, i.subclass) for i in {i.group: i for i in self.items}.values()
        ).items():
            by_sub[f"{label_name}/{subclass}"]["recordings"] = count
        return {
            "root": str(self.root),
            "images": len(self.items),
            "recordings": len(set(self.groups.tolist())),
            "classes": {
                name: int(sum(1 for i in self.items if i.label_name == name)) for name in self.classes
            },
            "positive_class": self.classes[1],
            "subclasses": dict(sorted(by_sub.items())),
        }


def frame_number(path: Path) -> int | None:
    """The last number in a file's stem (``0131.jpg`` -> 131, ``frame_7.png`` -> 7), if any."""
    numbers = _NUMBER.findall(path.stem)
    return int(numbers[-1]) if numbers else None


def recording_groups(frames: list[int | None], max_gap: int = MAX_FRAME_GAP) -> list[int]:
    """Recording index of each frame: runs of frame numbers with gaps of at most ``max_gap``.

    Files without a number form a recording each (nothing says which frames they are near).
    """
    order = sorted(range(len(frames)), key=lambda i: (frames[i] is None, frames[i] or 0))
    groups = [0] * len(frames)
    current = -1
    previous: int | None = None
    for index in order:
        frame = frames[index]
        if frame is None or previous is None or frame - previous > max_gap:
            current += 1
        groups[index] = current
        previous = frame
    return groups


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def scan(root: Path, positive: str = POSITIVE_CLASS, max_gap: int = MAX_FRAME_GAP) -> ImageFolder:
    """Read a folder of class folders; raises ``ImageFolderError`` naming what is wrong."""
    if not root.is_dir():
        raise ImageFolderError(f"{root} is not a folder. {SOURCE_NOTE}")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) != 2:
        found = ", ".join(p.name for p in classes) or "none"
        raise ImageFolderError(f"{root} must hold exactly two class folders, found {len(classes)}: {found}")
    names = [p.name for p in classes]
    if positive not in names:
        raise ImageFolderError(f"no class folder named {positive!r} (the adverse class) in {root}: {names}")
    negative = next(n for n in names if n != positive)
    items: list[ImageItem] = []
    for class_dir in classes:
        label = int(class_dir.name == positive)
        subdirs = sorted(p for p in class_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        parts = [(d.name, _images_in(d)) for d in subdirs] + [(class_dir.name, _images_in(class_dir))]
        for subclass, files in parts:
            frames = [frame_number(f) for f in files]
            for path, frame, group in zip(files, frames, recording_groups(frames, max_gap), strict=True):
                items.append(
                    ImageItem(
                        path, label, class_dir.name, subclass, frame, f"{class_dir.name}/{subclass}#{group}"
                    )
                )
    for name in names:
        if not any(i.label_name == name for i in items):
            raise ImageFolderError(f"class folder {name!r} in {root} holds no .jpg, .jpeg or .png images")
    return ImageFolder(root, tuple(items), (negative, positive))


@dataclass(frozen=True)
class GroupSplit:
    """Row indices of a split that keeps every recording on one side."""

    train: np.ndarray
    test: np.ndarray


def group_split(labels: np.ndarray, groups: np.ndarray, test_fraction: float, seed: int) -> GroupSplit:
    """Hold out whole recordings, about ``test_fraction`` of each class's images.

    Recordings are drawn in a seeded random order per class until the class's share is reached, so
    both classes are present on both sides whenever each has at least two recordings.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    test_groups: set[str] = set()
    for label in np.unique(labels):
        names = np.unique(groups[labels == label])
        if len(names) < 2:
            raise ValueError(
                f"class {label} has {len(names)} recording(s): a grouped split needs two or more"
            )
        target = test_fraction * int(np.sum(labels == label))
        taken = 0
        for name in rng.permutation(names)[:-1]:  # always leave one recording to train on
            if taken >= target:
                break
            test_groups.add(str(name))
            taken += int(np.sum(groups == name))
    in_test = np.isin(groups, list(test_groups))
    return GroupSplit(np.flatnonzero(~in_test), np.flatnonzero(in_test))
