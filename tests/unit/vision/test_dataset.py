"""Image folders, recordings and splits that keep every recording whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retain.vision.dataset import ImageFolderError, frame_number, group_split, recording_groups, scan


def test_frame_numbers_and_runs_make_recordings() -> None:
    assert frame_number(Path("0131.jpg")) == 131
    assert frame_number(Path("91.jpg")) == 91
    assert frame_number(Path("frame_7_v2.png")) == 2
    assert frame_number(Path("face.png")) is None
    frames: list[int | None] = [1, 2, 3, 10, 11, 40, None, 3]
    groups = recording_groups(frames, max_gap=5)
    assert groups[0] == groups[1] == groups[2] == groups[7]  # 3 twice (0003.jpg and 3.jpg): same run
    assert groups[3] == groups[4] != groups[0]
    assert len({groups[5], groups[6], groups[0], groups[3]}) == 4  # a gap of 29 and an unnumbered file


def test_scan_reads_classes_subclasses_and_recordings(image_folder: Path) -> None:
    folder = scan(image_folder)
    assert folder.classes == ("Engaged", "Not engaged")
    summary = folder.summary()
    assert summary["images"] == 2 * 2 * 3 * 6
    assert summary["recordings"] == 12
    assert summary["subclasses"]["Not engaged/a"] == {"images": 18, "recordings": 3}
    assert set(folder.labels.tolist()) == {0, 1}
    assert all(i.label == (i.label_name == "Not engaged") for i in folder.items)


def test_scan_refuses_folders_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ImageFolderError, match="not a folder"):
        scan(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    with pytest.raises(ImageFolderError, match="exactly two class folders"):
        scan(tmp_path)
    (tmp_path / "Not engaged").mkdir()
    with pytest.raises(ImageFolderError, match="holds no"):
        scan(tmp_path)
    with pytest.raises(ImageFolderError, match="no class folder named"):
        scan(tmp_path, positive="Bored")


def test_group_split_never_cuts_a_recording(image_folder: Path) -> None:
    folder = scan(image_folder)
    for seed in range(5):
        split = group_split(folder.labels, folder.groups, 0.3, seed)
        train, test = set(folder.groups[split.train]), set(folder.groups[split.test])
        assert not train & test
        assert len(split.train) + len(split.test) == len(folder.items)
        assert set(folder.labels[split.test]) == {0, 1} and set(folder.labels[split.train]) == {0, 1}


def test_group_split_needs_two_recordings_per_class() -> None:
    labels = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="recording"):
        group_split(labels, np.array(["a", "a", "b", "c"]), 0.5, 0)
