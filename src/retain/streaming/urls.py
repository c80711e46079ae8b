"""Sources and sinks from URLs.

=============  ===========================================================================
scheme         URL
=============  ===========================================================================
``redis``      ``redis://host:port/db?stream=NAME&group=GROUP[&consumer=C]`` (source);
               ``redis://host:port/db?stream=NAME[&maxlen=N]`` (sink); ``rediss`` for TLS
``kinesis``    see :mod:`retain.streaming.kinesis`
``memory``     ``memory://NAME``: an in-process stream (tests, benchmarks)
=============  ===========================================================================

Backends are imported only when their scheme is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from retain.streaming.base import Sink, Source, StreamError

if TYPE_CHECKING:
    from retain.store.repository import Store

DEAD_LETTER_SUFFIX = "-dead-letter"
SCHEMES = ("redis", "rediss", "kinesis", "memory")


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in SCHEMES:
        raise StreamError(f"unsupported stream URL scheme {scheme or '(none)'!r}; use one of {list(SCHEMES)}")
    return scheme


def _memory_name(url: str) -> str:
    parts = urlsplit(url)
    name = (parts.netloc + parts.path).strip("/")
    if not name:
        raise StreamError("a memory stream URL needs a name: memory://NAME")
    return name


def open_source(url: str, *, store: Store | None = None) -> Source:
    """Open a source from its URL.

    Parameters
    ----------
    url : str
        ``redis://``, ``rediss://``, ``kinesis://`` or ``memory://`` (see the module docstring).
    store : Store, optional
        Passed to sources that keep their positions in the store (Kinesis).

    Raises
    ------
    StreamError
        Unknown scheme, bad options, or the server cannot be reached.
    """
    scheme = _scheme(url)
    if scheme in ("redis", "rediss"):
        from retain.streaming.redis_streams import RedisStreamSource

        return RedisStreamSource.from_url(url)
    if scheme == "kinesis":
        kinesis = importlib.import_module("retain.streaming.kinesis")
        source: Source = kinesis.KinesisSource.from_url(url, store=store)
        return source
    from retain.streaming.memory import MEMORY_STREAMS, MemorySource

    return MemorySource(MEMORY_STREAMS.get(_memory_name(url)))


def open_sink(url: str) -> Sink:
    """Open a sink from its URL (see :func:`open_source`)."""
    scheme = _scheme(url)
    if scheme in ("redis", "rediss"):
        from retain.streaming.redis_streams import RedisStreamSink

        return RedisStreamSink.from_url(url)
    if scheme == "kinesis":
        kinesis = importlib.import_module("retain.streaming.kinesis")
        sink: Sink = kinesis.KinesisSink.from_url(url)
        return sink
    from retain.streaming.memory import MEMORY_STREAMS, MemorySink

    return MemorySink(MEMORY_STREAMS.get(_memory_name(url)))


def default_dead_letter_url(source_url: str) -> str:
    """The dead-letter stream next to a source: its stream name plus ``-dead-letter``.

    Raises
    ------
    StreamError
        For sources whose URL does not name a stream this way (give ``--dead-letter``).
    """
    scheme = _scheme(source_url)
    parts = urlsplit(source_url)
    if scheme == "memory":
        return f"memory://{_memory_name(source_url)}{DEAD_LETTER_SUFFIX}"
    if scheme in ("redis", "rediss"):
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if not query.get("stream"):
            raise StreamError("a Redis stream URL needs ?stream=NAME")
        keep = {k: v for k, v in query.items() if k not in ("group", "consumer", "start", "claim_idle_ms")}
        keep["stream"] = query["stream"] + DEAD_LETTER_SUFFIX
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(keep), ""))
    raise StreamError(f"give the dead-letter stream's URL for a {scheme}:// source (--dead-letter)")
