"""The Kinesis source and sink against a local moto server, used through boto3 as against AWS.

The server (``moto.server.ThreadedMotoServer``) listens on a free loopback port for this module;
clients get its address as ``endpoint`` and dummy credentials from the environment. When moto
cannot start, the tests fail under CI (``CI`` set) and skip otherwise.

moto 5 reshards unlike AWS: after a split or merge it keeps routing new records to the closed
parent (the first shard whose hash range matches) and copies old records into the children. The
server here is patched (:func:`reshard_like_aws`) so that, as on AWS, closed shards keep their
records and take no new ones, and children receive every record written after the reshard.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from retain.data.spec import load_spec
from retain.store.db import make_engine
from retain.store.repository import Store
from retain.streaming.base import Message
from retain.streaming.kinesis import KinesisSink, KinesisSource, KinesisTarget, make_client
from retain.streaming.replay import events, load_records, replay

pytestmark = pytest.mark.integration

REGION = "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reshard_like_aws(mp: pytest.MonkeyPatch) -> None:
    """Patch moto's in-process Kinesis model to route and keep records across reshards as AWS does."""
    from collections import OrderedDict

    from moto.kinesis import models

    route, split, merge = (
        models.Stream.get_shard_for_key,
        models.Stream.split_shard,
        models.Stream.merge_shards,
    )

    def get_shard_for_key(self: Any, partition_key: str, explicit_hash_key: str) -> Any:
        shard = route(self, partition_key, explicit_hash_key)  # also validates the key
        if shard is None or shard.is_open:
            return shard
        key = (
            int(explicit_hash_key)
            if explicit_hash_key
            else int(hashlib.md5(partition_key.encode("utf-8")).hexdigest(), 16)
        )
        return next(
            (s for s in self.shards.values() if s.is_open and s.starting_hash <= key <= s.ending_hash), None
        )

    def split_shard(self: Any, shard_to_split: str, new_starting_hash_key: str) -> None:
        parent = self.shards[shard_to_split]
        kept = parent.records
        split(self, shard_to_split, new_starting_hash_key)
        for shard in self.shards.values():
            if shard.parent == shard_to_split:
                shard.records = OrderedDict()
        parent.records = kept

    def merge_shards(self: Any, shard_to_merge: str, adjacent_shard_to_merge: str) -> None:
        merge(self, shard_to_merge, adjacent_shard_to_merge)
        for shard in self.shards.values():
            if shard.parent == shard_to_merge and shard.adjacent_parent == adjacent_shard_to_merge:
                shard.records = OrderedDict()

    mp.setattr(models.Stream, "get_shard_for_key", get_shard_for_key)
    mp.setattr(models.Stream, "split_shard", split_shard)
    mp.setattr(models.Stream, "merge_shards", merge_shards)


def _unavailable(reason: str) -> NoReturn:
    """Fail under CI (``CI`` set), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free loopback port, with dummy AWS credentials in the environment."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        _unavailable(f"moto server cannot be imported: {exc}")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS_ENV.items():
            mp.setenv(name, value)
        reshard_like_aws(mp)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
        try:
            server.start()
            host, port = server.get_host_and_port()
        except Exception as exc:
            _unavailable(f"moto server cannot start: {exc}")
        try:
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The endpoint, with the credentials set for this test too (the per-test env is reset)."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint


@pytest.fixture
def store() -> Iterator[Store]:
    """The checkpoint and lease store (SQLite under the test's RETAIN_HOME)."""
    opened = Store.open()
    yield opened
    opened.close()


def stream_url(endpoint: str, name: str, **params: str | float) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"region": REGION, "endpoint": endpoint, **params}.items())
    return f"kinesis://{name}?{query}"


def new_stream(endpoint: str, shards: int) -> tuple[str, Any]:
    """Create a stream with a unique name; returns it and a boto3 client."""
    name = f"events-{uuid.uuid4().hex[:8]}"
    client = make_client(KinesisTarget(name, REGION, endpoint))
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return name, client


def put(client: Any, stream: str, events: list[dict[str, Any]]) -> None:
    """Write events keyed by their ``key`` field (as a producer would)."""
    sink = KinesisSink(client, stream)
    sink.send([json.dumps(e).encode() for e in events], [str(e["key"]) for e in events])


def drain(
    sources: list[KinesisSource],
    until: Callable[[list[Message]], bool],
    *,
    timeout: float = 30.0,
    ack: bool = True,
) -> list[Message]:
    """Read (and ack) round-robin from ``sources`` until ``until(received)`` or the timeout."""
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while not until(received):
        assert time.monotonic() < deadline, f"timed out with {len(received)} messages"
        for source in sources:
            batch = source.read(250, 50)
            if ack:
                source.ack(batch)
            received.extend(batch)
    return received


