"""KinesisSource against an in-memory Kinesis with AWS's semantics (no network, SQLite store).

The fake ends a closed shard the way AWS does (``NextShardIterator`` is ``None`` once its last
record is read), which the moto-based integration tests cannot show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from retain.store.repository import Store
from retain.streaming.base import Message, Source
from retain.streaming.kinesis import KinesisSource


class FakeClientError(Exception):
    """Shaped like botocore's ``ClientError`` (``response['Error']['Code']``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.response = {"Error": {"Code": code}}


class FakeKinesis:
    """Shards with fixed records; closed shards end with ``NextShardIterator=None``."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, bytes]]] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.closed: set[str] = set()
        self.expire_next: set[str] = set()
        self.get_records_calls = 0
        self._seq = 100

    def add_shard(
        self, shard: str, data: list[bytes], *, parents: tuple[str, ...] = (), closed: bool = False
    ) -> None:
        self.records[shard] = []
        self.parents[shard] = parents
        if closed:
            self.closed.add(shard)
        self.put(shard, data)

    def put(self, shard: str, data: list[bytes]) -> None:
        for d in data:
            self._seq += 1
            self.records[shard].append((str(self._seq), d))

    # the boto3 calls the source makes
    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        shards = []
        for shard, parents in self.parents.items():
            entry: dict[str, Any] = {"ShardId": shard, "SequenceNumberRange": {"StartingSequenceNumber": "0"}}
            if parents:
                entry["ParentShardId"] = parents[0]
            if len(parents) > 1:
                entry["AdjacentParentShardId"] = parents[1]
            if shard in self.closed:
                entry["SequenceNumberRange"]["EndingSequenceNumber"] = "999999"
            shards.append(entry)
        return {"Shards": shards}

    def get_shard_iterator(
        self, StreamName: str, ShardId: str, ShardIteratorType: str, **kw: Any
    ) -> dict[str, Any]:
        index = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            after = int(kw["StartingSequenceNumber"])
            index = sum(1 for seq, _ in self.records[ShardId] if int(seq) <= after)
        return {"ShardIterator": f"{ShardId}|{index}"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        self.get_records_calls += 1
        shard, index_text = ShardIterator.split("|")
        if shard in self.expire_next:
            self.expire_next.discard(shard)
            raise FakeClientError("ExpiredIteratorException")
        index = int(index_text)
        batch = self.records[shard][index : index + Limit]
        end = index + len(batch)
        done = shard in self.closed and end >= len(self.records[shard])
        return {
            "Records": [{"SequenceNumber": seq, "Data": data} for seq, data in batch],
            "NextShardIterator": None if done else f"{shard}|{end}",
            "MillisBehindLatest": 0,
        }


@pytest.fixture
def store() -> Iterator[Store]:
    opened = Store.open()
    yield opened
    opened.close()


def make_source(client: FakeKinesis, store: Store, owner: str = "w1") -> KinesisSource:
    return KinesisSource(
        client, "events", store, owner=owner, lease_seconds=60, idle_poll_seconds=0.0, sleep=lambda s: None
    )


def data(messages: list[Message]) -> list[bytes]:
    return [m.data for m in messages]


def test_is_a_source(store: Store) -> None:
    assert isinstance(make_source(FakeKinesis(), store), Source)


def test_child_waits_until_the_parent_is_read_and_acknowledged(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("parent", [b"p1", b"p2"], closed=True)
    client.add_shard("child", [b"c1"], parents=("parent",))
    src = make_source(client, store)
    first = src.read(10, 0)
    assert data(first) == [b"p1", b"p2"] and src.shards == {"parent"}
    assert src.read(10, 0) == []  # the parent ended but is not acknowledged: the child waits
    assert src.backlog().pending == 2
    src.ack(first)
    checkpoint = store.stream_checkpoint("events", "parent")
    assert checkpoint is not None and checkpoint.finished and checkpoint.sequence == first[-1].position
    assert store.stream_leases("events")["parent"].owner is None  # released once finished
    assert data(src.read(10, 0)) == [b"c1"]
    assert src.shards == {"child"}


def test_merged_child_waits_for_both_parents(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("a", [b"a1"], closed=True)
    client.add_shard("b", [b"b1"] * 3, closed=True)
    client.add_shard("ab", [b"ab1"], parents=("a", "b"))
    src = make_source(client, store)
    got: list[Message] = []
    for _ in range(6):
        batch = src.read(1, 0)  # one record at a time: "a" finishes long before "b"
        assert b"ab1" not in data(batch) or {b"a1", b"b1"} <= set(data(got))
        src.ack(batch)
        got += batch
    assert sorted(data(got)) == [b"a1", b"ab1", b"b1", b"b1", b"b1"]
    assert data(got)[-1] == b"ab1"


def test_restart_resumes_after_the_checkpoint(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("s0", [b"1", b"2", b"3", b"4"])
    first = make_source(client, store)
    batch = first.read(2, 0)
    first.ack(batch)
    first.read(2, 0)  # delivered, never acknowledged
    first.close()
    second = make_source(client, store, owner="w2")
    assert data(second.read(10, 0)) == [b"3", b"4"]


def test_expired_iterator_resumes_after_the_last_delivered(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("s0", [b"1", b"2", b"3"])
    src = make_source(client, store)
    assert data(src.read(1, 0)) == [b"1"]
    client.expire_next.add("s0")
    assert src.read(5, 0) == []  # the expired iterator is dropped ...
    assert data(src.read(5, 0)) == [b"2", b"3"]  # ... and a new one starts after "1"


def test_a_lost_lease_stops_reading_and_checkpointing(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("s0", [b"1", b"2"])
    src = make_source(client, store)
    batch = src.read(1, 0)
    assert store.acquire_lease("events", "s0", "thief", from_owner="w1")
    src.ack(batch)
    assert store.stream_checkpoint("events", "s0") is None
    assert src.shards == frozenset()
    assert src.read(10, 0) == []


def test_read_waits_at_most_block_ms(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("s0", [])
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    src = KinesisSource(
        client, "events", store, owner="w1", clock=lambda: now[0], sleep=sleep, idle_poll_seconds=0.02
    )
    assert src.read(10, 100) == []
    assert 0.1 <= now[0] <= 0.12
    assert client.get_records_calls <= 7  # paced by idle_poll_seconds, not a busy loop


def test_close_releases_leases_and_refuses_reads(store: Store) -> None:
    client = FakeKinesis()
    client.add_shard("s0", [b"1"])
    src = make_source(client, store)
    src.read(1, 0)
    src.close()
    assert store.stream_leases("events")["s0"].owner is None
    with pytest.raises(Exception, match="closed"):
        src.read(1, 0)
