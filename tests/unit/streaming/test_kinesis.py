"""Kinesis source and sink logic without a network: URL parsing, shard order, lease plans, PutRecords.

The same classes run against a local moto server in ``tests/integration/test_stream_kinesis.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from retain.store.repository import ShardLease
from retain.streaming.base import Sink, StreamError
from retain.streaming.kinesis import (
    MAX_PUT_RECORDS,
    KinesisSink,
    KinesisTarget,
    ShardInfo,
    backoff_seconds,
    partition_key,
    plan_leases,
    put_chunks,
    readable_shards,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------- URL


def test_parse_full_url() -> None:
    t = KinesisTarget.parse(
        "kinesis://events?region=eu-west-1&endpoint=http://127.0.0.1:4566&consumer=scoring&lease_seconds=12"
    )
    assert t == KinesisTarget("events", "eu-west-1", "http://127.0.0.1:4566", "scoring", 12.0)


def test_parse_defaults() -> None:
    t = KinesisTarget.parse("kinesis://events")
    assert (t.stream, t.region, t.endpoint, t.consumer, t.lease_seconds) == (
        "events",
        None,
        None,
        "retain",
        30.0,
    )


@pytest.mark.parametrize(
    "url",
    [
        "redis://events",
        "kinesis://",
        "kinesis://events?shard=1",
        "kinesis://events?lease_seconds=soon",
        "kinesis://events?lease_seconds=0",
    ],
)
def test_parse_rejects(url: str) -> None:
    with pytest.raises(StreamError):
        KinesisTarget.parse(url)


# ---------------------------------------------------------------------------------- shard order


def shard(shard_id: str, *parents: str, closed: bool = False) -> ShardInfo:
    return ShardInfo(shard_id, tuple(parents), closed)


def test_shard_info_from_api() -> None:
    info = ShardInfo.from_api(
        {
            "ShardId": "shardId-3",
            "ParentShardId": "shardId-1",
            "AdjacentParentShardId": "shardId-2",
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
        }
    )
    assert info == ShardInfo("shardId-3", ("shardId-1", "shardId-2"), closed=True)
    assert not ShardInfo.from_api(
        {"ShardId": "s", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
    ).closed


def test_children_wait_for_every_parent() -> None:
    # 0 split into 1 and 2; 1 and 2 later merged into 3; 4 is an unrelated open shard
    shards = [
        shard("0", closed=True),
        shard("1", "0", closed=True),
        shard("2", "0", closed=True),
        shard("3", "1", "2"),
        shard("4"),
    ]
    assert readable_shards(shards, []) == ["0", "4"]
    assert readable_shards(shards, ["0"]) == ["1", "2", "4"]
    assert readable_shards(shards, ["0", "1"]) == ["2", "4"]
    assert readable_shards(shards, ["0", "1", "2"]) == ["3", "4"]


def test_parent_gone_from_the_listing_counts_as_done() -> None:
    assert readable_shards([shard("5", "expired-parent")], []) == ["5"]


# ----------------------------------------------------------------------------------- lease plan


def lease(owner: str | None, seconds: float = 30) -> ShardLease:
    return ShardLease("x", owner, NOW + timedelta(seconds=seconds))


def test_alone_takes_everything() -> None:
    plan = plan_leases(["a", "b", "c", "d"], {}, "me", NOW)
    assert plan.take == ("a", "b", "c", "d") and plan.steal is None and plan.target == 4


def test_fair_share_with_a_live_peer() -> None:
    leases: Mapping[str, ShardLease] = {"a": lease("peer"), "b": lease("peer")}
    plan = plan_leases(["a", "b", "c", "d"], leases, "me", NOW)
    assert plan.take == ("c", "d") and plan.steal is None and plan.target == 2


def test_expired_and_released_leases_are_free() -> None:
    leases = {"a": lease("dead", seconds=-1), "b": lease(None), "c": lease("peer")}
    plan = plan_leases(["a", "b", "c"], leases, "me", NOW)
    assert plan.take == ("a", "b") and plan.target == 2


def test_steal_one_from_the_busiest() -> None:
    leases = {s: lease("greedy") for s in "abcd"}
    plan = plan_leases(list("abcd"), leases, "me", NOW)
    assert plan.take == () and plan.steal == ("d", "greedy") and plan.target == 2


def test_no_steal_when_balanced() -> None:
    leases = {"a": lease("p1"), "b": lease("p1"), "c": lease("p2"), "d": lease("me")}
    plan = plan_leases(list("abcd"), leases, "me", NOW)
    assert plan.take == () and plan.steal is None and plan.target == 2


def test_no_shards_no_plan() -> None:
    assert plan_leases([], {}, "me", NOW).target == 0


# ----------------------------------------------------------------------------------------- sink


def test_partition_key_is_the_key_or_a_hash() -> None:
    assert partition_key(b"x", "a1b2c3") == "a1b2c3"
    hashed = partition_key(b"payload")
    assert hashed == partition_key(b"payload") and hashed != partition_key(b"other") and len(hashed) == 32
    assert len(partition_key(b"x", "k" * 300)) == 64


def test_put_chunks_respect_record_and_byte_limits() -> None:
    entries = [{"Data": b"x" * 10, "PartitionKey": "k"} for _ in range(1201)]
    assert [len(c) for c in put_chunks(entries)] == [500, 500, 201]
    assert [len(c) for c in put_chunks(entries[:10], max_bytes=35)] == [3, 3, 3, 1]
    with pytest.raises(StreamError):
        put_chunks([{"Data": b"x" * 100, "PartitionKey": "k"}], max_bytes=50)


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff_seconds(i, base=0.1, cap=1.0) for i in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


class FlakyKinesis:
    """A fake client whose PutRecords rejects chosen records for the first ``failures`` attempts."""

    def __init__(self, failures: int = 1, every: int = 3) -> None:
        self.failures = failures
        self.every = every
        self.calls: list[list[dict[str, Any]]] = []
        self.accepted: list[tuple[bytes, str]] = []

    def put_records(self, StreamName: str, Records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(list(Records))
        attempt_failing = len(self.calls) <= self.failures
        results: list[dict[str, Any]] = []
        for i, r in enumerate(Records):
            if attempt_failing and i % self.every == 0:
                results.append(
                    {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "slow"}
                )
            else:
                self.accepted.append((r["Data"], r["PartitionKey"]))
                results.append({"SequenceNumber": str(len(self.accepted)), "ShardId": "shardId-0"})
        return {"FailedRecordCount": sum(1 for r in results if "ErrorCode" in r), "Records": results}


def test_sink_retries_only_failed_entries_with_backoff() -> None:
    client = FlakyKinesis(failures=2)
    sleeps: list[float] = []
    sink = KinesisSink(client, "out", sleep=sleeps.append, base_delay=0.1)
    assert isinstance(sink, Sink)
    payloads = [f"p{i}".encode() for i in range(10)]
    keys = [f"key{i}" for i in range(10)]
    sink.send(payloads, keys)
    assert sorted(client.accepted) == sorted(zip(payloads, keys, strict=True))  # each exactly once
    assert [len(c) for c in client.calls] == [10, 4, 2]  # 4 of 10 failed, then 2 of those 4
    assert sleeps == [0.1, 0.2]


def test_sink_chunks_large_batches() -> None:
    client = FlakyKinesis(failures=0)
    KinesisSink(client, "out", sleep=lambda s: None).send([b"x"] * 1200)
    assert [len(c) for c in client.calls] == [MAX_PUT_RECORDS, MAX_PUT_RECORDS, 200]
    assert len({k for _, k in client.accepted}) == 1  # same payload, same hash key


def test_sink_gives_up_after_max_attempts() -> None:
    client = FlakyKinesis(failures=100, every=1)
    sink = KinesisSink(client, "out", max_attempts=3, sleep=lambda s: None)
    with pytest.raises(StreamError, match="3 records still rejected"):
        sink.send([b"a", b"b", b"c"])
    assert len(client.calls) == 3


def test_sink_wraps_client_errors() -> None:
    class Down:
        def put_records(self, **kwargs: Any) -> dict[str, Any]:
            raise ConnectionError("no route")

    with pytest.raises(StreamError, match="PutRecords failed"):
        KinesisSink(Down(), "out").send([b"a"])


def test_sink_key_count_must_match() -> None:
    with pytest.raises(ValueError):
        KinesisSink(FlakyKinesis(), "out").send([b"a", b"b"], ["k"])