def events_of(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m.data) for m in messages]


def source(url: str, store: Store, **kwargs: Any) -> KinesisSource:
    target = KinesisTarget.parse(url)
    return KinesisSource(
        make_client(target),
        target.stream,
        store,
        lease_seconds=target.lease_seconds,
        idle_poll_seconds=0.05,
        **kwargs,
    )


# ----------------------------------------------------------------------------------------- tests


def test_reads_every_shard_across_list_pages(aws_env: str, store: Store) -> None:
    name, client = new_stream(aws_env, shards=5)
    put(client, name, [{"key": f"k{i % 41}", "n": i} for i in range(600)])
    src = source(stream_url(aws_env, name), store, shard_page_size=2)  # three ListShards pages
    try:
        got = drain([src], lambda r: len(r) >= 600)
        assert sorted(e["n"] for e in events_of(got)) == list(range(600))
        assert len(src.shards) == 5
        assert {m.partition for m in got} == src.shards
        assert src.backlog().pending == 0
    finally:
        src.close()


def test_resume_after_restart_reads_nothing_acked_again(aws_env: str, store: Store) -> None:
    name, client = new_stream(aws_env, shards=3)
    put(client, name, [{"key": f"k{i % 17}", "n": i} for i in range(300)])
    url = stream_url(aws_env, name, lease_seconds=1.5)
    first = source(url, store)
    acked = drain([first], lambda r: len(r) >= 120)
    # a crash: no close(), so the leases stay until they expire; delivered-but-unacked records
    # come again, acked ones never
    unacked = drain([first], lambda r: len(r) > 0, ack=False)
    put(client, name, [{"key": f"k{i % 17}", "n": i} for i in range(300, 400)])
    second = source(url, store)
    try:
        rest = drain([second], lambda r: len(r) >= 400 - len(acked), timeout=20)
        time.sleep(0.3)
        rest += second.read(1000, 300)
        seen_first = {e["n"] for e in events_of(acked)}
        seen_second = [e["n"] for e in events_of(rest)]
        assert seen_first.isdisjoint(seen_second)
        assert len(seen_second) == len(set(seen_second)) == 400 - len(acked)
        assert {e["n"] for e in events_of(unacked)} <= set(seen_second)
        assert seen_first | set(seen_second) == set(range(400))
    finally:
        second.close()


def test_split_mid_stream_keeps_order_per_key(aws_env: str, store: Store) -> None:
    name, client = new_stream(aws_env, shards=1)
    keys = [f"student-{i}" for i in range(12)]
    put(client, name, [{"key": k, "n": n} for n in range(20) for k in keys])
    src = source(stream_url(aws_env, name, lease_seconds=1.5), store)
    try:
        got = drain([src], lambda r: len(r) >= 100)
        (parent,) = [s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]]
        description = client.list_shards(StreamName=name)["Shards"][0]["HashKeyRange"]
        middle = (int(description["StartingHashKey"]) + int(description["EndingHashKey"])) // 2
        client.split_shard(StreamName=name, ShardToSplit=parent, NewStartingHashKey=str(middle))
        put(client, name, [{"key": k, "n": n} for n in range(20, 40) for k in keys])
        got += drain([src], lambda r: len(got) + len(r) >= 480, timeout=30)
        events = events_of(got)
        assert len(events) == 480
        for k in keys:
            assert [e["n"] for e in events if e["key"] == k] == list(range(40)), k
        children = {m.partition for m in got} - {parent}
        assert len(children) == 2
        checkpoint = store.stream_checkpoint(name, parent)
        assert checkpoint is not None and checkpoint.finished
    finally:
        src.close()


