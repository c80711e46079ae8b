"""AWS Kinesis Data Streams as a stream source and sink (boto3).

URL: ``kinesis://STREAM?region=R&endpoint=URL&consumer=NAME&lease_seconds=N`` (all query
parameters optional; ``endpoint`` points at a local emulator such as moto, ``consumer`` names the
application whose checkpoints these are, default ``retain``). Credentials come from boto3's usual
chain (environment, profile, instance role).

Reading (:class:`KinesisSource`)
    Every shard of the stream is read (``ListShards``, paginated), each with its own shard
    iterator. ``ack`` stores, per shard, the highest acknowledged sequence number in the Retain
    store; a restart resumes ``AFTER_SEQUENCE_NUMBER`` of it, or at ``TRIM_HORIZON`` without one.
    A closed shard (after a split or merge) that has been read to its end and fully acknowledged
    is checkpointed as *finished*; a child shard is read only when all its parents are finished,
    so records of one partition key keep their order across resharding.

Scale-out
    Several workers share a stream through leases in the store: one owner per shard, with an
    expiry that the owner renews while it reads. A worker takes free or expired shards up to its
    fair share (``ceil(readable shards / live workers)``) and, when it holds fewer than that while
    another holds more, takes one shard per refresh from the busiest worker. Checkpoints are fenced
    by the lease (written only while the writer still owns the shard), so a worker that lost a
    shard cannot move its checkpoint; the new owner resumes from the last checkpoint and may see a
    few records again, which the idempotent prediction store absorbs.

Writing (:class:`KinesisSink`)
    ``PutRecords`` in chunks of at most 500 records (and 5 MiB); entries that fail
    (``FailedRecordCount``) are retried alone with exponential backoff. The partition key is the
    caller's key (a pseudonymous student key) or a hash of the payload.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from retain.streaming.base import Backlog, Message, StreamError

if TYPE_CHECKING:
    from retain.store.repository import ShardLease, Store

logger = logging.getLogger(__name__)

SCHEME = "kinesis"
MAX_PUT_RECORDS = 500
"""Most records in one ``PutRecords`` call."""
MAX_PUT_BYTES = 5 * 1024 * 1024
"""Most bytes (data and partition keys) in one ``PutRecords`` call."""
MAX_GET_RECORDS = 10_000
"""Most records one ``GetRecords`` call may return."""
MAX_PARTITION_KEY = 256
DEFAULT_CONSUMER = "retain"
DEFAULT_LEASE_SECONDS = 30.0


# ------------------------------------------------------------------------------------ pure logic


@dataclass(frozen=True)
class KinesisTarget:
    """A parsed ``kinesis://`` URL.

    Parameters
    ----------
    stream : str
        Stream name.
    region : str, optional
        AWS region (default: boto3's, e.g. ``AWS_DEFAULT_REGION``).
    endpoint : str, optional
        Endpoint URL (a local emulator); default: AWS.
    consumer : str, default "retain"
        Application name under which checkpoints and leases are kept.
    lease_seconds : float, default 30
        How long a shard lease lasts without renewal (renewed every third of it).
    """

    stream: str
    region: str | None = None
    endpoint: str | None = None
    consumer: str = DEFAULT_CONSUMER
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    @classmethod
    def parse(cls, url: str) -> KinesisTarget:
        """Parse ``kinesis://STREAM?region=R&endpoint=URL&consumer=NAME&lease_seconds=N``.

        Raises
        ------
        StreamError
            Wrong scheme, no stream name, an unknown parameter or a bad lease time.
        """
        parts = urlsplit(url)
        if parts.scheme != SCHEME:
            raise StreamError(f"not a kinesis:// URL: {parts.scheme}://...")
        stream = (parts.netloc + parts.path).strip("/")
        if not stream:
            raise StreamError("kinesis:// URL names no stream (kinesis://STREAM?region=...)")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"region", "endpoint", "consumer", "lease_seconds"}
        if unknown:
            raise StreamError(f"unknown kinesis:// parameter(s): {', '.join(sorted(unknown))}")
        try:
            lease = float(query.get("lease_seconds", DEFAULT_LEASE_SECONDS))
        except ValueError as exc:
            raise StreamError(f"lease_seconds must be a number, got {query['lease_seconds']!r}") from exc
        if not math.isfinite(lease) or lease <= 0:
            raise StreamError("lease_seconds must be positive")
        return cls(
            stream=stream,
            region=query.get("region") or None,
            endpoint=query.get("endpoint") or None,
            consumer=query.get("consumer") or DEFAULT_CONSUMER,
            lease_seconds=lease,
        )


@dataclass(frozen=True)
class ShardInfo:
    """What ``ListShards`` says about one shard.

    ``closed`` means the shard has an ending sequence number: it was split or merged and takes
    no new records.
    """

    shard_id: str
    parents: tuple[str, ...] = ()
    closed: bool = False

    @classmethod
    def from_api(cls, shard: Mapping[str, Any]) -> ShardInfo:
        """From one entry of a ``ListShards`` response."""
        parents = tuple(p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p)
        ending = shard.get("SequenceNumberRange", {}).get("EndingSequenceNumber")
        return cls(shard_id=str(shard["ShardId"]), parents=parents, closed=ending is not None)


def readable_shards(shards: Iterable[ShardInfo], finished: Iterable[str]) -> list[str]:
    """Shards that may be read now: not finished, and every parent finished (or gone).

    A parent that ``ListShards`` no longer reports has aged out of the stream's retention, so
    nothing of it is left to read first.

    Parameters
    ----------
    shards : iterable of ShardInfo
        The stream's shards.
    finished : iterable of str
        Shards checkpointed as read to their end.

    Returns
    -------
    list of str
        Shard ids in ``ListShards`` order.
    """
    listed = list(shards)
    known = {s.shard_id for s in listed}
    done = set(finished)
    return [
        s.shard_id
        for s in listed
        if s.shard_id not in done and all(p in done or p not in known for p in s.parents)
    ]


@dataclass(frozen=True)
class LeasePlan:
    """What a worker should do with leases on this refresh.

    ``take``: free or expired shards to acquire; ``steal``: one ``(shard, from_owner)`` taken
    from a worker that holds more than its share; ``target``: this worker's fair share.
    """

    take: tuple[str, ...] = ()
    steal: tuple[str, str] | None = None
    target: int = 0


def plan_leases(
    readable: Sequence[str], leases: Mapping[str, ShardLease], me: str, now: datetime
) -> LeasePlan:
    """Decide which shards ``me`` should acquire for a fair share of ``readable``.

    Live workers are the owners of unexpired leases on readable shards, plus ``me``. The fair share
    is ``ceil(len(readable) / live workers)``. A worker first takes free or expired shards; if it
    still has fewer than its share while another worker holds more, it steals one shard from the
    busiest (one per refresh, so ownership settles without thrashing).

    Parameters
    ----------
    readable : sequence of str
        Shards that may be read now (:func:`readable_shards`).
    leases : mapping of str to ShardLease
        Stored leases by shard id.
    me : str
        This worker's owner id.
    now : datetime
        The current time (timezone-aware).

    Returns
    -------
    LeasePlan
    """
    held: dict[str, list[str]] = {}
    free: list[str] = []
    for shard in readable:
        lease = leases.get(shard)
        if lease is not None and lease.owner is not None and lease.live(now):
            held.setdefault(lease.owner, []).append(shard)
        else:
            free.append(shard)
    workers = set(held) | {me}
    target = math.ceil(len(readable) / len(workers)) if readable else 0
    mine = len(held.get(me, []))
    take = tuple(free[: max(0, target - mine)])
    steal = None
    if mine + len(take) < target:
        busiest = max((o for o in held if o != me), key=lambda o: (len(held[o]), o), default=None)
        if busiest is not None and len(held[busiest]) > target:
            steal = (sorted(held[busiest])[-1], busiest)
    return LeasePlan(take=take, steal=steal, target=target)


def partition_key(payload: bytes, key: str | None = None) -> str:
    """The partition key of one record: ``key`` when given, else a hash of the payload.

    Keys must already be pseudonymous (e.g. the store's ``student_key``); one longer than Kinesis
    allows (256 characters) is hashed.
    """
    if key:
        return key if len(key) <= MAX_PARTITION_KEY else hashlib.sha256(key.encode("utf-8")).hexdigest()
    return hashlib.sha256(payload).hexdigest()[:32]


def put_chunks(
    entries: Sequence[Mapping[str, Any]],
    *,
    max_records: int = MAX_PUT_RECORDS,
    max_bytes: int = MAX_PUT_BYTES,
) -> list[list[Mapping[str, Any]]]:
    """Split ``PutRecords`` entries into calls of at most ``max_records`` records and ``max_bytes``.

    Raises
    ------
    StreamError
        One entry alone is larger than ``max_bytes``.
    """
    chunks: list[list[Mapping[str, Any]]] = []
    current: list[Mapping[str, Any]] = []
    size = 0
    for entry in entries:
        n = len(entry["Data"]) + len(str(entry["PartitionKey"]).encode("utf-8"))
        if n > max_bytes:
            raise StreamError(f"a record of {n} bytes is larger than one PutRecords call allows")
        if current and (len(current) >= max_records or size + n > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(entry)
        size += n
    if current:
        chunks.append(current)
    return chunks


def backoff_seconds(attempt: int, *, base: float = 0.1, cap: float = 5.0) -> float:
    """Exponential backoff before retry ``attempt`` (0-based): ``base * 2**attempt``, at most ``cap``."""
    return float(min(cap, base * (2**attempt)))


def _sequence_value(sequence: str) -> int:
    return int(sequence)


# -------------------------------------------------------------------------------------------- I/O


def make_client(target: KinesisTarget) -> Any:
    """A boto3 Kinesis client for ``target`` (adaptive retries, bounded timeouts)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - boto3 is a dependency
        raise StreamError("kinesis:// needs boto3 (pip install boto3)") from exc
    config = Config(
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client("kinesis", region_name=target.region, endpoint_url=target.endpoint, config=config)


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def default_owner() -> str:
    """A worker id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class _ShardState:
    """What one owned shard's reader knows between calls."""

    shard_id: str
    iterator: str | None = None
    delivered: str | None = None
    acked: str | None = None
    ended: bool = False
    next_poll: float = 0.0
    pending: int = 0


class KinesisSource:
    """Read every shard of a Kinesis stream, with checkpoints and leases in the Retain store.

    Parameters
    ----------
    client : botocore client
        A Kinesis client (:func:`make_client`).
    stream : str
        Stream name.
    store : Store
        Where checkpoints and leases live.
    consumer : str, default "retain"
        Application name (its own checkpoints; two applications each read everything).
    owner : str, optional
        This worker's id (default: :func:`default_owner`).
    lease_seconds : float, default 30
        Lease time; leases are renewed and shards re-listed every third of it.
    idle_poll_seconds : float, default 0.25
        Pause before polling a shard again after it returned nothing (Kinesis allows five
        ``GetRecords`` per shard and second).
    own_store : bool, default False
        Close ``store`` in :meth:`close`.
    shard_page_size : int, optional
        ``MaxResults`` of each ``ListShards`` page (default: the service's).
    clock, sleep : callable, optional
        Monotonic time and waiting (tests pin them).

    Notes
    -----
    ``read`` and ``ack`` may be called from different threads (the worker reads ahead in its own
    thread); a lock guards the shard state and is never held while ``read`` waits.
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        store: Store,
        *,
        consumer: str = DEFAULT_CONSUMER,
        owner: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        idle_poll_seconds: float = 0.25,
        own_store: bool = False,
        shard_page_size: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.stream = stream
        self.store = store
        self.consumer = consumer
        self.owner = owner or default_owner()
        self.lease_seconds = lease_seconds
        self.refresh_seconds = lease_seconds / 3
        self.idle_poll_seconds = idle_poll_seconds
        self._own_store = own_store
        self._page_size = shard_page_size
        self._name_on_every_page = False
        self._clock = clock
        self._sleep = sleep
        self._states: dict[str, _ShardState] = {}
        self._shards: dict[str, ShardInfo] = {}
        self._finished: set[str] = set()
        self._next_refresh = 0.0
        self._rotation = 0
        self._closed = False
        self._lock = threading.RLock()

    @classmethod
    def from_url(cls, url: str, *, store: Store | None = None) -> KinesisSource:
        """A source for ``kinesis://STREAM?...`` (see the module docstring).

        Parameters
        ----------
        url : str
            The source URL.
        store : Store, optional
            Checkpoint and lease store (default: the configured store, opened here and closed by
            :meth:`close`).
        """
        target = KinesisTarget.parse(url)
        own = store is None
        if store is None:
            from retain.store.repository import Store

            store = Store.from_settings()
        return cls(
            make_client(target),
            target.stream,
            store,
            consumer=target.consumer,
            lease_seconds=target.lease_seconds,
            own_store=own,
        )

    # ------------------------------------------------------------------------- protocol

    @property
    def shards(self) -> frozenset[str]:
        """The shards this worker currently owns."""
        with self._lock:
            return frozenset(self._states)

    def read(self, max_count: int, block_ms: int) -> list[Message]:
        """Up to ``max_count`` records from the owned shards, waiting at most ``block_ms``."""
        if self._closed:
            raise StreamError("source is closed")
        deadline = self._clock() + max(0, block_ms) / 1000
        while True:
            with self._lock:  # never held while waiting, so ack() from another thread goes ahead
                if self._closed:
                    return []
                self._maybe_refresh()
                out = self._poll_round(max(1, max_count))
                if out:
                    return out
                now = self._clock()
                if now >= deadline:
                    return []
                wake = min(
                    [deadline, self._next_refresh]
                    + [s.next_poll for s in self._states.values() if not s.ended]
                )
            self._sleep(min(max(wake - now, 0.01), 0.5))

    def ack(self, messages: Sequence[Message]) -> None:
        """Checkpoint the highest sequence number per shard among ``messages``.

        A shard whose lease was lost meanwhile is dropped (its new owner resumes from the last
        checkpoint); a closed shard whose every delivered record is now acknowledged is
        checkpointed as finished and its lease released, which lets its children be read.
        """
        with self._lock:
            self._ack(messages)

    def _ack(self, messages: Sequence[Message]) -> None:
        highest: dict[str, str] = {}
        counts: dict[str, int] = {}
        for m in messages:
            counts[m.partition] = counts.get(m.partition, 0) + 1
            current = highest.get(m.partition)
            if current is None or _sequence_value(m.position) > _sequence_value(current):
                highest[m.partition] = m.position
        for shard, sequence in highest.items():
            ok = self.store.save_checkpoint(
                self.stream, shard, sequence, consumer=self.consumer, owner=self.owner
            )
            state = self._states.get(shard)
            if not ok:
                if state is not None:
                    logger.warning(
                        "lost the lease on %s of %s; another worker resumes it", shard, self.stream
                    )
                    self._drop(shard)
                continue
            if state is not None:
                state.pending = max(0, state.pending - counts[shard])
                if state.acked is None or _sequence_value(sequence) > _sequence_value(state.acked):
                    state.acked = sequence
                self._maybe_finish(state)
        self._maybe_refresh()

    def backlog(self) -> Backlog:
        """Records delivered by this worker and not yet acknowledged (the unread count is unknown)."""
        with self._lock:
            return Backlog(unread=None, pending=sum(s.pending for s in self._states.values()))

    def close(self) -> None:
        """Release this worker's leases (unacknowledged records are read again by the next owner)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for shard in list(self._states):
                try:
                    self.store.release_lease(self.stream, shard, self.owner, consumer=self.consumer)
                except Exception:  # closing must not fail on a store that went away
                    logger.warning("could not release the lease on %s", shard, exc_info=True)
            self._states.clear()
            if self._own_store:
                self.store.close()

    # --------------------------------------------------------------------------- reading

    def _poll_round(self, max_count: int) -> list[Message]:
        """One pass over the owned shards, starting at a rotating one so none starves."""
        out: list[Message] = []
        states = [self._states[s] for s in sorted(self._states)]
        if not states:
            return out
        start = self._rotation % len(states)
        self._rotation += 1
        for state in states[start:] + states[:start]:
            if len(out) >= max_count:
                break
            if state.ended or self._clock() < state.next_poll or state.shard_id not in self._states:
                continue
            out.extend(self._poll(state, max_count - len(out)))
        return out

    def _start_iterator(self, state: _ShardState) -> str:
        """An iterator after the last delivered record, else after the checkpoint, else at the start."""
        if state.delivered is not None:
            after: str | None = state.delivered
        else:
            checkpoint = self.store.stream_checkpoint(self.stream, state.shard_id, consumer=self.consumer)
            after = checkpoint.sequence if checkpoint is not None else None
            state.delivered = state.acked = after
        args: dict[str, Any] = {"StreamName": self.stream, "ShardId": state.shard_id}
        if after is not None:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            args["ShardIteratorType"] = "TRIM_HORIZON"
        return str(self.client.get_shard_iterator(**args)["ShardIterator"])

    def _poll(self, state: _ShardState, limit: int) -> list[Message]:
        """One ``GetRecords`` on one shard."""
        try:
            if state.iterator is None:
                state.iterator = self._start_iterator(state)
            response = self.client.get_records(
                ShardIterator=state.iterator, Limit=min(limit, MAX_GET_RECORDS)
            )
        except Exception as exc:
            code = _error_code(exc)
            if code == "ExpiredIteratorException":
                state.iterator = None
                return []
            if code in {"ProvisionedThroughputExceededException", "KMSThrottlingException"}:
                state.next_poll = self._clock() + 1.0
                return []
            if code == "ResourceNotFoundException":
                logger.warning("shard %s of %s is gone; dropping it", state.shard_id, self.stream)
                self._drop(state.shard_id)
                self._next_refresh = 0.0
                return []
            raise StreamError(f"GetRecords failed on {self.stream}/{state.shard_id}: {code or exc}") from exc
        records = response.get("Records", [])
        messages = [
            Message(position=str(r["SequenceNumber"]), data=bytes(r["Data"]), partition=state.shard_id)
            for r in records
        ]
        if messages:
            state.delivered = messages[-1].position
            state.pending += len(messages)
        state.iterator = response.get("NextShardIterator")
        info = self._shards.get(state.shard_id)
        at_end = state.iterator is None or (
            not records and info is not None and info.closed and response.get("MillisBehindLatest", 1) == 0
        )
        if at_end:
            state.ended = True
            self._maybe_finish(state)
        elif not records:
            state.next_poll = self._clock() + self.idle_poll_seconds
        return messages

    def _maybe_finish(self, state: _ShardState) -> None:
        """A closed shard read to its end and fully acknowledged: checkpoint it as finished."""
        if not state.ended or state.acked != state.delivered:
            return
        if self.store.save_checkpoint(
            self.stream,
            state.shard_id,
            state.delivered,
            finished=True,
            consumer=self.consumer,
            owner=self.owner,
        ):
            logger.info("shard %s of %s finished", state.shard_id, self.stream)
            self._finished.add(state.shard_id)
            self.store.release_lease(self.stream, state.shard_id, self.owner, consumer=self.consumer)
        self._drop(state.shard_id)
        self._next_refresh = 0.0  # its children may be readable now

    def _drop(self, shard: str) -> None:
        self._states.pop(shard, None)

    # --------------------------------------------------------------------------- leases

    def _list_shards(self) -> list[ShardInfo]:
        """Every shard of the stream, following ``NextToken`` pages.

        AWS refuses ``StreamName`` next to ``NextToken``; some local emulators (moto) need it on
        every page. A continuation page that fails without the name is asked once more with it,
        and the source keeps asking that way.
        """
        shards: list[ShardInfo] = []
        size = {"MaxResults": self._page_size} if self._page_size is not None else {}
        args: dict[str, Any] = {"StreamName": self.stream, **size}
        while True:
            try:
                response = self.client.list_shards(**args)
            except Exception as exc:
                if "NextToken" in args and "StreamName" not in args and _error_code(exc):
                    self._name_on_every_page = True
                    args["StreamName"] = self.stream
                    continue
                raise StreamError(f"ListShards failed on {self.stream}: {_error_code(exc) or exc}") from exc
            shards.extend(ShardInfo.from_api(s) for s in response.get("Shards", []))
            token = response.get("NextToken")
            if not token:
                return shards
            args = {"NextToken": token, **size}
            if self._name_on_every_page:
                args["StreamName"] = self.stream

    def _maybe_refresh(self) -> None:
        if self._clock() >= self._next_refresh:
            self._refresh()

    def refresh(self) -> None:
        """List shards, renew owned leases and acquire this worker's share of the rest."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        self._next_refresh = self._clock() + self.refresh_seconds
        listed = self._list_shards()
        self._shards = {s.shard_id: s for s in listed}
        checkpoints = self.store.stream_checkpoints(self.stream, consumer=self.consumer)
        self._finished |= {shard for shard, cp in checkpoints.items() if cp.finished}
        for shard in list(self._states):
            if shard in self._finished:
                self._drop(shard)
            elif not self.store.renew_lease(
                self.stream, shard, self.owner, consumer=self.consumer, seconds=self.lease_seconds
            ):
                logger.warning("lost the lease on %s of %s", shard, self.stream)
                self._drop(shard)
        readable = readable_shards(listed, self._finished)
        now = datetime.now(UTC)
        plan = plan_leases(
            readable, self.store.stream_leases(self.stream, consumer=self.consumer), self.owner, now
        )
        wanted: list[tuple[str, str | None]] = [(s, None) for s in plan.take]
        if plan.steal is not None:
            wanted.append(plan.steal)
        for shard, from_owner in wanted:
            if shard in self._states:
                continue
            if self.store.acquire_lease(
                self.stream,
                shard,
                self.owner,
                consumer=self.consumer,
                seconds=self.lease_seconds,
                from_owner=from_owner,
                now=now,
            ):
                logger.info(
                    "took shard %s of %s%s", shard, self.stream, f" from {from_owner}" if from_owner else ""
                )
                self._states[shard] = _ShardState(shard)


class KinesisSink:
    """Write payloads to a Kinesis stream with ``PutRecords``.

    Parameters
    ----------
    client : botocore client
        A Kinesis client (:func:`make_client`).
    stream : str
        Stream name.
    max_attempts : int, default 8
        ``PutRecords`` calls per chunk before the still-failing entries raise.
    base_delay, max_delay : float
        Exponential backoff between attempts, in seconds.
    """

    def __init__(
        self,
        client: Any,
        stream: str,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.stream = stream
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep

    @classmethod
    def from_url(cls, url: str) -> KinesisSink:
        """A sink for ``kinesis://STREAM?region=R&endpoint=URL``."""
        target = KinesisTarget.parse(url)
        return cls(make_client(target), target.stream)

    def send(self, payloads: Sequence[bytes], keys: Sequence[str] | None = None) -> None:
        """Write ``payloads`` (``keys``: pseudonymous partition keys, one per payload).

        Raises
        ------
        StreamError
            Records still rejected after ``max_attempts``, or the stream cannot be reached.
        """
        if keys is not None and len(keys) != len(payloads):
            raise ValueError(f"{len(keys)} keys for {len(payloads)} payloads")
        entries = [
            {"Data": bytes(p), "PartitionKey": partition_key(p, keys[i] if keys is not None else None)}
            for i, p in enumerate(payloads)
        ]
        for chunk in put_chunks(entries):
            self._put(chunk)

    def _put(self, entries: Sequence[Mapping[str, Any]]) -> None:
        pending = list(entries)
        codes: dict[str, int] = {}
        for attempt in range(self.max_attempts):
            try:
                response = self.client.put_records(StreamName=self.stream, Records=pending)
            except Exception as exc:
                raise StreamError(f"PutRecords failed on {self.stream}: {_error_code(exc) or exc}") from exc
            if not response.get("FailedRecordCount"):
                return
            results = response.get("Records", [])
            failed = [e for e, r in zip(pending, results, strict=True) if r.get("ErrorCode")]
            codes = {}
            for r in results:
                if r.get("ErrorCode"):
                    codes[str(r["ErrorCode"])] = codes.get(str(r["ErrorCode"]), 0) + 1
            logger.info(
                "PutRecords: %d of %d records failed (%s); retrying", len(failed), len(pending), codes
            )
            pending = failed
            if attempt < self.max_attempts - 1:
                self._sleep(backoff_seconds(attempt, base=self.base_delay, cap=self.max_delay))
        raise StreamError(
            f"{len(pending)} records still rejected by {self.stream} after {self.max_attempts} attempts: {codes}"
        )

    def close(self) -> None:
        """Nothing to release (the client's connections close with it)."""
