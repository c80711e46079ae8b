"""Benchmark: the API under load, driven by wrk and an open-loop client against a real uvicorn server.

Starts `retain serve` (one worker unless `--workers N`, the SQLite store with full sync) on a fresh
RETAIN_HOME with `dropout.dropout.semester_1` trained on the example data (synthetic when absent)
and an advisor key, waits until the model's trees run as native code in every worker (readiness
says so), then measures in the same run, on the same server:

1. saturation throughput of a trivial authenticated endpoint (GET /v1/ping): the baseline;
2. saturation throughput of single-record predict (POST /v1/dropout/predict, one student, stored);
   both with wrk at 8, 32 and 128 connections (``--connections``), twice each, alternating;
   saturation is the highest median over the connection counts, and the ratio compares the two
   endpoints' saturation throughputs (single predict needs more connections to get there: each
   request waits for its group's commit, and the more requests arrive meanwhile, the larger and
   cheaper per request the next group);
3. latency (p50/p99) of single-record predict under a steady offered load of half the measured
   maximum, from an open-loop client in its own process (requests leave on a fixed schedule
   whatever the earlier ones do; latency counts from the scheduled time, so a stalled server
   cannot hide its queue), and the same client against GET /v1/ping at the same rate;
4. batch predict (1,000 students a request): one client at a time, and at saturation (wrk,
   8 connections), in students/s;
5. the added latency of explanations per student (explain=true on 100-student batches).

    RETAIN_DATA_DIR=../shared/data python benchmarks/api_load.py [--seconds 10] [--workers 2]

Server CPU is that of the server and its worker processes, read from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
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


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU so far of a process (its threads included) and of its child
    processes (a multi-worker server's workers), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = [int(k) for k in children.read_text().split()] if children.exists() else []
    return own + sum(_cpu_seconds(kid) for kid in kids)


def _wrk(
    url: str, key: str, seconds: int, body: str | None, connections: int = 8, pid: int | None = None
) -> dict[str, float]:
    script = None
    args = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency", "--timeout", "10s"]
    args += ["-H", f"X-API-Key: {key}"]
    if body is not None:
        script = Path(tempfile.mkstemp(suffix=".lua")[1])
        script.write_text(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
        args += ["-s", str(script)]
    cpu_before = _cpu_seconds(pid) if pid is not None else 0.0
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=seconds + 60).stdout
    cpu = _cpu_seconds(pid) - cpu_before if pid is not None else float("nan")
    if script is not None:
        script.unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    p99_ms = (
        float(p99.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)] if p99 else float("nan")
    )
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
        "cpu_ms": cpu / max(total, 1) * 1000,  # the server's CPU per request, all its threads
        "p99_ms": p99_ms,  # wrk's (closed loop: a slow answer delays the next request)
    }


# ------------------------------------------------------------------- the open-loop load generator


async def _open_loop_async(
    port: int, request: bytes, rate: float, seconds: float, pool: int
) -> tuple[list[float], list[float], int]:
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = [
        await asyncio.open_connection("127.0.0.1", port) for _ in range(pool)
    ]
    latencies: list[float] = []
    starts: list[float] = []
    failures = 0

    async def exchange(connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bytes:
        reader, writer = connection
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length:\s*(\d+)", head)
        await reader.readexactly(int(length.group(1)) if length else 0)
        return head

    total = int(rate * seconds)
    finished = 0
    all_done = asyncio.Event()

    async def one(scheduled: float) -> None:
        nonlocal failures, finished
        # oldest idle connection first, so none sits idle long enough for the server to close it
        connection = idle.pop(0) if idle else await asyncio.open_connection("127.0.0.1", port)
        try:
            head = await exchange(connection)
        except (asyncio.IncompleteReadError, ConnectionError):  # closed while idle: not sent
            connection = await asyncio.open_connection("127.0.0.1", port)
            head = await exchange(connection)
        elapsed = time.perf_counter() - scheduled
        if head[9:12] == b"200":
            latencies.append(elapsed)
            starts.append(scheduled - start)
        else:
            failures += 1
        idle.append(connection)
        finished += 1
        if finished == total:
            all_done.set()

    tasks = []
    start = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    # not gather(): its set-up over tens of thousands of tasks stalled the loop while the last
    # requests were due, and they counted as late
    await all_done.wait()
    for _, writer in idle:
        writer.close()
    return latencies, starts, failures


def _open_loop(
    port: int, request: bytes, rate: float, seconds: float
) -> tuple[list[float], list[float], int]:
    """Runs in a child process: the client never competes for the benchmark's own GIL.

    Its garbage collector is off while it runs: with tens of thousands of request tasks alive, a
    full collection stopped the client's event loop for about a tenth of a second, and the
    requests due meanwhile left late, counted as the server's latency (100-400 "slow" requests
    at the same moment of every run, whatever the server did)."""
    gc.disable()
    try:
        # enough connections open before the start that none is opened during the run (a new
        # connection's set-up on both sides made the first half second's requests late)
        return asyncio.run(_open_loop_async(port, request, rate, seconds, pool=64))
    finally:
        gc.enable()


def _raw_request(method: str, path: str, key: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


def _steady(port: int, request: bytes, rate: float, seconds: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Latencies, their scheduled start (seconds into the run) and the failed count."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        latencies, starts, failures = pool.apply(_open_loop, (port, request, rate, seconds))
    return np.asarray(latencies), np.asarray(starts), failures


# ------------------------------------------------------------------------------------- the run


def _wait_until_native(base: str, name: str, agreeing: int, timeout: float = 300) -> bool:
    """Until ``agreeing`` readiness checks in a row, each on a new connection (so they reach
    every worker), say the model's trees run as native code."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        ready = httpx.get(f"{base}/readyz", headers={"Connection": "close"}, timeout=5).json()
        streak = streak + 1 if ready.get("native", {}).get(name) else 0
        if streak >= agreeing:
            return True
        time.sleep(0.05 if streak else 0.5)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="Length of each wrk and steady run.")
    parser.add_argument(
        "--workers", type=int, default=1, help="Worker processes of the server (retain serve --workers)."
    )
    parser.add_argument(
        "--connections",
        type=lambda text: [int(c) for c in text.split(",")],
        default=[8, 32, 128],
        help="wrk connection counts for ping and single predict (comma-separated); saturation is "
        "the highest throughput over them.",
    )
    parser.add_argument("--repeats", type=int, default=2, help="Runs of each endpoint at each count.")
    parser.add_argument(
        "--no-native",
        action="store_true",
        help="Serve with LightGBM's own predictor (RETAIN_NATIVE_TREES=false).",
    )
    args = parser.parse_args()
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
    if args.no_native:
        env["RETAIN_NATIVE_TREES"] = "false"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "retain"),
            *("serve", "--port", str(port), "--workers", str(args.workers)),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seconds = args.seconds
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        one = json.dumps({"students": _students(1, 3), "task": "dropout"})
        headers = {"X-API-Key": key, "Content-Type": "application/json"}
        spread = {**headers, "Connection": "close"}  # a new connection each: every worker loads the model
        started = time.perf_counter()
        for _ in range(10 * args.workers):
            httpx.post(f"{base}/v1/dropout/predict", content=one, headers=spread, timeout=30)
        agreeing = 10 * args.workers
        native = not args.no_native and _wait_until_native(base, "dropout.dropout.semester_1", agreeing)
        native_s = time.perf_counter() - started
        for _ in range(50):  # warm up
            httpx.post(f"{base}/v1/dropout/predict", content=one, headers=spread, timeout=30)

        # Saturation: the most each endpoint serves at any of the connection counts. Predict
        # needs more connections than ping to get there: its requests wait for the group commit,
        # and the more arrive meanwhile, the larger (and cheaper per request) the next group.
        pings: dict[int, list[dict[str, float]]] = {c: [] for c in args.connections}
        singles: dict[int, list[dict[str, float]]] = {c: [] for c in args.connections}
        for _ in range(args.repeats):  # alternating, so a slow spell of a shared machine hits both
            for c in args.connections:
                pings[c].append(_wrk(f"{base}/v1/ping", key, seconds, None, c, pid=server.pid))
                singles[c].append(_wrk(f"{base}/v1/dropout/predict", key, seconds, one, c, pid=server.pid))
        ping_at = {c: float(np.median([r["rps"] for r in runs])) for c, runs in pings.items()}
        single_at = {c: float(np.median([r["rps"] for r in runs])) for c, runs in singles.items()}
        ping_peak, single_peak = max(ping_at, key=ping_at.get), max(single_at, key=single_at.get)  # type: ignore[arg-type]
        ping_rps, single_rps = ping_at[ping_peak], single_at[single_peak]
        half = single_rps / 2
        predict_request = _raw_request("POST", "/v1/dropout/predict", key, one.encode())
        lat, lat_at, lat_failed = _steady(port, predict_request, half, seconds)
        lat_ping, _, _ = _steady(port, _raw_request("GET", "/v1/ping", key), half, seconds)

        batch = json.dumps({"students": _students(1000, 5), "task": "dropout"})
        timings = []
        for _ in range(7):
            begun = time.perf_counter()
            response = httpx.post(f"{base}/v1/dropout/predict", content=batch, headers=headers, timeout=120)
            timings.append(time.perf_counter() - begun)
            assert response.status_code == 200, response.text[:300]
        batch_one_client = 1000 / float(np.median(timings))
        batch_saturated = _wrk(
            f"{base}/v1/dropout/predict", key, seconds, batch, connections=8, pid=server.pid
        )

        plain = json.dumps({"students": _students(100, 7), "task": "dropout"}).encode()
        explained = json.dumps({"students": _students(100, 7), "task": "dropout", "explain": True}).encode()

        def median_time(body: bytes) -> float:
            values = []
            for _ in range(9):
                begun = time.perf_counter()
                httpx.post(f"{base}/v1/dropout/predict", content=body, headers=headers, timeout=60)
                values.append(time.perf_counter() - begun)
            return float(np.median(values))

        explain_ms = (median_time(explained) - median_time(plain)) / 100 * 1000
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(f"server: {args.workers} worker process(es) on {os.cpu_count()} CPUs")
    print(f"native trees in use: {native} (every worker, {native_s:.1f} s after the first request)")

    def runs(results: list[dict[str, float]]) -> str:
        shown = ", ".join(f"{r['rps']:.0f}" for r in results)
        cpu = float(np.median([r["cpu_ms"] for r in results]))
        p99 = float(np.median([r["p99_ms"] for r in results]))
        errors = sum(r["errors"] for r in results)
        return f"runs {shown}; server CPU {cpu:.2f} ms a request; wrk p99 {p99:.1f} ms; non-2xx {errors:.0f}"

    for c in args.connections:
        print(f"{c:4d} connections: GET /v1/ping {ping_at[c]:7.0f} req/s ({runs(pings[c])})")
        print(f"{'':4s}              predict     {single_at[c]:7.0f} req/s ({runs(singles[c])})")
        print(f"{'':4s}              ratio       {single_at[c] / ping_at[c]:7.2f}")
    print(f"trivial authenticated GET /v1/ping, saturated: {ping_rps:8.0f} req/s ({ping_peak} connections)")
    print(
        f"single-record predict (stored), saturated:     {single_rps:8.0f} req/s ({single_peak} connections)"
    )
    print(f"  ratio to trivial endpoint:                   {single_rps / ping_rps:8.2f} (target >= 0.50)")
    print(
        f"steady load at {half:.0f} req/s (open loop): p50 {np.percentile(lat, 50) * 1000:.1f} ms, "
        f"p99 {np.percentile(lat, 99) * 1000:.1f} ms, max {lat.max() * 1000:.1f} ms over {len(lat)} "
        f"requests, {lat_failed} failed (target p99 <= 25 ms)"
    )
    late = lat_at[lat > 0.025]
    if len(late):
        windows = sorted({round(float(t), 1) for t in late})
        print(f"  over 25 ms: {len(late)} requests, in {len(windows)} windows of 0.1 s: {windows[:12]}")
    print(
        f"  baseline, GET /v1/ping at the same rate: p50 {np.percentile(lat_ping, 50) * 1000:.1f} ms, "
        f"p99 {np.percentile(lat_ping, 99) * 1000:.1f} ms"
    )
    print(f"batch predict, 1,000 a request, one client: {batch_one_client:8.0f} students/s")
    print(
        f"batch predict, 1,000 a request, saturated (8 connections): "
        f"{batch_saturated['rps'] * 1000:8.0f} students/s, server CPU "
        f"{batch_saturated['cpu_ms']:.0f} us a student, non-2xx {batch_saturated['errors']:.0f} "
        "(target >= 20,000)"
    )
    print(f"explanations add:                    {explain_ms:8.2f} ms per student (target <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
