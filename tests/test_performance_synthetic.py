"""PUXT synthetic probes against a real loopback HTTP server: phase timings, failures, percentiles."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from framework2.errors import DataError
from framework2.sample.performance import serve_slow_app
from framework2.tasks.performance.compare import response_time_alert
from framework2.tasks.performance.synthetic import PHASES, probe
from tests.http_fixtures import LoopbackHTTPServer, Reply


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_probe_times_each_phase(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/page", Reply(200, "x" * 5000, delay=0.05))

    result = probe(http_server.url_for("/page"), samples=12, concurrency=4)

    assert result.status == "ok"
    assert (result.samples_ok, result.samples_failed, result.failures) == (12, 0, {})
    assert result.status_codes == {200: 12}
    ttfb, total = result.phase("ttfb"), result.phase("total")
    assert ttfb is not None and total is not None
    assert ttfb.p50 >= 50
    assert total.p50 >= ttfb.p50
    assert result.phase("tls") is None  # plain http: no handshake, and no zeros pretending there was one
    for s in result.samples:
        assert s.new_connection  # Connection: close -> every sample connects
        parts = [s.connect_ms, s.send_ms, s.ttfb_ms, s.download_ms]
        assert all(p is not None and p >= 0 for p in parts)
        # The phases happen one after the other inside the sample's wall time; the rest is bookkeeping (generous
        # bound: threads of a loaded CI machine may wait for the GIL between phases).
        assert s.total_ms >= sum(parts)
        assert s.total_ms - sum(parts) < 100
    assert all(r.headers.get("connection") == "close" for r in http_server.requests_to("/page"))


def test_percentiles_are_numpys_on_the_recorded_samples(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/", Reply(200, "ok", delay=0.002))

    result = probe(http_server.url_for("/"), samples=15, concurrency=5)

    for phase in PHASES:
        values = np.array([v for s in result.samples if (v := s.phase_ms(phase)) is not None])
        stats = result.phase(phase)
        if not values.size:
            assert stats is None
            continue
        assert stats is not None and stats.count == values.size
        expected = np.percentile(values, [50, 95, 99], method="linear")
        assert [stats.p50, stats.p95, stats.p99] == pytest.approx(list(expected), rel=1e-12)
        assert stats.mean == pytest.approx(values.mean(), rel=1e-12)


def test_server_errors_are_counted_with_reasons_not_timed(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/flaky", Reply(500), Reply(503), Reply(200, "fine"))

    result = probe(http_server.url_for("/flaky"), samples=6)

    assert result.status == "degraded"
    assert result.failures == {"HTTP 500": 1, "HTTP 503": 1}
    assert (result.samples_ok, result.samples_failed) == (4, 2)
    assert result.status_codes == {200: 4, 500: 1, 503: 1}
    assert result.phase("total").count == 4


def test_every_sample_failing_gives_status_failed_not_zeros(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/down", Reply(500))

    result = probe(http_server.url_for("/down"), samples=4)

    assert result.status == "failed"
    assert result.failures == {"HTTP 500": 4}
    assert result.phases == {}


def test_closed_port_fails_with_connection_refused() -> None:
    result = probe(f"http://127.0.0.1:{closed_port()}/", samples=3)

    assert result.status == "failed"
    assert result.failures == {"connection refused": 3}
    assert result.samples_ok == 0 and result.phases == {} and result.status_codes == {}


def test_slow_reply_is_a_timeout_failure(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/slow", Reply(200, delay=0.5))

    result = probe(http_server.url_for("/slow"), samples=2, timeout_s=0.1, concurrency=2)

    assert result.failures == {"timeout (read)": 2}
    assert result.status == "failed"


def test_keep_alive_mode_and_custom_headers(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/")

    result = probe(http_server.url_for("/"), samples=3, headers={"X-Probe": "puxt"}, new_connection_per_sample=False)

    assert result.status == "ok" and not result.new_connection_per_sample
    received = http_server.requests_to("/")
    assert [r.headers["x-probe"] for r in received] == ["puxt"] * 3
    assert all(r.headers.get("connection") != "close" for r in received)


def test_result_serialises_and_lists_samples(http_server: LoopbackHTTPServer) -> None:
    http_server.route("/", Reply(200), Reply(502))

    result = probe(http_server.url_for("/"), samples=3)

    data = json.loads(json.dumps(result.to_dict()))
    assert data["status"] == "degraded" and data["failures"] == {"HTTP 502": 2}
    assert set(data["phases"]) >= {"connect", "ttfb", "total"}
    frame = result.samples_frame()
    assert list(frame["ok"]) == [True, False, False]
    assert list(frame["reason"].fillna("")) == ["", "HTTP 502", "HTTP 502"]


@pytest.mark.parametrize(
    ("url", "kwargs"),
    [
        ("ftp://example.com/", {}),
        ("not a url", {}),
        ("http://127.0.0.1/", {"samples": 0}),
        ("http://127.0.0.1/", {"concurrency": 0}),
        ("http://127.0.0.1/", {"timeout_s": 0}),
    ],
)
def test_unusable_arguments_raise_data_error(url: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(DataError):
        probe(url, **kwargs)


def test_sample_app_delay_shows_in_ttfb_and_triggers_the_alert() -> None:
    with serve_slow_app({"/fast": 0, "/slow": 30}) as base:
        fast = probe(f"{base}/fast", samples=5)
        slow = probe(f"{base}/slow", samples=5, concurrency=5, new_connection_per_sample=False)
        missing = probe(f"{base}/nope", samples=1)

    assert slow.phase("ttfb").p50 >= 30
    assert response_time_alert(slow, threshold_ms=25).fired
    assert not response_time_alert(fast, threshold_ms=25).fired
    assert missing.failures == {"HTTP 404": 1}
