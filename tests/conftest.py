"""Shared fixtures: an isolated Prefect home, one real Prefect server per session, throw-away stores.

``FRAMEWORK2_TEST_BACKEND=postgres`` runs the integration suite (the tests that use the Prefect server or are
marked ``integration``) with both the Prefect server and the store on the machine's PostgreSQL: a fresh
database for the server per session and one for the store per test, dropped afterwards. `make test` runs the
whole suite on SQLite, then this.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Before Prefect is imported anywhere: never touch the developer's ~/.prefect, never phone home.
_PREFECT_HOME = tempfile.mkdtemp(prefix="f2-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# A test that talks to Prefect must ask for the `prefect_server` fixture; never a silent ephemeral server.
os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("FRAMEWORK2_CONFIG", None)

import httpx  # noqa: E402
import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from tests.http_fixtures import http_server  # noqa: E402,F401  (fixture re-export)
from tests.k8s_fixtures import cluster  # noqa: E402,F401  (fixture re-export)
from tests.prom_fixtures import demo_app, prometheus  # noqa: E402,F401  (fixture re-export)

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BACKEND = os.environ.get("FRAMEWORK2_TEST_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "postgres"):
    raise RuntimeError(f"FRAMEWORK2_TEST_BACKEND={BACKEND!r}: use sqlite (default) or postgres")
POSTGRES_ADMIN_URL = os.environ.get("FRAMEWORK2_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def create_database(prefix: str) -> str:
    """A fresh, empty PostgreSQL database; its psycopg URL."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL backend, keep the integration suite: tests on the Prefect server or marked integration."""
    if BACKEND != "postgres":
        return
    keep, drop = [], []
    for item in items:
        wanted = "prefect_server" in getattr(item, "fixturenames", ()) or item.get_closest_marker("integration")
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@contextmanager
def running_prefect_server(log_name: str = "server.log") -> Iterator[str]:
    """Run ``prefect server start`` on a free loopback port until the block ends; yield its API URL. Its database
    is a fresh SQLite file, or a fresh PostgreSQL database on the postgres backend."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = Path(tempfile.mkdtemp(prefix="server-", dir=_PREFECT_HOME))
    log = open(home / log_name, "w")  # noqa: SIM115 (closed below)
    env = os.environ | {
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        # No test needs runs created by schedules or marked Late, and on SQLite those services' steady writes
        # (a hundred runs per scheduled deployment after every `framework2 init`, and a Late state for each run
        # no worker takes) held the database lock long enough to time out the event and trigger writes tests
        # do depend on. Schedules themselves are still deployed and checked.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    }
    server_db = None
    if BACKEND == "postgres":
        server_db = create_database("f2prefect")
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = server_db.replace("+psycopg", "+asyncpg")
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Prefect server did not start: " + (home / log_name).read_text())
            time.sleep(0.5)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if server_db is not None:
            drop_database(server_db)


@contextmanager
def using_prefect_api(api: str) -> Iterator[str]:
    """Point this process (settings and environment, so CLI subprocesses too) at ``api`` for the block."""
    from prefect._internal.concurrency.services import QueueService
    from prefect.settings import PREFECT_API_URL, temporary_settings

    # Prefect keeps one events worker per process whose key leaves out the API URL: one started against the
    # previous server would carry this block's events there. Stopping the services delivers what they hold to
    # the server they were started for, and the next event starts a worker for ``api``.
    QueueService.drain_all(timeout=10)
    before = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = api
    try:
        with temporary_settings({PREFECT_API_URL: api}):
            yield api
            QueueService.drain_all(timeout=10)  # deliver buffered logs and events while the server still listens
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real ``prefect server start`` (API, UI, triggers, actions) on loopback, for the whole session."""
    with running_prefect_server() as api, using_prefect_api(api):
        yield api


@pytest.fixture
def own_prefect_server(prefect_server: str) -> Iterator[str]:
    """A Prefect server of this test's own, for tests whose timing must not depend on what the session's shared
    server has accumulated (deployments re-deployed many times, thousands of events); the session's server is
    the current one again afterwards."""
    with running_prefect_server("own-server.log") as api, using_prefect_api(api):
        yield api


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh store configured through the environment, as a user would: SQLite, or a fresh PostgreSQL
    database on the postgres backend."""
    from framework2.config import get_settings
    from framework2.store.engine import dispose_all

    url = create_database("f2store") if BACKEND == "postgres" else f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", url)
    monkeypatch.setenv("FRAMEWORK2_HOME", str(tmp_path / "home"))
    # The tests' feeds are served on loopback, which a feed may reach only when the allowlist names it.
    monkeypatch.setenv("FRAMEWORK2_PPIS__FEED_HOST_ALLOWLIST", '["127.0.0.1"]')
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    dispose_all()
    if BACKEND == "postgres":
        drop_database(url)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database per test, dropped afterwards (CI makes sure the server runs)."""
    try:
        url = create_database("f2test")
    except Exception as exc:
        if os.environ.get("CI") or BACKEND == "postgres":
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc} (run scripts/ensure-postgres.sh)")
    yield url
    from framework2.store.engine import dispose_all

    dispose_all()
    drop_database(url)