def test_merge_reads_both_parents_first(aws_env: str, store: Store) -> None:
    name, client = new_stream(aws_env, shards=2)
    keys = [f"student-{i}" for i in range(10)]
    put(client, name, [{"key": k, "n": n} for n in range(10) for k in keys])
    first, second = sorted(s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"])
    client.merge_shards(StreamName=name, ShardToMerge=first, AdjacentShardToMerge=second)
    put(client, name, [{"key": k, "n": n} for n in range(10, 20) for k in keys])
    src = source(stream_url(aws_env, name, lease_seconds=1.5), store)
    try:
        events = events_of(drain([src], lambda r: len(r) >= 200))
        for k in keys:
            assert [e["n"] for e in events if e["key"] == k] == list(range(20)), k
    finally:
        src.close()


def test_two_workers_split_the_shards(aws_env: str, store: Store) -> None:
    name, client = new_stream(aws_env, shards=4)
    url = stream_url(aws_env, name, lease_seconds=1.5)
    a = source(url, store, owner="worker-a")
    a.read(1, 0)  # alone: takes every shard
    assert len(a.shards) == 4
    b = source(url, store, owner="worker-b")
    try:
        put(client, name, [{"key": f"k{i % 50}", "n": i} for i in range(400)])
        got = drain(
            [a, b],
            lambda r: len(r) >= 400 and len(a.shards) == len(b.shards) == 2,
            timeout=30,
        )
        assert a.shards.isdisjoint(b.shards) and len(a.shards | b.shards) == 4
        assert {e["n"] for e in events_of(got)} == set(range(400))
        leases = store.stream_leases(name)
        assert {s for s, lease in leases.items() if lease.owner == "worker-b"} == b.shards
        # a worker that leaves hands its shards over at once
        b.close()
        drain([a], lambda r: len(a.shards) == 4, timeout=10)
    finally:
        a.close()
        b.close()


def test_sink_writes_every_record_in_chunks(aws_env: str) -> None:
    name, client = new_stream(aws_env, shards=2)
    sink = KinesisSink.from_url(stream_url(aws_env, name))
    sink.send([f"out-{i}".encode() for i in range(1100)], [f"key-{i % 9}" for i in range(1100)])
    sink.send([b"no-key"])
    seen: list[bytes] = []
    for s in client.list_shards(StreamName=name)["Shards"]:
        it = client.get_shard_iterator(
            StreamName=name, ShardId=s["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )
        seen += [
            r["Data"] for r in client.get_records(ShardIterator=it["ShardIterator"], Limit=10_000)["Records"]
        ]
    assert sorted(seen) == sorted([f"out-{i}".encode() for i in range(1100)] + [b"no-key"])


# ------------------------------------------------------------------------- crash and restart


@pytest.fixture(scope="module")
def trained_home(copy_trained_home: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A RETAIN_HOME whose registry has a champion ``dropout.dropout.semester_1`` (800 synthetic rows)."""
    home = tmp_path_factory.mktemp("kinesis-home")
    return copy_trained_home(home, ("dropout", "dropout", "semester_1", 800), data_dir=True)


def retain_command() -> list[str]:
    """The ``retain`` console script of this environment."""
    script = Path(sys.executable).with_name("retain")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from retain.cli import app; app()"]


def prediction_counts(db: Path) -> tuple[int, int]:
    """Rows and distinct event ids in the predictions table (0, 0 before the table exists)."""
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT count(*), count(DISTINCT event_id) FROM predictions")).one()
            return int(row[0]), int(row[1])
    except OperationalError:
        return 0, 0
    finally:
        engine.dispose()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def test_worker_killed_midway_stores_every_event_exactly_once(
    aws_env: str, trained_home: Path, tmp_path: Path
) -> None:
    total = 20_000
    spec = load_spec("dropout")
    records = load_records(spec, count=2_000, seed=7, task="dropout", stage="semester_1")
    source_name, client = new_stream(aws_env, shards=4)
    output_name, _ = new_stream(aws_env, shards=2)
    replay(
        events(spec, records, count=total, seed=7, task="dropout", stage="semester_1"),
        KinesisSink(client, source_name),
        rate=0,
    )
    db = tmp_path / "crash.db"
    env = {
        **os.environ,
        **AWS_ENV,
        "RETAIN_HOME": str(trained_home),
        "RETAIN_DATABASE_URL": f"sqlite:///{db}",
        "RETAIN_STREAM_BATCH_SIZE": "500",
    }
    command = [
        *retain_command(),
        "stream",
        "worker",
        "--source",
        stream_url(aws_env, source_name, lease_seconds=2),
        "--sink",
        stream_url(aws_env, output_name),
        "--dead-letter",
        "memory://dead-letters",
    ]
    log = tmp_path / "worker.log"

    def start() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)

    first = start()
    try:
        wait_for(lambda: prediction_counts(db)[0] >= total // 4, 90, "the first predictions", log)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    at_kill = prediction_counts(db)[0]
    assert at_kill < total, "the worker finished before it could be killed"

    second = start()  # a new owner: it takes the dead worker's shards once their leases expire
    try:
        wait_for(lambda: prediction_counts(db)[0] >= total, 120, "every prediction", log)
        time.sleep(1.0)  # anything still in flight would show up as an extra row now
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0, log.read_text()[-3000:]
    rows, distinct = prediction_counts(db)
    assert rows == distinct == total
    checkpoints = Store(make_engine(f"sqlite:///{db}")).stream_checkpoints(source_name)
    assert len(checkpoints) == 4
