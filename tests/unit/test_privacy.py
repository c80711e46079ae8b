"""Unit tests for ``retain.privacy``: keyed, stable pseudonyms."""

from __future__ import annotations

import pytest

from retain.privacy import pseudonymize
from retain.settings import get_settings


def test_stable() -> None:
    assert pseudonymize("dropout-000042", key="k") == pseudonymize("dropout-000042", key="k")
    assert len(pseudonymize("x", key="k")) == 16
    int(pseudonymize("x", key="k"), 16)


def test_keyed() -> None:
    assert pseudonymize("dropout-000042", key="k1") != pseudonymize("dropout-000042", key="k2")


def test_different_ids_differ() -> None:
    outs = {pseudonymize(f"s{i}", key="k") for i in range(1_000)}
    assert len(outs) == 1_000


def test_does_not_contain_raw_id() -> None:
    for sid in ["123456", "abc", "dropout-000001"]:
        assert sid not in pseudonymize(sid, key="k")


def test_numbers_and_text_ids_agree() -> None:
    assert pseudonymize(42, key="k") == pseudonymize("42", key="k")  # type: ignore[arg-type]


def test_default_key_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    default = pseudonymize("s1")
    assert default == pseudonymize("s1", key="retain-development-key")
    monkeypatch.setenv("RETAIN_ID_KEY", "institution-secret")
    get_settings.cache_clear()
    assert pseudonymize("s1") == pseudonymize("s1", key="institution-secret")
    assert pseudonymize("s1") != default


@pytest.mark.parametrize("key", ["k", "retain-development-key", "x" * 64, "y" * 65, "ключ-🔑"])
def test_pseudonyms_are_hmac_sha256(key: str) -> None:
    import hashlib
    import hmac

    from retain.privacy import pseudonymize, pseudonymizer

    bound = pseudonymizer(key)
    for student_id in ("S1", "", "dropout-00001", "é" * 300):
        want = hmac.new(key.encode(), student_id.encode(), hashlib.sha256).hexdigest()[:16]
        assert bound(student_id) == want == pseudonymize(student_id, key=key)
