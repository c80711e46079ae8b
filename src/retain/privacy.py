"""Pseudonymisation: student ids are logged and stored only as keyed HMACs."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from retain.settings import get_settings


def pseudonymize(student_id: str, key: str | None = None) -> str:
    """A stable keyed HMAC-SHA256 of a student id (first 16 hex digits)."""
    return pseudonymizer(key)(student_id)


def pseudonymizer(key: str | None = None) -> Callable[[str], str]:
    """``pseudonymize`` with the key bound once: for many ids (one-shot HMAC in OpenSSL)."""
    secret = (key if key is not None else get_settings().id_key.get_secret_value()).encode("utf-8")
    digest = hmac.digest

    def pseudonym(student_id: str) -> str:
        return digest(secret, str(student_id).encode("utf-8"), "sha256")[:8].hex()

    return pseudonym
