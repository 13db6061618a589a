"""Engine and sessions for the store: a SQLite file by default, PostgreSQL (or any SQLAlchemy URL) when given.

Nothing is created at import time. ``open_store`` connects, checks the server answers and brings the
schema to the newest migration, so a user with an old store file keeps their data on upgrade.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlmodel import Session, create_engine

from framework2.errors import StoreError

_engines: dict[str, Engine] = {}
# Alembic keeps its migration context in module globals, so two threads of one process migrating at once (two
# flows started together, PSO's concurrent subflows) break each other's context: one migration at a time.
_migrating = threading.Lock()


def redact(url: str) -> str:
    """The URL with its password masked, safe for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets the dashboard read while a flow writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create (or reuse) an engine for ``url``; raise StoreError if the URL is unusable."""
    if url in _engines:
        return _engines[url]
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"store URL {url!r} is not a database URL",
            hint="use e.g. sqlite:///path/store.db or postgresql+psycopg://user@host/db",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            # psycopg 3 is the driver we ship; plain "postgresql://" would look for psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(parsed, pool_pre_ping=True, connect_args=_connect_args(parsed))
        except (ImportError, SQLAlchemyError) as exc:
            raise StoreError(
                f"cannot use store URL {redact(url)}: {exc}",
                hint="supported: sqlite:///file.db and postgresql+psycopg://user@host:5432/db",
            ) from exc
    _engines[url] = engine
    return engine


def _connect_args(parsed) -> dict:  # type: ignore[no-untyped-def]
    if parsed.get_backend_name() == "postgresql":
        return {"connect_timeout": 5}
    return {}


def check_connection(engine: Engine) -> None:
    """Run ``SELECT 1``; turn any failure into a StoreError that says where and what to check."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError) as exc:
        raise store_unreachable(engine, exc) from exc


def store_unreachable(engine: Engine, exc: BaseException) -> StoreError:
    """The StoreError for a store that failed to answer: where (no password), why, and what to check."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return StoreError(
        f"cannot reach the store at {redact(engine.url.render_as_string(hide_password=False))}: {reason}",
        hint="check [store] url in framework2.toml (or FRAMEWORK2_STORE__URL) and that the database server is running",
    )


def dispose_all() -> None:
    """Close every cached engine (tests, and the CLI before it exits)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back everything on error: no half-written results."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def resolve_store_url(settings) -> str:  # type: ignore[no-untyped-def]
    """The store URL: from the named ``store-database`` block when configured, else from settings."""
    if settings.store.block:
        from framework2.blocks.store_database import StoreDatabase

        try:
            block = StoreDatabase.load(settings.store.block)
        except Exception as exc:  # Prefect raises ValueError for a missing block, httpx errors if unreachable
            raise StoreError(
                f"cannot load the store-database block {settings.store.block!r}: {exc}",
                hint="create it in the Prefect UI (Blocks → Store Database) or remove [store] block",
            ) from exc
        return block.url.get_secret_value()
    return settings.store_url


def open_store(settings=None, *, migrate: bool = True) -> Engine:  # type: ignore[no-untyped-def]
    """Connect to the configured store, check it answers, and bring its schema up to date."""
    from framework2.config import get_settings
    from framework2.store.migrate import upgrade

    settings = settings or get_settings()
    engine = make_engine(resolve_store_url(settings))
    check_connection(engine)
    if migrate:
        try:
            with _migrating:
                upgrade(engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"could not migrate the store at {redact(str(engine.url))}: {exc}",
                hint="nothing was changed; check the database user may create tables, then run `framework2 init`",
            ) from exc
    return engine
