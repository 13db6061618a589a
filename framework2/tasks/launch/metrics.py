"""PLOS measurements: PromQL queries against a real Prometheus and HTTP smoke checks of the new colour.

A metric's query and the preview URL are templates with ``{{placeholder}}`` names (see
:data:`PLACEHOLDERS`), filled in by :func:`render` for the colour under analysis. :func:`make_measure`
turns them into the ``measure`` callable that :func:`framework2.tasks.launch.analysis.run_analysis` drives.

How answers map onto the engine's measurement phases:

* a value (including NaN, Prometheus' 0/0 for a colour without traffic) is returned as a float;
* an empty instant vector is ``None``, which the engine counts as "no data", never as a pass;
* anything that is not an answer (Prometheus down, HTTP error, PromQL error, several series where one
  number is needed) raises :class:`MetricQueryError`, which the engine records as an *error* and retries.

A smoke check is 1.0 when the preview answers with an expected status and 0.0 when it answers with
another one, so ``result == 1`` turns a bad status into a *failed* measurement; only a preview that does
not answer at all is an error.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Container, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from framework2.errors import ConfigError, Framework2Error
from framework2.tasks.launch.analysis import MetricSpec

logger = logging.getLogger(__name__)

PLACEHOLDERS: tuple[str, ...] = (
    "app",
    "namespace",
    "colour",
    "baseline_colour",
    "revision",
    "preview_service",
    "active_service",
)
# Anything that looks like a template placeholder, including Argo's "{{args.x}}" and spaced forms, so a
# leftover is reported instead of being sent to Prometheus as PromQL.
_LEFTOVER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")
_MAX_LABEL_SETS_SHOWN = 3
DEFAULT_EXPECT_STATUS = range(200, 400)


class MetricQueryError(Framework2Error):
    """A measurement could not be taken: the source is unreachable or its answer is not one number."""


def render(text: str, context: Mapping[str, str]) -> str:
    """Fill ``{{name}}`` placeholders in ``text`` from ``context``.

    Plain string replacement, because PromQL uses braces itself (``{code="500"}``) and str.format would
    trip over them. A placeholder left over afterwards is a ValueError naming it.
    """
    rendered = text
    for name, value in context.items():
        rendered = rendered.replace("{{" + name + "}}", str(value))
    problems: list[str] = []
    for match in _LEFTOVER.finditer(rendered):
        raw, name = match.group(0), match.group(1)
        if name in context:
            problems.append(f"{raw} must be written {{{{{name}}}}}, without spaces")
        elif name in PLACEHOLDERS:
            problems.append(f"{raw} has no value here")
        else:
            problems.append(f"{raw} is an unknown placeholder")
    if problems:
        known = ", ".join("{{" + n + "}}" for n in PLACEHOLDERS)
        raise ValueError(f"in {text!r}: {'; '.join(dict.fromkeys(problems))}; known placeholders: {known}")
    return rendered


def placeholder_context(
    *, app: str, namespace: str, colour: str, revision: str, preview_service: str, active_service: str
) -> dict[str, str]:
    """The placeholder values for analysing ``colour`` of a blue-green app; the baseline is the other colour."""
    colours = ("blue", "green")
    if colour not in colours:
        raise ValueError(f"colour must be 'blue' or 'green', got {colour!r}")
    return {
        "app": app,
        "namespace": namespace,
        "colour": colour,
        "baseline_colour": colours[1 - colours.index(colour)],
        "revision": revision,
        "preview_service": preview_service,
        "active_service": active_service,
    }


# --- Prometheus HTTP API ------------------------------------------------------------------------


class _ApiResponse(BaseModel):
    """The envelope every Prometheus API answer has."""

    status: Literal["success", "error"]
    data: Any = None
    errorType: str | None = None  # Prometheus' spelling
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)


class _QueryData(BaseModel):
    resultType: Literal["vector", "scalar", "matrix", "string"]  # Prometheus' spelling
    result: Any


class _Sample(BaseModel):
    metric: dict[str, str] = Field(default_factory=dict)
    value: tuple[float, str]


class _Series(BaseModel):
    metric: dict[str, str] = Field(default_factory=dict)
    values: list[tuple[float, str]]


def _number(text: str) -> float:
    # Prometheus sends sample values as strings: "0.99", "NaN", "+Inf", "-Inf"; float() reads them all.
    try:
        return float(text)
    except ValueError as exc:
        raise MetricQueryError(f"Prometheus returned {text!r}, which is not a number") from exc


def _labels(metric: Mapping[str, str]) -> str:
    name = metric.get("__name__", "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{inner}}}"


def _one_series(promql: str, metrics: Sequence[Mapping[str, str]]) -> None:
    if len(metrics) <= 1:
        return
    shown = "; ".join(_labels(m) for m in metrics[:_MAX_LABEL_SETS_SHOWN])
    more = f"; and {len(metrics) - _MAX_LABEL_SETS_SHOWN} more" if len(metrics) > _MAX_LABEL_SETS_SHOWN else ""
    raise MetricQueryError(
        f"query {promql!r} returned {len(metrics)} series, but a measurement must be one number: {shown}{more}",
        hint="aggregate the query to a single series, e.g. wrap it in sum(...) or sum by () (...)",
    )


def _api_get(client: httpx.Client, base_url: str, path: str, params: Mapping[str, str], timeout: float) -> Any:
    """GET a Prometheus API endpoint and return its ``data``; every failure is a MetricQueryError."""
    url = base_url.rstrip("/") + path
    try:
        response = client.get(url, params=dict(params), timeout=timeout)
    except httpx.TimeoutException as exc:
        raise MetricQueryError(
            f"Prometheus at {base_url} did not answer within {timeout:g}s ({type(exc).__name__})",
            hint="check that Prometheus is up and not overloaded; a heavy query may need a shorter range",
        ) from exc
    except httpx.HTTPError as exc:
        raise MetricQueryError(
            f"cannot reach Prometheus at {base_url}: {type(exc).__name__}: {exc}",
            hint="check prometheus_url in the analysis settings and that Prometheus is running",
        ) from exc
    # Prometheus answers query errors with 400/422/503 *and* a JSON body saying what is wrong, so the body
    # is read before the status code.
    try:
        envelope = _ApiResponse.model_validate(response.json())
    except (ValueError, ValidationError) as exc:
        snippet = response.text[:200].strip()
        raise MetricQueryError(
            f"{url} answered HTTP {response.status_code} without a Prometheus API response: {snippet!r}",
            hint="prometheus_url must point at the Prometheus server itself (the address its UI is served on)",
        ) from exc
    if envelope.status == "error":
        raise MetricQueryError(
            f"Prometheus rejected query {params.get('query', '')!r}: {envelope.errorType}: {envelope.error}",
            hint="fix the metric's PromQL; try it in Prometheus' /api/v1/query first",
        )
    if response.is_error:
        raise MetricQueryError(f"{url} answered HTTP {response.status_code}", hint="check Prometheus' logs")
    for warning in envelope.warnings:
        logger.warning("Prometheus warning for %r: %s", params.get("query", ""), warning)
    return envelope.data


def _query_data(data: Any) -> _QueryData:
    try:
        return _QueryData.model_validate(data)
    except ValidationError as exc:
        raise MetricQueryError(f"unexpected Prometheus query result: {str(data)[:200]}") from exc


def prometheus_query(client: httpx.Client, base_url: str, promql: str, *, timeout: float = 10) -> float | None:
    """Run an instant PromQL query and return its single value; None when it returned no series."""
    data = _query_data(_api_get(client, base_url, "/api/v1/query", {"query": promql}, timeout))
    try:
        if data.resultType == "scalar":
            return _number(_Sample(value=data.result).value[1])
        if data.resultType == "vector":
            samples = [_Sample.model_validate(s) for s in data.result]
            if not samples:
                return None
            _one_series(promql, [s.metric for s in samples])
            return _number(samples[0].value[1])
    except ValidationError as exc:
        raise MetricQueryError(f"unexpected Prometheus {data.resultType} result: {str(data.result)[:200]}") from exc
    hint = (
        "a range selector like [5m] must be wrapped in a function such as rate(...) or avg_over_time(...)"
        if data.resultType == "matrix"
        else "the query must evaluate to a number"
    )
    raise MetricQueryError(
        f"query {promql!r} returned a {data.resultType}, but a measurement must be one number", hint=hint
    )


def _unix(moment: datetime | float) -> str:
    return f"{moment.timestamp() if isinstance(moment, datetime) else float(moment):.3f}"


def sample_series(
    client: httpx.Client,
    base_url: str,
    promql: str,
    start: datetime | float,
    end: datetime | float,
    step: timedelta | float,
    *,
    timeout: float = 30,
) -> list[float]:
    """Values of a single-series PromQL expression from ``start`` to ``end``, for the statistical judge.

    ``start``/``end`` are datetimes or Unix seconds, ``step`` a timedelta or seconds. An empty answer is an
    empty list; NaN points (steps without traffic) are dropped because they are not observations.
    """
    seconds = step.total_seconds() if isinstance(step, timedelta) else float(step)
    if seconds <= 0:
        raise ValueError(f"step must be positive, got {step!r}")
    params = {"query": promql, "start": _unix(start), "end": _unix(end), "step": f"{seconds:g}"}
    data = _query_data(_api_get(client, base_url, "/api/v1/query_range", params, timeout))
    if data.resultType != "matrix":
        raise MetricQueryError(f"range query {promql!r} returned a {data.resultType}, expected a matrix")
    try:
        series = [_Series.model_validate(s) for s in data.result]
    except ValidationError as exc:
        raise MetricQueryError(f"unexpected Prometheus matrix result: {str(data.result)[:200]}") from exc
    if not series:
        return []
    _one_series(promql, [s.metric for s in series])
    values = [_number(v) for _, v in series[0].values]
    return [v for v in values if not math.isnan(v)]


# --- HTTP smoke checks --------------------------------------------------------------------------


def smoke_check(
    client: httpx.Client, url: str, *, expect_status: Container[int] = DEFAULT_EXPECT_STATUS, timeout: float = 10
) -> float:
    """GET ``url``: 1.0 if the status is in ``expect_status``, 0.0 if not; a MetricQueryError if no answer."""
    try:
        # Redirects are not followed: a 3xx is the preview's own answer, and following one could leave the
        # preview (to a login page, say) and measure something else.
        response = client.get(url, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise MetricQueryError(
            f"smoke check {url} got no answer within {timeout:g}s ({type(exc).__name__})",
            hint="the new colour may be hanging or overloaded; check its pods and logs",
        ) from exc
    except httpx.HTTPError as exc:
        raise MetricQueryError(
            f"smoke check cannot reach {url}: {type(exc).__name__}: {exc}",
            hint="check that the preview Service exists and selects ready pods of the new colour",
        ) from exc
    if response.status_code in expect_status:
        return 1.0
    # The engine only sees 0.0; the status is what a person needs to see why.
    logger.warning("smoke check %s answered HTTP %s, not an expected status", url, response.status_code)
    return 0.0


# --- wiring for run_analysis --------------------------------------------------------------------

_DUMMY_CONTEXT = {name: "x" for name in PLACEHOLDERS}


def _check_http_url(value: str, *, what: str) -> None:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{what} {value!r} is not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{what} {value!r} must be an http:// or https:// URL with a host")


class AnalysisEndpoints(BaseModel):
    """Where release analysis measures: the Prometheus server and the new colour's preview address."""

    model_config = ConfigDict(extra="forbid")

    prometheus_url: str | None = Field(
        None,
        description="Base URL of the Prometheus server, e.g. http://prometheus.monitoring.svc:9090. "
        "Needed by metrics of kind 'prometheus'.",
    )
    preview_url: str = Field(
        "http://{{preview_service}}.{{namespace}}.svc.cluster.local",
        description="Base URL of the new colour for smoke checks; an http metric's query is the path appended "
        "to it. May use the placeholders " + ", ".join("{{" + n + "}}" for n in PLACEHOLDERS) + ".",
    )
    timeout_seconds: float = Field(10, gt=0, description="Seconds one query or smoke check may take.")

    @field_validator("prometheus_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # Parameter forms submit an empty string for a field left blank.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("prometheus_url")
    @classmethod
    def _prometheus_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        _check_http_url(value, what="prometheus_url")
        return value

    @field_validator("preview_url")
    @classmethod
    def _preview_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        # Rendering with stand-in values checks the placeholders and the URL shape before any release runs.
        _check_http_url(render(value, _DUMMY_CONTEXT), what="preview_url")
        return value


def _url_join(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def check_metrics(specs: Sequence[MetricSpec], endpoints: AnalysisEndpoints, context: Mapping[str, str]) -> None:
    """Raise a ConfigError now for what would otherwise make every measurement of a run error.

    Unknown placeholders and a missing prometheus_url cannot fix themselves between retries, so a
    release should stop on them before it starts rather than spend its error budget.
    """
    for spec in specs:
        if spec.kind == "prometheus" and endpoints.prometheus_url is None:
            raise ConfigError(
                f"metric {spec.name!r} is a Prometheus query but no prometheus_url is set",
                hint="set prometheus_url in the analysis settings, or make the metric an http smoke check",
            )
        try:
            render(spec.query, context)
            if spec.kind == "http":
                render(endpoints.preview_url, context)
        except ValueError as exc:
            raise ConfigError(f"metric {spec.name!r}: {exc}", hint="fix the placeholder in the metric") from exc


def make_measure(
    endpoints: AnalysisEndpoints, context: Mapping[str, str], client: httpx.Client
) -> Callable[[MetricSpec], float | None]:
    """The ``measure`` callable for ``run_analysis``: a PromQL query or a smoke check, by ``spec.kind``."""
    context = dict(context)

    def measure(spec: MetricSpec) -> float | None:
        if spec.kind == "prometheus":
            if endpoints.prometheus_url is None:
                raise ConfigError(
                    f"metric {spec.name!r} is a Prometheus query but no prometheus_url is set",
                    hint="set prometheus_url in the analysis settings, or make the metric an http smoke check",
                )
            promql = render(spec.query, context)
            return prometheus_query(client, endpoints.prometheus_url, promql, timeout=endpoints.timeout_seconds)
        if spec.kind == "http":
            url = _url_join(render(endpoints.preview_url, context), render(spec.query, context))
            return smoke_check(client, url, timeout=endpoints.timeout_seconds)
        raise ValueError(f"metric {spec.name!r} has unknown kind {spec.kind!r}")

    return measure
