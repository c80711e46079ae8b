"""What sub-command modules share for output: progress on stderr, a clean exit on bad input, and
JSON that ``json.dumps`` can always write (NaN and infinity become null, NumPy scalars plain).

``--json`` prints exactly one JSON object on stdout; everything else goes to stderr.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import NoReturn

import typer


def say(message: str, started: float) -> None:
    """A progress line on stderr, with the seconds since ``started``."""
    sys.stderr.write(f"{time.perf_counter() - started:7.1f}s {message}\n")


def fail(message: str) -> NoReturn:
    """End the command with a readable message and exit code 2."""
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def clean(obj: object) -> object:
    """``obj`` with non-finite floats as ``None`` and NumPy scalars as Python ones, recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    if hasattr(obj, "item"):  # numpy scalars
        return clean(obj.item())
    return obj


def print_json(payload: object) -> None:
    """One JSON document on stdout."""
    sys.stdout.write(json.dumps(clean(payload), indent=2, default=str) + "\n")
