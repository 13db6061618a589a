"""PLOS measurements against a real Prometheus scraping the demo app, and real HTTP smoke checks."""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import httpx
import pytest
from pydantic import ValidationError

from framework2.errors import ConfigError
from framework2.sample.demo_app import DemoApp, behaviour_for_image
from framework2.tasks.launch.analysis import MetricSpec, run_analysis
from framework2.tasks.launch.judge import compare_samples
from framework2.tasks.launch.metrics import (
    AnalysisEndpoints,
    MetricQueryError,
    check_metrics,
    make_measure,
    placeholder_context,
    prometheus_query,
    render,
    sample_series,
    smoke_check,
)
from tests.prom_fixtures import PrometheusServer
from tests.prom_fixtures import demo_app as demo_app_fixture  # noqa: F401  (registers `demo_app`)
from tests.prom_fixtures import prometheus as prometheus_fixture  # noqa: F401  (registers `prometheus`)

pytestmark = pytest.mark.integration

SUCCESS_RATE = (
    'sum(rate(demo_http_requests_total{colour="{{colour}}",code!~"5.."}[10s]))'
    ' / sum(rate(demo_http_requests_total{colour="{{colour}}"}[10s]))'
)
# A short window so a test sees a colour's new behaviour (or its silence) within a few scrapes.
SUCCESS_RATE_5S = SUCCESS_RATE.replace("[10s]", "[5s]")
P95_LATENCY = (
    'histogram_quantile(0.95, sum by (le) (rate(demo_http_request_duration_seconds_bucket{colour="{{colour}}"}[5s])))'
)
P95_LATENCY_3S = P95_LATENCY.replace("[5s]", "[3s]")

T = TypeVar("T")


def context(colour: str) -> dict[str, str]:
    return placeholder_context(
        app="shop",
        namespace="shop",
        colour=colour,
        revision="2.0",
        preview_service="shop-preview",
        active_service="shop",
    )


def metric(**overrides) -> MetricSpec:
    fields = {
        "name": "success-rate",
        "query": SUCCESS_RATE,
        "success_condition": "result >= 0.99",
        "failure_condition": "result < 0.95",
        "interval_seconds": 0.5,
        "count": 3,
        "error_retry_seconds": 0.1,
    }
    fields.update(overrides)
    return MetricSpec(**fields)


def closed_port() -> int:
    # Bound and released: nothing listens there for the rest of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def eventually(produce: Callable[[], T], ok: Callable[[T], bool], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = produce()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g}s for {what}; last value {value!r}", pytrace=False)
        time.sleep(0.25)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def endpoints_for(prom: PrometheusServer, app: DemoApp) -> AnalysisEndpoints:
    return AnalysisEndpoints(prometheus_url=prom.url, preview_url=app.url + "/{{colour}}")


# --- PromQL against the real server -------------------------------------------------------------


def test_success_rate_query_reads_real_prometheus_value(demo_app, prometheus, client):
    measure = make_measure(endpoints_for(prometheus, demo_app), context("blue"), client)
    value = eventually(
        lambda: measure(metric()), lambda v: v is not None and not math.isnan(v), timeout=15, what="data"
    )
    assert value == pytest.approx(1.0)
    result = run_analysis([metric(count=2)], measure)
    assert result.phase == "successful", result.reason
    assert [m.phase for m in result.measurements] == ["successful", "successful"]


def test_faulty_colour_error_rate_breaches_condition(demo_app, prometheus, client):
    demo_app.set_image("green", "registry.local/shop:2.0-faulty")
    promql = render(SUCCESS_RATE, context("green"))
    # Wait past the band between the conditions, where a measurement would be inconclusive instead.
    prometheus.wait_for(promql, lambda v: v is not None and v < 0.95, what="green's success rate below 0.95")

    measure = make_measure(endpoints_for(prometheus, demo_app), context("green"), client)
    result = run_analysis([metric(interval_seconds=1, count=3)], measure)

    assert result.phase == "failed", result.reason
    [bad] = result.measurements
    assert bad.phase == "failed" and bad.value is not None and 0.5 < bad.value < 0.95
    assert "success-rate" in result.reason and "roll back" in result.reason


