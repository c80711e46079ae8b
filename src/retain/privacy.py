"""Pseudonymisation: student ids are logged and stored only as keyed HMACs."""

from __future__ import annotations

import hashlib
import hmac

from retain.settings import get_settings


def pseudonymize(student_id: str, key: str | None = None) -> str:
    """A stable keyed HMAC-SHA256 of a student id (first 16 hex digits)."""
    secret = (key if key is not None else get_settings().id_key.get_secret_value()).encode("utf-8")
    return hmac.new(secret, str(student_id).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
