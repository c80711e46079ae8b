"""Tests for ``retain.data.download`` against a loopback HTTP server (no outside network)."""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from retain.data.download import DownloadError, download, manual_instructions
from retain.data.load import load_raw
from retain.data.spec import DatasetSpec, load_spec_file
from retain.data.synth import synthesize_to_file
from retain.data.validate import validate_frame

SPEC_DIR = Path(__file__).resolve().parents[3] / "configs" / "datasets"

GOOD_CSV = b"\xef\xbb\xbfLevel;Score;Outcome\n1;12.5;pass\n2;7.0;fail\n1;15.0;pass\n"
BAD_CSV = b"Level;Score;Outcome\n9;12.5;pass\n2;abc;fail\n"


class _Routes(dict[str, tuple[int, bytes, str]]):
    """Path -> (status, body, content type), served by the loopback server."""


@pytest.fixture
def server() -> Iterator[tuple[str, _Routes]]:
    """A local HTTP server on a free port; tests register routes before fetching."""
    routes = _Routes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, content_type = routes.get(self.path, (404, b"not found", "text/plain"))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def tiny_spec() -> DatasetSpec:
    """A small institution-style spec whose file lives in a zip as ``export/data.csv``."""
    return DatasetSpec.model_validate(
        {
            "name": "tiny",
            "title": "Tiny test dataset",
            "source": {
                "file": "tiny.csv",
                "delimiter": ";",
                "url": "http://127.0.0.1:9/unused.zip",
                "archive_member": "data.csv",
                "homepage": "https://example.org/tiny",
                "license": "CC BY 4.0",
                "citation": "Tiny et al. (2024)",
            },
            "stages": ["start"],
            "columns": [
                {
                    "name": "level",
                    "source": "Level",
                    "type": "categorical",
                    "codes": {"1": "one", "2": "two"},
                },
                {"name": "score", "source": "Score", "type": "float", "min": 0, "max": 20},
                {
                    "name": "outcome",
                    "source": "Outcome",
                    "type": "categorical",
                    "role": "target",
                    "codes": {"pass": "pass", "fail": "fail"},
                },
            ],
            "tasks": [
                {
                    "name": "passing",
                    "type": "classification",
                    "target": "outcome",
                    "adverse": "fail",
                    "negative_label": "pass",
                    "stages": ["start"],
                    "primary_metric": "roc_auc",
                }
            ],
        }
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _leftovers(folder: Path) -> list[str]:
    """Everything in ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_zip_member_is_written_and_validated(
    server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path
) -> None:
    base, routes = server
    routes["/tiny.zip"] = (
        200,
        _zip({"README.txt": b"hello", "export/data.csv": GOOD_CSV}),
        "application/zip",
    )
    dest_dir = tmp_path / "data"

    path = download(tiny_spec, dest_dir, url=f"{base}/tiny.zip")

    assert path == dest_dir / "tiny.csv"
    assert path.read_bytes() == GOOD_CSV
    assert _leftovers(dest_dir) == ["tiny.csv"]
    _, report = validate_frame(load_raw(tiny_spec, path), tiny_spec, required=["level", "score", "outcome"])
    assert report.ok


def test_nested_zip_like_uci_student_performance(server: tuple[str, _Routes], tmp_path: Path) -> None:
    spec = load_spec_file(SPEC_DIR / "secondary_math.yaml")
    math_csv = synthesize_to_file(spec, 40, tmp_path / "student-mat.csv", seed=3).read_bytes()
    por_spec = load_spec_file(SPEC_DIR / "secondary_portuguese.yaml")
    por_csv = synthesize_to_file(por_spec, 40, tmp_path / "student-por.csv", seed=4).read_bytes()
    inner = _zip({"student-mat.csv": math_csv, "student-por.csv": por_csv, "student.txt": b"attributes"})
    base, routes = server
    routes["/320/student+performance.zip"] = (
        200,
        _zip({"student.zip": inner, "student-merge.R": b"# R"}),
        "application/x-zip-compressed",
    )
    dest_dir = tmp_path / "data"

    path = download(spec, dest_dir, url=f"{base}/320/student+performance.zip")

    assert path == dest_dir / "secondary_math.csv"
    assert path.read_bytes() == math_csv
    assert _leftovers(dest_dir) == ["secondary_math.csv"]


def test_plain_csv_without_archive(
    server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path
) -> None:
    spec = tiny_spec.model_copy(
        update={"source": tiny_spec.source.model_copy(update={"archive_member": None})}
    )
    base, routes = server
    routes["/tiny.csv"] = (200, GOOD_CSV, "text/csv")

    path = download(spec, tmp_path, url=f"{base}/tiny.csv")

    assert path.read_bytes() == GOOD_CSV
    assert _leftovers(tmp_path) == ["tiny.csv"]


def test_http_404_is_a_clear_error(
    server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path
) -> None:
    base, _ = server
    with pytest.raises(DownloadError, match=r"HTTP 404") as info:
        download(tiny_spec, tmp_path, url=f"{base}/missing.zip")
    assert "https://example.org/tiny" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_unreachable_host_is_a_clear_error(tiny_spec: DatasetSpec, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError, match=r"cannot reach"):
        download(tiny_spec, tmp_path, url=f"http://127.0.0.1:{port}/x.zip", timeout=5)
    assert _leftovers(tmp_path) == []


def test_content_that_is_not_a_zip(
    server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path
) -> None:
    base, routes = server
    routes["/tiny.zip"] = (200, b"PK\x03\x04 truncated garbage", "application/zip")
    with pytest.raises(DownloadError, match=r"expected a zip archive holding 'data.csv'"):
        download(tiny_spec, tmp_path, url=f"{base}/tiny.zip")
    assert _leftovers(tmp_path) == []


def test_damaged_zip_member(server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path) -> None:
    body = bytearray(_zip({"data.csv": GOOD_CSV * 50}))
    start = body.index(b"data.csv") + len("data.csv")
    for offset in range(start + 5, start + 25):
        body[offset] ^= 0xFF
    base, routes = server
    routes["/tiny.zip"] = (200, bytes(body), "application/zip")
    with pytest.raises(DownloadError, match=r"damaged"):
        download(tiny_spec, tmp_path, url=f"{base}/tiny.zip")
    assert _leftovers(tmp_path) == []


def test_zip_without_the_member(server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path) -> None:
    base, routes = server
    routes["/tiny.zip"] = (200, _zip({"other.csv": GOOD_CSV, "nested.zip": _zip({"x.csv": b"a\n1\n"})}), "")
    with pytest.raises(DownloadError, match=r"has no member 'data.csv'") as info:
        download(tiny_spec, tmp_path, url=f"{base}/tiny.zip")
    message = str(info.value)
    assert "other.csv" in message
    assert "x.csv" in message
    assert _leftovers(tmp_path) == []


def test_invalid_data_is_rejected_and_existing_file_kept(
    server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path
) -> None:
    existing = tmp_path / "tiny.csv"
    existing.write_bytes(GOOD_CSV)
    base, routes = server
    routes["/tiny.zip"] = (200, _zip({"data.csv": BAD_CSV}), "application/zip")

    with pytest.raises(DownloadError, match=r"does not match the spec") as info:
        download(tiny_spec, tmp_path, url=f"{base}/tiny.zip")

    assert "unknown code" in str(info.value)
    assert existing.read_bytes() == GOOD_CSV
    assert _leftovers(tmp_path) == ["tiny.csv"]


def test_missing_column_is_rejected(
    server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path
) -> None:
    base, routes = server
    routes["/tiny.zip"] = (200, _zip({"data.csv": b"Level;Score\n1;3\n"}), "application/zip")
    with pytest.raises(DownloadError, match=r"column is missing"):
        download(tiny_spec, tmp_path, url=f"{base}/tiny.zip")
    assert _leftovers(tmp_path) == []


def test_sha256_is_checked(server: tuple[str, _Routes], tiny_spec: DatasetSpec, tmp_path: Path) -> None:
    body = _zip({"data.csv": GOOD_CSV})
    base, routes = server
    routes["/tiny.zip"] = (200, body, "application/zip")

    with pytest.raises(DownloadError, match=r"checksum mismatch"):
        download(tiny_spec, tmp_path, url=f"{base}/tiny.zip", expected_sha256="0" * 64)
    assert _leftovers(tmp_path) == []

    good = hashlib.sha256(body).hexdigest().upper()
    assert download(tiny_spec, tmp_path, url=f"{base}/tiny.zip", expected_sha256=good).exists()


def test_generator_page_explains_where_to_get_exam_scores(
    server: tuple[str, _Routes], tmp_path: Path
) -> None:
    spec = load_spec_file(SPEC_DIR / "exam_scores.yaml")
    base, routes = server
    routes["/tools/generated_data/exams"] = (
        200,
        b"<!DOCTYPE html><html><body><form>Generate</form></body></html>",
        "text/html; charset=utf-8",
    )

    with pytest.raises(DownloadError) as info:
        download(spec, tmp_path, url=f"{base}/tools/generated_data/exams")

    message = str(info.value)
    assert "web page" in message
    assert "kaggle.com/datasets/spscientist/students-performance-in-exams" in message
    assert "Students Performance in Exams" in message
    assert "RETAIN_DATA_DIR" in message
    assert str(tmp_path / "exam_scores.csv") in message
    assert _leftovers(tmp_path) == []


def test_spec_without_url(tiny_spec: DatasetSpec, tmp_path: Path) -> None:
    spec = tiny_spec.model_copy(update={"source": tiny_spec.source.model_copy(update={"url": None})})
    with pytest.raises(DownloadError, match=r"no download URL"):
        download(spec, tmp_path)


def test_manual_instructions_name_the_member_and_place(tiny_spec: DatasetSpec, tmp_path: Path) -> None:
    text = manual_instructions(tiny_spec, tmp_path)
    assert "https://example.org/tiny" in text
    assert "'data.csv'" in text
    assert str(tmp_path / "tiny.csv") in text
    assert "CC BY 4.0" in text