def test_p95_latency_from_histogram(demo_app, prometheus):
    demo_app.set_image("green", "shop:2.0-slow")
    blue = prometheus.wait_for(
        render(P95_LATENCY, context("blue")), lambda v: v is not None and not math.isnan(v), what="blue's p95"
    )
    # Healthy answers take ~5 ms; interpolated within the 5-10 ms bucket.
    assert blue is not None and 0 < blue < 0.05
    # Slow answers take ~0.6 s, so the 95th percentile lands in the 0.5-1 s bucket.
    green = prometheus.wait_for(
        render(P95_LATENCY, context("green")), lambda v: v is not None and v > 0.5, what="green's p95 above 0.5 s"
    )
    assert green is not None and green <= 1.0


def test_query_for_a_colour_without_traffic_is_no_data_not_pass(demo_app, prometheus, client):
    demo_app.set_load("green", 0)
    # Once the window holds no increase, the ratio is 0/0: Prometheus answers NaN.
    prometheus.wait_for(
        render(SUCCESS_RATE_5S, context("green")),
        lambda v: v is None or math.isnan(v),
        what="green's success rate to have no data",
    )
    measure = make_measure(endpoints_for(prometheus, demo_app), context("green"), client)
    result = run_analysis([metric(query=SUCCESS_RATE_5S)], measure)

    assert result.phase == "inconclusive", result.reason
    assert "no data" in result.reason
    assert [m.phase for m in result.measurements] == ["no_data"]


def test_multi_series_query_is_an_error_naming_labels(prometheus, client):
    with pytest.raises(MetricQueryError) as caught:
        prometheus_query(client, prometheus.url, "demo_http_requests_total")
    message = str(caught.value)
    assert "4 series" in message and "sum(" in message
    assert 'colour="blue"' in message and 'code="200"' in message


def test_promql_syntax_error_is_a_measurement_error(demo_app, prometheus, client):
    measure = make_measure(endpoints_for(prometheus, demo_app), context("green"), client)
    broken = metric(query='sum(rate(demo_http_requests_total{colour="{{colour}}"}[5s])', consecutive_error_limit=2)
    result = run_analysis([broken], measure)

    # Three errors in a row exceed the limit of two: the metric errors and the analysis fails (roll back).
    assert [m.phase for m in result.measurements] == ["error", "error", "error"]
    assert "parse error" in result.measurements[0].message
    assert result.metric_phases == {"success-rate": "error"}
    assert result.phase == "failed"


