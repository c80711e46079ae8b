"""The API as users run it: a real uvicorn server of two worker processes, a real PostgreSQL store,
a real HTTP client.

Also scans the server's log output and every stored row for the raw student ids it sent.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, inspect, text

from retain.data.spec import load_spec
from retain.data.synth import synthesize
from retain.settings import get_settings
from retain.store.repository import Store

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(
    pg_url: str, tmp_path_factory: pytest.TempPathFactory, copy_trained_home: Callable[..., Path]
) -> Iterator[tuple[str, str, str, Path]]:
    home = tmp_path_factory.mktemp("uvicorn-home")
    # A dropout.dropout.semester_1 champion (the shared one, 800 synthetic rows): the API under test
    # only needs one; training does not touch the store.
    copy_trained_home(home, ("dropout", "dropout", "semester_1", 800), data_dir=True)
    env = {
        **os.environ,
        "RETAIN_HOME": str(home),
        "RETAIN_DATABASE_URL": pg_url,
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    mp = pytest.MonkeyPatch()
    for key in ("RETAIN_HOME", "RETAIN_DATABASE_URL"):
        mp.setenv(key, env[key])
    get_settings.cache_clear()
    store = Store.from_settings()
    _, advisor_key = store.create_key("advisor", programmes=["9254", "9500"])
    _, admin_key = store.create_key("admin")
    roster = pd.DataFrame(
        {
            "student_id": ["S-RAW-0001"],
            "name": ["Ada Example"],
            "contact": ["ada@example.org"],
            "programme": ["9254"],
        }
    )
    store.import_roster(roster)
    store.close()
    mp.undo()
    get_settings.cache_clear()
    port = _free_port()
    log_path = home / "server.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "retain"), "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail(f"server did not start: {log_path.read_text()[-2000:]}")
        yield base, advisor_key, admin_key, log_path
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _students(n: int) -> list[dict[str, object]]:
    frame = synthesize(load_spec("dropout"), n, seed=43).drop(columns=["target"])
    frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    frame["course"] = "9254"
    frame["student_id"] = [f"S-RAW-{i:04d}" for i in range(1, n + 1)]
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


def test_predict_store_and_read_back_over_http(server: tuple[str, str, str, Path], pg_url: str) -> None:
    base, advisor_key, admin_key, log_path = server
    headers = {"X-API-Key": advisor_key}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        assert client.get("/readyz").json()["database"] is True
        body = {"students": _students(5), "task": "dropout", "explain": True, "event_id": "batch-1"}
        first = client.post("/v1/dropout/predict", json=body)
        assert first.status_code == 200, first.text
        again = client.post("/v1/dropout/predict", json=body)
        ids = [p["prediction_id"] for p in first.json()["predictions"]]
        assert [p["prediction_id"] for p in again.json()["predictions"]] == ids  # idempotent by event id
        assert all(p.get("duplicate") for p in again.json()["predictions"])

        assert (
            client.post(
                "/v1/dropout/interventions",
                json={"student_id": "S-RAW-0001", "type": "tutoring", "note": "weekly"},
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/v1/dropout/outcomes",
                json={"outcomes": [{"student_id": "S-RAW-0001", "outcome": "Graduate", "task": "dropout"}]},
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/v1/dropout/feedback", json={"prediction_id": ids[0], "reason": "already known"}
            ).status_code
            == 200
        )

        caseload = client.get("/v1/dropout/students", params={"task": "dropout"}).json()
        assert caseload["total"] >= 1
        risks = [s["risk_score"] for s in caseload["students"]]
        assert risks == sorted(risks, reverse=True)
        detail = client.get("/v1/dropout/students/S-RAW-0001")
        assert detail.status_code == 200
        history = detail.json()
        assert history["name"] == "Ada Example"
        assert len(history["interventions"]) == 1 and len(history["outcomes"]) == 1

        assert client.post("/v1/models/dropout.dropout.semester_1/rollback").status_code == 403
        assert httpx.get(f"{base}/v1/dropout/students", timeout=10).status_code == 401
        admin = {"X-API-Key": admin_key}
        models = httpx.get(f"{base}/v1/models", headers=admin, timeout=10).json()
        assert any("champion" in m["aliases"] for m in models)
        rollback = httpx.post(
            f"{base}/v1/models/dropout.dropout.semester_1/rollback", headers=admin, timeout=10
        )
        assert rollback.status_code == 422 and "no previous champion" in rollback.text

    raw_ids = [f"S-RAW-{i:04d}" for i in range(1, 6)]
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        audit_rows = conn.execute(text("SELECT action FROM audit_log")).scalars().all()
        assert any("read" in a for a in audit_rows)
        dump = []
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                dump.append(" ".join(str(v) for v in row))
    engine.dispose()
    stored = "\n".join(dump)
    assert "Ada Example" not in stored
    for raw in raw_ids:
        assert raw not in stored, f"raw id {raw} stored in the database"
        assert raw not in log_path.read_text(), f"raw id {raw} in the server log"


def test_a_real_prometheus_scrapes_the_api(server: tuple[str, str, str, Path], tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        reason = "prometheus not installed (Debian package prometheus; `make system-tools`)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    base, advisor_key, _, _ = server
    httpx.post(
        f"{base}/v1/dropout/predict",
        json={"students": _students(3), "task": "dropout"},
        headers={"X-API-Key": advisor_key},
        timeout=30,
    ).raise_for_status()
    target = base.removeprefix("http://")
    rules = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files: ['{rules}']\n"
        f"scrape_configs:\n  - job_name: retain\n    static_configs:\n      - targets: ['{target}']\n"
    )
    port = _free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        found: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not found:
            time.sleep(0.25)  # Prometheus scrapes every second; look a few times in between
            try:
                answer = httpx.get(
                    f"{api}/query",
                    params={"query": 'retain_predictions_total{model="dropout.dropout.semester_1"}'},
                    timeout=5,
                ).json()
            except httpx.HTTPError:
                continue
            found = answer.get("data", {}).get("result", [])
        assert found, "Prometheus never scraped Retain's predictions counter"
        assert sum(float(r["value"][1]) for r in found) >= 3  # type: ignore[index]
        up = httpx.get(f"{api}/query", params={"query": 'up{job="retain"}'}, timeout=5).json()
        assert up["data"]["result"][0]["value"][1] == "1"
        loaded = httpx.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in loaded} == {"retain-api", "retain-models", "retain-stream"}
    finally:
        process.terminate()
        process.wait(timeout=20)


def _predictions_counted(base: str) -> float:
    """``retain_predictions_total`` summed over its labels, from one scrape on a new connection
    (so successive scrapes may reach different workers)."""
    text_ = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text_)
        if family.name == "retain_predictions"
        for sample in family.samples
        if sample.name == "retain_predictions_total"
    )


def test_every_scrape_counts_the_predictions_of_both_workers(server: tuple[str, str, str, Path]) -> None:
    base, advisor_key, _, _ = server
    before = [_predictions_counted(base) for _ in range(6)]
    assert len(set(before)) == 1, f"scrapes disagree: {before}"
    sent = 30
    for student in _students(sent):  # a new connection each: the kernel spreads them over workers
        httpx.post(
            f"{base}/v1/dropout/predict",
            json={"students": [student], "task": "dropout"},
            headers={"X-API-Key": advisor_key, "Connection": "close"},
            timeout=30,
        ).raise_for_status()
    after = [_predictions_counted(base) for _ in range(6)]
    assert after == [before[0] + sent] * 6
