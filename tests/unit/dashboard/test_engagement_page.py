"""The engagement page: the caution and the consent come before any upload; the client posts bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamlit.testing.v1 import AppTest

from retain.dashboard.client import ApiClient, ApiError
from retain.dashboard.sections.engagement import CAUTION, CONSENT

ROOT = Path(__file__).resolve().parents[3]
APP = ROOT / "src" / "retain" / "dashboard" / "app.py"
FRAME = ROOT / "loadtest" / "frames" / "synthetic-0.jpg"


def test_the_page_states_the_limits_and_asks_for_consent(api_env: Any) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.sidebar.text_input[0].input(api_env.advisor_key)
    at.sidebar.button[0].click()
    at.run()
    at.sidebar.radio(key="retain_page").set_value("Engagement (images)")
    at.run()
    assert not at.exception, at.exception
    assert at.warning[0].value == CAUTION and "not** been shown" in CAUTION
    consent = at.checkbox(key="engagement_consent")
    assert consent.label == CONSENT and consent.value is False


def test_the_client_reports_the_services_answer(api_env: Any) -> None:
    # The live API has no engagement model registered: the client surfaces the 503 and its reason;
    # a bad image is refused before that (422), which tests/unit/serving/test_vision_routes.py covers.
    client = ApiClient(api_env.url, api_env.advisor_key)
    try:
        client.engagement(FRAME.read_bytes())
    except ApiError as exc:
        assert exc.status == 503 and "retain vision train" in exc.message
    else:  # pragma: no cover - the assertion is the point
        raise AssertionError("expected the service to refuse without a model")
    finally:
        client.close()
