"""The engagement endpoints through the test client: upload limits, bad images, roles, retrain."""

from __future__ import annotations

import io
import shutil
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from retain.serving.app import create_app
from retain.serving.security import Principal, StaticKeys
from retain.settings import get_settings
from retain.training import registry as tabular_registry
from retain.vision import registry
from retain.vision.backbone import engagement_network
from retain.vision.runtime import export_onnx
from synthetic_frames import make_folder

ADVISOR = {"X-API-Key": "advisor-secret"}
ADMIN = {"X-API-Key": "admin-secret"}
KEYS = StaticKeys({"advisor-secret": Principal("k1", "advisor"), "admin-secret": Principal("k2", "admin")})
URL = "/v1/vision/engagement/predict"


def _jpeg(w: int = 320, h: int = 240, mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "RGB").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG" if mode in {"RGB", "L", "CMYK"} else "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def registered_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with an engagement model whose head is all zeros (P = 0.5 for every image) as champion."""
    home = tmp_path_factory.mktemp("vision-api-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("RETAIN_HOME", str(home))
    get_settings.cache_clear()
    settings = get_settings()
    network = engagement_network()
    network.head.weight.data.zero_()
    network.head.bias.data.zero_()
    onnx_bytes = export_onnx(network)
    version, _ = registry.log_and_register(
        onnx_bytes, ("Engaged", "Not engaged"), {"kind": "test"}, {}, {}, settings
    )
    tabular_registry.set_champion(registry.MODEL_NAME, version)
    make_folder(home / "engagement")
    mp.undo()
    get_settings.cache_clear()
    return home


@pytest.fixture
def client(registered_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    home = tmp_path / "home"
    shutil.copytree(registered_home, home)
    monkeypatch.setenv("RETAIN_HOME", str(home))
    monkeypatch.setenv("RETAIN_VISION_DATA_DIR", str(home / "engagement"))
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), auth=KEYS)) as test_client:
        yield test_client
    get_settings.cache_clear()


def test_a_jpeg_body_or_a_multipart_file_gets_a_probability(client: TestClient) -> None:
    body = client.post(URL, content=_jpeg(), headers={**ADVISOR, "Content-Type": "image/jpeg"})
    assert body.status_code == 200, body.text
    result = body.json()
    assert 0.0 <= result["probability_not_engaged"] <= 1.0
    assert result["label"] in {"Engaged", "Not engaged"} and result["model"] == "vision.engagement"
    form = client.post(URL, files={"file": ("frame.jpg", _jpeg(), "image/jpeg")}, headers=ADVISOR)
    assert form.status_code == 200, form.text
    assert form.json()["probability_not_engaged"] == pytest.approx(
        result["probability_not_engaged"], abs=1e-6
    )
    metrics = client.get("/metrics").text
    assert 'retain_predictions_total{band="' in metrics and 'model="vision.engagement"' in metrics


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_grayscale_cmyk_alpha_and_palette_images_are_scored(client: TestClient, mode: str) -> None:
    fmt = "image/jpeg" if mode in {"L", "CMYK"} else "image/png"
    response = client.post(URL, content=_jpeg(mode=mode), headers={**ADVISOR, "Content-Type": fmt})
    assert response.status_code == 200, response.text


def _huge_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (10_000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    raw = zlib.compress(b"\x00" * 10_001 * 10_000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "content_type", "status", "message"),
    [
        (b"definitely not an image", "image/jpeg", 422, "not a readable"),
        (_jpeg(640, 480)[:3000], "image/jpeg", 422, "truncated"),
        (b"", "image/jpeg", 422, "empty"),
        (_jpeg(), "text/plain", 415, "JPEG or PNG"),
        (_huge_png(), "image/png", 422, "pixels"),
    ],
)
def test_bad_uploads_get_a_4xx_that_says_why(
    client: TestClient, data: bytes, content_type: str, status: int, message: str
) -> None:
    response = client.post(URL, content=data, headers={**ADVISOR, "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert message in response.text


def test_a_50_mb_upload_is_refused_without_a_crash(client: TestClient) -> None:
    data = b"\xff\xd8\xff" + b"\0" * (50 * 1024 * 1024)
    raw = client.post(URL, content=data, headers={**ADVISOR, "Content-Type": "image/jpeg"})
    assert raw.status_code == 413, raw.text
    form = client.post(URL, files={"file": ("big.jpg", data, "image/jpeg")}, headers=ADVISOR)
    assert form.status_code == 413, form.text


def test_a_form_without_the_file_field_names_it(client: TestClient) -> None:
    response = client.post(URL, files={"image": ("frame.jpg", _jpeg(), "image/jpeg")}, headers=ADVISOR)
    assert response.status_code == 422 and "file" in response.text


def test_the_load_tests_image_uploads_are_accepted(client: TestClient) -> None:
    import importlib.util
    import random

    path = Path(__file__).resolve().parents[3] / "loadtest" / "traffic.py"
    spec = importlib.util.spec_from_file_location("loadtest_traffic_vision", path)
    assert spec is not None and spec.loader is not None
    traffic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(traffic)
    rng = random.Random(0)
    assert len(traffic.FRAMES) >= 2
    for _ in range(3):
        response = client.post(
            traffic.ENGAGEMENT_PATH,
            content=traffic.frame_bytes(rng),
            headers={**ADVISOR, "Content-Type": "image/jpeg"},
        )
        assert response.status_code == 200, response.text


def test_the_dashboards_client_gets_the_same_answer(client: TestClient) -> None:
    from retain.dashboard.client import ApiClient

    direct = client.post(URL, content=_jpeg(), headers={**ADVISOR, "Content-Type": "image/jpeg"}).json()
    dashboard = ApiClient("http://testserver", ADVISOR["X-API-Key"], transport=client._transport)
    assert dashboard.engagement(_jpeg()) == direct


def test_no_key_no_prediction_and_only_admins_retrain(client: TestClient) -> None:
    assert client.post(URL, content=_jpeg(), headers={"Content-Type": "image/jpeg"}).status_code == 401
    assert client.post("/v1/vision/engagement/retrain", headers=ADVISOR).status_code == 403


def test_without_a_registered_model_predict_is_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETAIN_HOME", str(tmp_path / "empty"))
    get_settings.cache_clear()
    with TestClient(create_app(get_settings(), auth=KEYS)) as empty:
        response = empty.post(URL, content=_jpeg(), headers={**ADVISOR, "Content-Type": "image/jpeg"})
    assert response.status_code == 503 and "retain vision train" in response.text


def test_retrain_runs_as_a_job_and_reports_the_gate(client: TestClient) -> None:
    started = client.post("/v1/vision/engagement/retrain", headers=ADMIN)
    assert started.status_code == 202, started.text
    job_id = started.json()["job"]["id"]
    again = client.post("/v1/vision/engagement/retrain", headers=ADMIN)
    assert again.status_code in {202, 409}
    deadline = time.monotonic() + 600
    job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
    while job["status"] in {"queued", "running"} and time.monotonic() < deadline:
        time.sleep(1)
        job = client.get(f"/v1/jobs/{job_id}", headers=ADMIN).json()
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["model"] == "vision.engagement" and result["version"] == 2
    # The champion says 0.5 for everything (ROC-AUC 0.5); a trained model beats it on the same recordings.
    assert result["promoted"] is True, result["decision"]
    assert result["metrics"]["champion_roc_auc_same_recordings"] == pytest.approx(0.5)
    scored = client.post(URL, content=_jpeg(), headers={**ADVISOR, "Content-Type": "image/jpeg"})
    assert scored.json()["version"] == 2  # picked up without a restart
