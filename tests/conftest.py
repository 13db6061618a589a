"""Shared fixtures: an isolated Prefect home, one real Prefect server per session, throw-away stores."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A real ``prefect server start`` (API, UI, triggers, actions) on loopback, for the whole session."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = open(Path(_PREFECT_HOME) / "server.log", "w")  # noqa: SIM115 (closed at teardown)
    env = os.environ | {"PREFECT_API_URL": api, "PREFECT_SERVER_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("Prefect server did not start: " + (Path(_PREFECT_HOME) / "server.log").read_text())
        time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = api
    with temporary_settings({PREFECT_API_URL: api}):
        yield api
        # Deliver buffered logs and events while the server still listens.
        from prefect._internal.concurrency.services import QueueService

        QueueService.drain_all(timeout=10)
    os.environ.pop("PREFECT_API_URL", None)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SQLite store configured through the environment, as a user would."""
    from framework2.config import get_settings
    from framework2.store.engine import dispose_all

    url = f"sqlite:///{tmp_path / 'store.db'}"
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", url)
    monkeypatch.setenv("FRAMEWORK2_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()
    dispose_all()


POSTGRES_ADMIN_URL = os.environ.get("FRAMEWORK2_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database per test, dropped afterwards (CI makes sure the server runs)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"f2test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc} (run scripts/ensure-postgres.sh)")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from framework2.store.engine import dispose_all

    dispose_all()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
