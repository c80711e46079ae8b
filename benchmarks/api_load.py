"""Benchmark: the API under load, driven by wrk against a real uvicorn server.

Starts `retain serve` (one worker) on a fresh RETAIN_HOME with `dropout.dropout.semester_1` trained on
the example data (synthetic when absent) and an advisor key, then measures in the same run:

1. saturation throughput of a trivial authenticated endpoint (GET /v1/ping) — the baseline;
2. saturation throughput of single-record predict (POST /v1/dropout/predict, one student, stored);
3. latency (p50/p99) of single-record predict under a steady offered load of half the measured
   maximum (an open-loop Python client at a fixed rate);
4. batch predict throughput (1,000 students a request) in students/s;
5. the added latency of explanations per student (explain=true on 100-student batches).

    RETAIN_DATA_DIR=../shared/data python benchmarks/api_load.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _students(n: int, seed: int) -> list[dict[str, object]]:
    import pandas as pd

    from retain.data.spec import load_spec
    from retain.data.synth import synthesize

    frame = synthesize(load_spec("dropout"), n, seed=seed).drop(columns=["target"])
    frame = frame[[c for c in frame.columns if not c.startswith("units_2nd")]]
    return [{k: (None if pd.isna(v) else v) for k, v in r.items()} for r in frame.to_dict(orient="records")]


def _wrk(url: str, key: str, seconds: int, body: str | None, connections: int = 8) -> dict[str, float]:
    script = None
    args = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--latency",
        "-H",
        f"X-API-Key: {key}",
    ]
    if body is not None:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 30).stdout
    if script is not None:
        script.unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "errors": float(non2xx.group(1)) if non2xx else 0.0}


def _steady(url: str, key: str, body: bytes | None, rate: float, seconds: float) -> np.ndarray:
    """Open-loop load: requests start on a fixed schedule whatever the previous ones do."""
    latencies: list[float] = []
    lock = threading.Lock()
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    clients = [httpx.Client(headers=headers, timeout=10) for _ in range(16)]

    def fire(i: int) -> None:
        started = time.perf_counter()
        client = clients[i % len(clients)]
        response = client.get(url) if body is None else client.post(url, content=body)
        elapsed = time.perf_counter() - started
        if response.status_code == 200:
            with lock:
                latencies.append(elapsed)

    threads: list[threading.Thread] = []
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=fire, args=(i,))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    for client in clients:
        client.close()
    return np.asarray(latencies)


def main() -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="retain-api-bench-"))
    os.environ["RETAIN_HOME"] = str(home)
    import warnings

    warnings.filterwarnings("ignore")
    from retain.data.spec import load_spec
    from retain.data.synth import synthesize_to_file
    from retain.settings import get_settings
    from retain.store.repository import Store
    from retain.training.train import TrainOptions, train

    settings = get_settings()
    data_path = None
    if not (settings.data_dir / "dropout_academic_success.csv").exists():
        data_path = home / "dropout.csv"
        synthesize_to_file(load_spec("dropout"), 3000, data_path, seed=1)
    train(
        "dropout", "dropout", "semester_1", TrainOptions(data_path=data_path, baselines=(), importance=False)
    )
    store = Store.from_settings(settings)
    _, key = store.create_key("advisor", programmes=["*"])
    store.close()

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RETAIN_HOME": str(home), "RETAIN_API_MAX_BATCH": "10000"}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "retain"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        one = json.dumps({"students": _students(1, 3), "task": "dropout"})
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        for _ in range(20):  # warm up: load and compile the model
            httpx.post(f"{base}/v1/dropout/predict", content=one, headers=headers, timeout=30)
        ping = _wrk(f"{base}/v1/ping", key, 10, None)
        single = _wrk(f"{base}/v1/dropout/predict", key, 10, one)
        half = single["rps"] / 2
        lat = _steady(f"{base}/v1/dropout/predict", key, one.encode(), half, 10)
        lat_ping = _steady(f"{base}/v1/ping", key, None, half, 10)  # the client's own noise, same rate

        batch_body = json.dumps({"students": _students(1000, 5), "task": "dropout"}).encode()
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            response = httpx.post(
                f"{base}/v1/dropout/predict", content=batch_body, headers=headers, timeout=120
            )
            timings.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text[:300]
        batch_rate = 1000 / float(np.median(timings))

        plain = json.dumps({"students": _students(100, 7), "task": "dropout"}).encode()
        explained = json.dumps({"students": _students(100, 7), "task": "dropout", "explain": True}).encode()

        def median_time(body: bytes) -> float:
            values = []
            for _ in range(7):
                started = time.perf_counter()
                httpx.post(f"{base}/v1/dropout/predict", content=body, headers=headers, timeout=60)
                values.append(time.perf_counter() - started)
            return float(np.median(values))

        explain_ms = (median_time(explained) - median_time(plain)) / 100 * 1000
    finally:
        server.terminate()
        server.wait(timeout=20)

    print(f"trivial authenticated GET /v1/ping:  {ping['rps']:8.0f} req/s (non-2xx {ping['errors']:.0f})")
    print(f"single-record predict (stored):      {single['rps']:8.0f} req/s (non-2xx {single['errors']:.0f})")
    print(f"  ratio to trivial endpoint:         {single['rps'] / ping['rps']:8.2f} (target >= 0.50)")
    print(
        f"steady load at {half:.0f} req/s:  p50 {np.percentile(lat, 50) * 1000:.1f} ms, p99 {np.percentile(lat, 99) * 1000:.1f} ms "
        f"over {len(lat)} requests (target p99 <= 25 ms)"
    )
    print(
        f"  baseline, GET /v1/ping at the same rate: p50 {np.percentile(lat_ping, 50) * 1000:.1f} ms, "
        f"p99 {np.percentile(lat_ping, 99) * 1000:.1f} ms"
    )
    print(f"batch predict (1,000 a request):     {batch_rate:8.0f} students/s (target >= 20,000)")
    print(f"explanations add:                    {explain_ms:8.2f} ms per student (target <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
