"""A real Prometheus scraping the demo app every second, for the PLOS release analysis tests.

    from tests.prom_fixtures import demo_app, prometheus  # noqa: F401  (in conftest.py)
    # in a test module, import under another name so the parameters do not trip ruff's F811:
    from tests.prom_fixtures import demo_app as demo_app_fixture  # noqa: F401  (registers `demo_app`)

    def test_something(demo_app, prometheus):
        demo_app.set_image("green", "shop:2-faulty")
        prometheus.wait_for('sum(rate(demo_http_requests_total{colour="green",code="500"}[5s]))', lambda v: v > 0)

``demo_app`` is one :class:`~framework2.sample.demo_app.DemoApp` for the whole session (Prometheus
scrapes its fixed address), reset to healthy colours at the default load before each test. Counters are
never reset, so a test that needs a colour's recent behaviour waits for it with ``prometheus.wait_for``
rather than assuming the window holds only its own traffic.

``prometheus`` is Debian's ``/usr/bin/prometheus`` on a free loopback port with a throw-away config and
data directory. A missing binary fails the test (run ``scripts/ensure-prometheus.sh``); it never skips,
so a gap in CI cannot pass unnoticed. ``running_prometheus(app, home)`` is the same without pytest (for
the benchmarks); it raises PrometheusStartError where the fixture fails the test.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from framework2.sample.demo_app import DemoApp
from framework2.tasks.launch.metrics import MetricQueryError, prometheus_query

PROMETHEUS_BINARY = "/usr/bin/prometheus"
SCRAPE_INTERVAL_SECONDS = 1
START_TIMEOUT_SECONDS = 60

_CONFIG = """\
global:
  scrape_interval: {interval}s
  # Prometheus refuses a scrape timeout longer than the interval, and the default is 10s.
  scrape_timeout: {interval}s
  evaluation_interval: {interval}s
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: ["{target}"]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PrometheusServer:
    """A running Prometheus; ``url`` is its base URL without a trailing slash."""

    url: str
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    client: httpx.Client = field(repr=False)

    def query(self, promql: str) -> float | None:
        """The value of an instant query (None when empty), as the analysis would read it."""
        return prometheus_query(self.client, self.url, promql)

    def wait_for(
        self, promql: str, predicate: Callable[[float | None], bool], *, timeout: float = 20, what: str = ""
    ) -> float | None:
        """Poll ``promql`` until ``predicate(value)`` holds; fail the test with the last value on timeout."""
        deadline = time.monotonic() + timeout
        last: float | None | str = "no answer yet"
        while True:
            try:
                value = self.query(promql)
                if predicate(value):
                    return value
                last = value
            except MetricQueryError as exc:
                last = f"error: {exc}"
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:g}s for {what or promql!r}; last value {last!r}", pytrace=False)
            time.sleep(0.25)

    def log(self) -> str:
        """What Prometheus logged (warnings and worse)."""
        return self.log_path.read_text(errors="replace")


_shared_app: DemoApp | None = None


def _session_demo_app(config: pytest.Config) -> DemoApp:
    """The session's demo app, started on first use and stopped when the session ends.

    Shared by the function-scoped ``demo_app`` and the session-scoped ``prometheus`` without a third
    fixture name, so a test module needs to import only those two.
    """
    global _shared_app
    if _shared_app is None:
        app = DemoApp().start()
        _shared_app = app

        def stop() -> None:
            global _shared_app
            app.stop()
            _shared_app = None

        config.add_cleanup(stop)
    return _shared_app


@pytest.fixture(name="demo_app")
def demo_app(request: pytest.FixtureRequest) -> Iterator[DemoApp]:
    """The session's demo app, both colours healthy at the default load; reset again after the test."""
    app = _session_demo_app(request.config)
    app.reset()
    yield app
    app.reset()


class PrometheusStartError(RuntimeError):
    """Prometheus is not installed, exited, or did not start scraping in time."""


@pytest.fixture(name="prometheus", scope="session")
def prometheus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the demo app every second, up and with the first scrape landed."""
    app = _session_demo_app(request.config)
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_prometheus(app, tmp_path_factory.mktemp("prometheus")))
        except PrometheusStartError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server


@contextlib.contextmanager
def running_prometheus(app: DemoApp, home: Path) -> Iterator[PrometheusServer]:
    """Prometheus scraping ``app`` every second, config and data in ``home``, until the block ends.

    What the ``prometheus`` fixture yields, usable without pytest (the benchmarks use it); raises
    PrometheusStartError when the binary is missing or it does not start scraping.
    """
    binary = shutil.which("prometheus") or PROMETHEUS_BINARY
    if not Path(binary).is_file():
        raise PrometheusStartError(
            "the prometheus binary is missing; install it with scripts/ensure-prometheus.sh (as root)"
        )
    config = home / "prometheus.yml"
    config.write_text(_CONFIG.format(interval=SCRAPE_INTERVAL_SECONDS, target=f"127.0.0.1:{app.port}"))
    port = _free_port()
    log_path = home / "prometheus.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = httpx.Client(timeout=5)
    server = PrometheusServer(url=f"http://127.0.0.1:{port}", log_path=log_path, process=process, client=client)
    try:
        _wait_until_scraping(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        client.close()
        log.close()


def _wait_until_scraping(server: PrometheusServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if server.process.poll() is not None:
            raise PrometheusStartError(f"prometheus exited with {server.process.returncode}:\n{server.log()}")
        try:
            ready = server.client.get(f"{server.url}/-/ready").status_code == 200
            # `up` is 1 once a scrape of the demo app succeeded, so the first samples are queryable.
            if ready and server.query('up{job="demo"}') == 1:
                return
        except (httpx.HTTPError, MetricQueryError):
            pass
        if time.monotonic() > deadline:
            server.process.kill()
            raise PrometheusStartError(f"prometheus not scraping within {START_TIMEOUT_SECONDS}s:\n{server.log()}")
        time.sleep(0.2)
