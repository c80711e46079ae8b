"""Engines, sessions and migrations of the store.

SQLite (the default, a file under ``RETAIN_HOME``) runs in WAL mode with foreign keys on, and write
transactions start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of
failing; PostgreSQL comes through ``RETAIN_DATABASE_URL`` (``postgresql+psycopg://...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: writers queue on SQLite's busy timeout alone
    fcntl = None  # type: ignore[assignment]

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from retain.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Execution option that makes a SQLite transaction start with ``BEGIN IMMEDIATE``.
WRITE_OPTION = "retain_write"
_SQLITE_BUSY_TIMEOUT_S = 30.0


def database_url(settings: Settings | None = None) -> str:
    """The configured store URL (``RETAIN_DATABASE_URL``, else SQLite under ``RETAIN_HOME``)."""
    return (settings or get_settings()).resolved_database_url()


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` (default: :func:`database_url`).

    Parameters
    ----------
    url : str, optional
        SQLAlchemy URL. A bare ``postgresql://`` URL uses the psycopg 3 driver.
    echo : bool, default False
        Log SQL statements (never enable with real data: parameters hold pseudonyms and features).

    Returns
    -------
    sqlalchemy.Engine
    """
    url = url or database_url()
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            echo=echo,
            pool_pre_ping=True,
            connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
            json_serializer=json_dumps,
            json_deserializer=json_loads,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        parsed, echo=echo, pool_pre_ping=True, json_serializer=json_dumps, json_deserializer=json_loads
    )


def json_dumps(value: Any) -> str:
    """JSON for JSON columns (orjson: about 10x faster than ``json.dumps`` on feature rows)."""
    return orjson.dumps(
        value, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    ).decode()


def json_loads(text: str | bytes) -> Any:
    """Parse a JSON column; rows written by ``json.dumps`` with ``NaN`` still load."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


WAL_CHECKPOINT_PAGES = 10_000
"""Pages (4 KiB) the write-ahead log may hold before a commit copies them into the database.

SQLite's default is 1,000. Each stored prediction dirties a random page of the per-student index;
a longer log lets many commits' changes to one page be copied once: in
``benchmarks/store_writes.py`` the commit went from 12.5-18.0 to 7.7-10.4 µs a row. The log
file grows to about 40 MB between checkpoints."""


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, busy timeout, and explicit transaction control (for ``BEGIN IMMEDIATE``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so SQLAlchemy's BEGIN below is the only one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(_SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if engine.url.database not in (None, "", ":memory:"):
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss
                cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay readable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


class WriterQueue:
    """Turns at a SQLite file's write lock for writers in several processes, in the kernel.

    SQLite lets one transaction write at a time; a writer that finds the lock taken sleeps and
    retries (1, 2, 5, 10 ms and longer), so two API worker processes committing small groups lose
    much of their time asleep beside a free lock. Holding an exclusive ``flock`` on a file next
    to the database around each write transaction makes the next writer wake the moment the
    last one commits. It only orders writers that take it (the prediction writers); any other
    writer still meets SQLite's busy timeout, as before. A process that dies releases its turn.
    Nothing is queued for PostgreSQL, an in-memory database, or where ``fcntl`` is missing.
    """

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        on_disk = bool(database) and database != ":memory:" and not str(database).startswith("file:")
        self.path = Path(f"{database}-writers.lock") if fcntl is not None and on_disk else None
        self._fd: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this writer's turn, write, then hand the turn on."""
        if self.path is None:
            yield
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def alembic_config(url: str | None = None) -> Any:
    """An Alembic ``Config`` for the packaged migrations, without an ``alembic.ini``.

    Parameters
    ----------
    url : str, optional
        Database URL (default: :func:`database_url`).

    Returns
    -------
    alembic.config.Config
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head", *, engine: Engine | None = None) -> None:
    """Run the Alembic migrations up to ``revision``.

    Parameters
    ----------
    url : str, optional
        Database URL (default: :func:`database_url`). Ignored when ``engine`` is given.
    revision : str, default "head"
        Target revision.
    engine : sqlalchemy.Engine, optional
        Reuse this engine (and its SQLite pragmas) instead of creating one.
    """
    from alembic import command

    own = engine is None
    eng = engine if engine is not None else make_engine(url)
    try:
        cfg = alembic_config(eng.url.render_as_string(hide_password=False))
        with eng.connect().execution_options(**{WRITE_OPTION: True}) as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
            connection.commit()
    finally:
        if own:
            eng.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with the package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