def test_prometheus_down_is_error_not_pass(client):
    endpoints = AnalysisEndpoints(prometheus_url=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(MetricQueryError, match="cannot reach Prometheus"):
        prometheus_query(client, endpoints.prometheus_url, "vector(1)", timeout=2)

    result = run_analysis([metric(consecutive_error_limit=1)], make_measure(endpoints, context("green"), client))
    assert result.phase == "failed"
    assert result.metric_phases == {"success-rate": "error"}
    assert all(m.phase == "error" for m in result.measurements)


def test_prometheus_metric_without_prometheus_url_is_a_config_error(demo_app, client):
    endpoints = AnalysisEndpoints(preview_url=demo_app.url + "/{{colour}}")
    with pytest.raises(ConfigError, match="no prometheus_url"):
        check_metrics([metric()], endpoints, context("green"))
    with pytest.raises(ConfigError, match="no prometheus_url"):
        make_measure(endpoints, context("green"), client)(metric())


# --- HTTP smoke checks --------------------------------------------------------------------------


def test_smoke_check_passes_a_healthy_colour(demo_app, client):
    smoke = metric(
        name="healthz", kind="http", query="/healthz", success_condition="result == 1", failure_condition=None
    )
    measure = make_measure(AnalysisEndpoints(preview_url=demo_app.url + "/{{colour}}"), context("green"), client)
    result = run_analysis([smoke.model_copy(update={"count": 2, "interval_seconds": 0.1})], measure)
    assert result.phase == "successful", result.reason


def test_smoke_check_failing_status_is_failed_measurement(demo_app, client):
    demo_app.set_behaviour("green", error_rate=1.0, latency_seconds=0.001)
    assert smoke_check(client, demo_app.colour_url("green") + "/healthz") == 0.0
    assert smoke_check(client, demo_app.colour_url("blue") + "/healthz") == 1.0

    smoke = metric(
        name="healthz", kind="http", query="healthz", success_condition="result == 1", failure_condition=None
    )
    measure = make_measure(AnalysisEndpoints(preview_url=demo_app.url + "/{{colour}}/"), context("green"), client)
    result = run_analysis([smoke], measure)
    assert result.phase == "failed"
    [m] = result.measurements
    assert (m.phase, m.value) == ("failed", 0.0)


def test_smoke_check_connection_refused_is_error(client):
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(MetricQueryError, match="cannot reach"):
        smoke_check(client, url + "/healthz", timeout=2)

    smoke = metric(
        name="healthz",
        kind="http",
        query="/healthz",
        success_condition="result == 1",
        failure_condition=None,
        consecutive_error_limit=1,
    )
    result = run_analysis([smoke], make_measure(AnalysisEndpoints(preview_url=url), context("green"), client))
    assert [m.phase for m in result.measurements] == ["error", "error"]
    assert result.phase == "failed"


# --- templates ----------------------------------------------------------------------------------


def test_unknown_placeholder_rejected():
    assert render('up{namespace="{{namespace}}",app="{{app}}"}', context("green")) == 'up{namespace="shop",app="shop"}'
    with pytest.raises(ValueError, match=r"\{\{color\}\}.*known placeholders: .*\{\{colour\}\}"):
        render('rate(x{colour="{{color}}"}[1m])', context("green"))
    with pytest.raises(ValueError, match=r"\{\{args.service\}\}"):
        render("{{args.service}}", context("green"))
    with pytest.raises(ValueError, match=r"\{\{revision\}\}.* no value"):
        render("v{{revision}}", {"colour": "green"})
    with pytest.raises(ValidationError, match=r"\{\{svc\}\} is an unknown placeholder"):
        AnalysisEndpoints(preview_url="http://{{svc}}.shop")
    with pytest.raises(ValidationError, match="http:// or https://"):
        AnalysisEndpoints(preview_url="ftp://{{preview_service}}")
    with pytest.raises(ConfigError, match=r"metric 'success-rate'.*\{\{colur\}\}"):
        check_metrics([metric(query="x{c='{{colur}}'}")], AnalysisEndpoints(prometheus_url="http://p:9090"), {})


def test_image_tags_map_to_demo_behaviour():
    assert behaviour_for_image("registry:5000/shop:2.0-faulty").error_rate == 0.3
    assert behaviour_for_image("shop:slow-build").latency_seconds == 0.6
    assert behaviour_for_image("registry:5000/faulty/shop:2.0").error_rate == 0.0  # the tag decides, not the path
    assert behaviour_for_image("shop@sha256:abc").error_rate == 0.0


# --- range samples for the judge ----------------------------------------------------------------


def test_range_samples_feed_the_judge(demo_app, prometheus, client):
    demo_app.set_image("green", "shop:2.0-slow")
    candidate_q, baseline_q = render(P95_LATENCY_3S, context("green")), render(P95_LATENCY_3S, context("blue"))
    prometheus.wait_for(candidate_q, lambda v: v is not None and v > 0.5, what="green's p95 above 0.5 s")
    start = time.time()

    def samples() -> tuple[list[float], list[float]]:
        end = time.time()
        return (
            sample_series(client, prometheus.url, baseline_q, start, end, 1),
            sample_series(client, prometheus.url, candidate_q, start, end, 1),
        )

    baseline, candidate = eventually(
        samples, lambda s: min(len(s[0]), len(s[1])) >= 6, timeout=20, what="six samples per colour"
    )
    assert max(baseline) < 0.05 and min(candidate) > 0.5

    verdict = compare_samples(baseline, candidate, higher_is_worse=True)
    assert verdict.phase == "failed", verdict.reason
    assert verdict.p_value is not None and verdict.p_value < 0.05

    with pytest.raises(MetricQueryError, match="series"):
        sample_series(client, prometheus.url, "demo_http_requests_total", start, time.time(), 1)
