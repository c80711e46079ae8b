"""Fetching a dataset's public file from its official source.

``download`` streams the spec's URL to disk (bounded memory), opens it as a zip archive when it is
one (searching nested zips for the spec's ``archive_member``, as in UCI's student-performance
archive) or takes it as the data file itself, validates the result against the spec with every
column required, and only then moves it atomically into place as ``dest_dir / spec.source.file``.
Nothing is left behind on failure, and an existing file is never replaced by a bad download.

Only the standard library talks HTTP (``urllib.request``); this is an edge module (network and
disk), everything it checks with is pure.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from retain.data.load import DataError, load_raw
from retain.data.spec import DatasetSpec
from retain.data.validate import validate_frame

logger = logging.getLogger(__name__)

_CHUNK_BYTES = 1 << 20
_MAX_NESTING = 3
_USER_AGENT = "retain-dataset-download/0.1 (python-urllib)"
_MAX_ERRORS_SHOWN = 8


class DownloadError(RuntimeError):
    """A dataset could not be fetched, unpacked or validated; the message says how to get it by hand."""


def manual_instructions(spec: DatasetSpec, dest_dir: Path) -> str:
    """How to obtain a dataset by hand and where to put it.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset's spec (its ``source`` names the homepage, license and citation).
    dest_dir : Path
        The data folder the file belongs in (normally the one ``RETAIN_DATA_DIR`` points at).

    Returns
    -------
    str
        A few lines of text for people: where to download the file and how to place it.
    """
    src = spec.source
    where = src.homepage or src.url or "the dataset's publisher"
    lines = [f"To get {spec.title!r} ({spec.name}) by hand: download it from {where}"]
    if src.citation:
        lines.append(f"  (source: {src.citation})")
    if src.archive_member:
        lines.append(f"  and take the file {src.archive_member!r} out of the archive;")
    lines.append(
        f"  save it unchanged (original headers) as {dest_dir / src.file} - the folder that the "
        "RETAIN_DATA_DIR setting points at."
    )
    if src.license:
        lines.append(f"  License: {src.license}.")
    return "\n".join(lines)


def _fail(spec: DatasetSpec, dest_dir: Path, reason: str) -> DownloadError:
    return DownloadError(
        f"cannot download dataset {spec.name!r}: {reason}\n{manual_instructions(spec, dest_dir)}"
    )


def _fetch(url: str, target: Path, timeout: float) -> tuple[str, str]:
    """Stream ``url`` into ``target`` in chunks; return (sha256 hex digest, content type).

    Network errors surface as ``urllib.error`` / ``OSError`` / ``ValueError``; the caller turns
    them into ``DownloadError``.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest = hashlib.sha256()
    received = 0
    with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as out:
        content_type = str(response.headers.get("Content-Type") or "")
        length_header = response.headers.get("Content-Length")
        while chunk := response.read(_CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
            received += len(chunk)
    if length_header is not None and length_header.isdigit() and int(length_header) != received:
        raise OSError(f"connection closed early: received {received} of {length_header} bytes")
    return digest.hexdigest(), content_type


def _looks_like_html(path: Path, content_type: str) -> bool:
    if "html" in content_type.lower():
        return True
    with path.open("rb") as handle:
        head = handle.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


def _describe_content(path: Path, content_type: str) -> str:
    with path.open("rb") as handle:
        head = handle.read(40)
    shown = head.decode("utf-8", errors="replace").replace("\n", " ").strip()
    kind = f"content type {content_type!r}" if content_type else "no content type"
    return f"{kind}, {path.stat().st_size} bytes starting {shown!r}"


def _copy_stream(source: IO[bytes], target: Path) -> None:
    with target.open("wb") as out:
        shutil.copyfileobj(source, out, _CHUNK_BYTES)


@contextmanager
def _open_zip(path: Path) -> Iterator[zipfile.ZipFile]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise zipfile.BadZipFile(f"{path.name}: {exc}") from exc
    with archive:
        yield archive


def _find_member(
    archive_path: Path, member: str, workdir: Path, seen: list[str], depth: int = 0
) -> Path | None:
    """Extract ``member`` (matched by base name) from a zip or the zips nested in it.

    Returns the extracted file under ``workdir``, or None; names of the members looked at are
    appended to ``seen`` for the error message. Memory stays bounded: nested zips are streamed to
    temporary files before they are opened.
    """
    wanted = PurePosixPath(member).name
    with _open_zip(archive_path) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        prefix = "  " * depth
        seen.extend(f"{prefix}{i.filename}" for i in infos)
        for info in infos:
            if PurePosixPath(info.filename).name == wanted:
                out = workdir / f"member-{depth}-{wanted}"
                with archive.open(info) as source:
                    _copy_stream(source, out)
                return out
        if depth >= _MAX_NESTING:
            return None
        for index, info in enumerate(infos):
            if not info.filename.lower().endswith(".zip"):
                continue
            nested = workdir / f"nested-{depth}-{index}.zip"
            with archive.open(info) as source:
                _copy_stream(source, nested)
            try:
                found = _find_member(nested, member, workdir, seen, depth + 1)
            except zipfile.BadZipFile:
                found = None
            finally:
                if nested.exists():
                    nested.unlink()
            if found is not None:
                return found
    return None


def _validate(spec: DatasetSpec, path: Path, dest_dir: Path) -> None:
    try:
        frame = load_raw(spec, path)
    except DataError as exc:
        raise _fail(spec, dest_dir, f"the downloaded file is not a readable data file: {exc}") from exc
    _, report = validate_frame(frame, spec, required=[c.name for c in spec.columns])
    if not report.ok:
        errors = report.errors
        shown = "\n".join(f"  {issue.describe()}" for issue in errors[:_MAX_ERRORS_SHOWN])
        more = (
            f"\n  ... and {len(errors) - _MAX_ERRORS_SHOWN} more" if len(errors) > _MAX_ERRORS_SHOWN else ""
        )
        raise _fail(
            spec,
            dest_dir,
            f"the downloaded file does not match the spec ({len(errors)} error(s)):\n{shown}{more}",
        )


def download(
    spec: DatasetSpec,
    dest_dir: Path,
    url: str | None = None,
    timeout: float = 60,
    expected_sha256: str | None = None,
) -> Path:
    """Download a dataset's file, validate it against the spec and place it in ``dest_dir``.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset; ``spec.source.url`` is fetched unless ``url`` is given, and
        ``spec.source.archive_member`` (default: ``spec.source.file``) is taken out of a zip.
    dest_dir : Path
        Folder to write into (created if missing); normally the one ``RETAIN_DATA_DIR`` names.
    url : str, optional
        Fetch this instead of the spec's URL (a mirror, or a local ``file://`` path).
    timeout : float, default 60
        Seconds to wait on the network for each connect or read.
    expected_sha256 : str, optional
        Hex SHA-256 of the downloaded bytes (the archive as served, or the plain file). When
        given, a mismatch stops the download before anything is unpacked.

    Returns
    -------
    Path
        ``dest_dir / spec.source.file``, written atomically (temporary file, then rename) only
        after it validated with every spec column required.

    Raises
    ------
    DownloadError
        On HTTP or network errors, a checksum mismatch, a page or file that is not the expected
        zip or data file, a missing archive member, or data that fails validation. The message
        ends with how to get the file by hand. Nothing is left in ``dest_dir`` on failure.
    """
    source_url = url or spec.source.url
    dest_dir = Path(dest_dir)
    if not source_url:
        raise _fail(spec, dest_dir, "the spec names no download URL")
    verifiable = spec.source.archive_member is not None or expected_sha256 is not None
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / spec.source.file
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=f".{spec.name}-download-") as tmp:
        workdir = Path(tmp)
        payload = workdir / "payload"
        logger.info("downloading %s from %s", spec.name, source_url)
        try:
            sha256, content_type = _fetch(source_url, payload, timeout)
        except urllib.error.HTTPError as exc:
            raise _fail(spec, dest_dir, f"HTTP {exc.code} ({exc.reason}) from {source_url}") from exc
        except urllib.error.URLError as exc:
            raise _fail(spec, dest_dir, f"cannot reach {source_url}: {exc.reason}") from exc
        except TimeoutError as exc:
            raise _fail(spec, dest_dir, f"no answer from {source_url} within {timeout:g} s") from exc
        except (OSError, ValueError) as exc:
            raise _fail(spec, dest_dir, f"download from {source_url} failed: {exc}") from exc
        if expected_sha256 is not None and sha256.lower() != expected_sha256.strip().lower():
            raise _fail(
                spec,
                dest_dir,
                f"checksum mismatch for {source_url}: expected sha256 {expected_sha256}, got {sha256}",
            )

        member = spec.source.archive_member or spec.source.file
        staged = workdir / f"staged{Path(spec.source.file).suffix}"
        if zipfile.is_zipfile(payload):
            seen: list[str] = []
            try:
                extracted = _find_member(payload, member, workdir, seen)
            except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
                raise _fail(spec, dest_dir, f"the archive from {source_url} is damaged: {exc}") from exc
            if extracted is None:
                listing = "\n".join(f"    {name}" for name in seen[:40])
                raise _fail(
                    spec,
                    dest_dir,
                    f"the archive from {source_url} has no member {member!r}; it holds:\n{listing}",
                )
            extracted.replace(staged)
        elif spec.source.archive_member is not None:
            raise _fail(
                spec,
                dest_dir,
                f"expected a zip archive holding {member!r} from {source_url}, "
                f"got {_describe_content(payload, content_type)}",
            )
        elif _looks_like_html(payload, content_type):
            raise _fail(
                spec,
                dest_dir,
                f"{source_url} served a web page, not a data file, so the data cannot be fetched or "
                f"verified automatically ({_describe_content(payload, content_type)})",
            )
        else:
            payload.replace(staged)

        _validate(spec, staged, dest_dir)
        if not verifiable:
            logger.warning(
                "%s: %s is not a checksummed archive; the file validated against the spec but its "
                "provenance cannot be verified (sha256 %s)",
                spec.name,
                source_url,
                sha256,
            )
        os.replace(staged, dest)
    logger.info("wrote %s", dest)
    return dest
