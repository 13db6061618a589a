"""PUXT synthetic probes: request a URL many times and report how long each phase of a request took.

**Phases.** Timings come from httpx's ``trace`` request extension: httpcore calls the callback with
``<layer>.<step>.started`` / ``.complete`` / ``.failed`` events (layers ``connection``, ``http11`` or ``http2``;
see ``httpcore/_trace.py`` and the ``Trace(...)`` blocks of ``httpcore/_sync/connection.py`` and ``http11.py``).
Per sample, in milliseconds:

- ``connect``: ``connect_tcp.started`` → ``connect_tcp.complete``. httpcore resolves the host inside this step
  (``socket.create_connection``), so it includes DNS.
- ``tls``: ``start_tls.started`` → ``start_tls.complete`` (https only).
- ``send``: ``send_request_headers.started`` → ``send_request_body.complete``.
- ``ttfb``: ``receive_response_headers.started`` → ``.complete``: from the request being sent to the response
  headers being read, i.e. server think time plus one round trip.
- ``download``: ``receive_response_body.started`` → ``.complete``.
- ``total``: wall time from handing the request to the client until the body is read (connection set-up,
  pool wait and all the phases above), measured around the call rather than from trace events.

**Connections.** By default every sample uses a new connection (the request says ``Connection: close``), so
``connect`` and ``tls`` are measured on every sample and each sample is what a first-time visitor waits for.
With ``new_connection_per_sample=False`` samples reuse keep-alive connections: the first sample (per
concurrent worker) is cold, later ones are warm, and ``connect``/``tls`` statistics only cover the cold ones.
A phase that never happened in a sample is absent from it, never counted as zero ("where available").

**Failures.** A sample fails on a transport error (reason ``connection refused``, ``timeout (read)``,
``timeout (connect)``, ``name resolution failed``, ``TLS error``, ``protocol error``, ...) or an HTTP status of
400 or more (reason ``HTTP 503``): the latency of an error page says nothing about the page. Redirects are not
followed; a 3xx is a successful sample of the URL as given. Failed samples are counted by reason and kept out
of the percentiles. Status: ``ok`` (no failures), ``degraded`` (some) or ``failed`` (every sample failed; then
there are no phase statistics at all, not zeros).

**Percentiles.** ``numpy.percentile`` with ``method="linear"`` (Hyndman & Fan type 7, numpy's default): the
p-th percentile interpolates linearly between the two nearest order statistics at rank ``p/100 * (n - 1)``.
With 50 samples p99 sits between the two slowest samples; ask for more samples for a stable p99.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd

from framework2.errors import DataError

PHASES: tuple[str, ...] = ("connect", "tls", "send", "ttfb", "download", "total")
# Phase name -> (trace step that starts it, trace step that ends it), without the layer prefix.
_TRACE_SPANS: dict[str, tuple[str, str]] = {
    "connect": ("connect_tcp.started", "connect_tcp.complete"),
    "tls": ("start_tls.started", "start_tls.complete"),
    "send": ("send_request_headers.started", "send_request_body.complete"),
    "ttfb": ("receive_response_headers.started", "receive_response_headers.complete"),
    "download": ("receive_response_body.started", "receive_response_body.complete"),
}
PERCENTILE_METHOD = "linear"
# Statuses from this one up fail a sample.
FAILING_STATUS = 400


@dataclass(frozen=True)
class Sample:
    """One request: its phase timings in ms (None where the phase did not happen) or why it failed."""

    index: int
    ok: bool
    status_code: int | None
    reason: str | None
    connect_ms: float | None = None
    tls_ms: float | None = None
    send_ms: float | None = None
    ttfb_ms: float | None = None
    download_ms: float | None = None
    total_ms: float | None = None

    @property
    def new_connection(self) -> bool:
        """Whether this sample opened a connection (and so has a ``connect`` timing)."""
        return self.connect_ms is not None

    def phase_ms(self, phase: str) -> float | None:
        """The timing of ``phase`` (one of :data:`PHASES`) in ms, None when it did not happen."""
        return getattr(self, f"{phase}_ms")


@dataclass(frozen=True)
class PhaseStats:
    """Percentiles of one phase over the successful samples where it happened, in ms."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of :func:`probe`: counts, failures by reason, phase percentiles and the raw samples."""

    url: str
    started_at: datetime
    status: str  # "ok" | "degraded" | "failed"
    samples_ok: int
    samples_failed: int
    failures: dict[str, int]
    phases: dict[str, PhaseStats]
    status_codes: dict[int, int]
    new_connection_per_sample: bool
    duration_s: float
    samples: tuple[Sample, ...] = field(default=(), repr=False)

    @property
    def samples_total(self) -> int:
        """Samples attempted."""
        return self.samples_ok + self.samples_failed

    @property
    def failure_rate(self) -> float:
        """Share of samples that failed (0 with no samples)."""
        return self.samples_failed / self.samples_total if self.samples_total else 0.0

    def phase(self, name: str) -> PhaseStats | None:
        """Statistics of phase ``name``, None when no successful sample had it."""
        return self.phases.get(name)

    def samples_frame(self) -> pd.DataFrame:
        """One row per sample (failed ones included, with their reason), for storage or plotting."""
        columns = [f.name for f in Sample.__dataclass_fields__.values()]
        return pd.DataFrame([asdict(s) for s in self.samples], columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (raw samples left out; see :meth:`samples_frame`)."""
        return {
            "url": self.url,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "samples_ok": self.samples_ok,
            "samples_failed": self.samples_failed,
            "failures": dict(self.failures),
            "phases": {name: asdict(stats) for name, stats in self.phases.items()},
            "status_codes": {str(code): n for code, n in self.status_codes.items()},
            "new_connection_per_sample": self.new_connection_per_sample,
            "duration_s": self.duration_s,
        }


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise DataError(f"cannot probe {url!r}: not a valid URL ({exc})", "use e.g. https://shop.example/") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DataError(f"cannot probe {url!r}: only http(s) URLs with a host", "use e.g. https://shop.example/")


def failure_reason(exc: Exception) -> str:
    """A short, countable reason for a transport error (``connection refused``, ``timeout (read)``...)."""
    text = str(exc).lower()
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connect",
            httpx.ReadTimeout: "read",
            httpx.WriteTimeout: "write",
            httpx.PoolTimeout: "pool",
        }.get(type(exc), "")
        return f"timeout ({kind})" if kind else "timeout"
    if isinstance(exc, httpx.ConnectError):
        if "refused" in text:
            return "connection refused"
        if any(s in text for s in ("name or service", "nodename", "getaddrinfo", "name resolution", "no address")):
            return "name resolution failed"
        if "ssl" in text or "certificate" in text or "tls" in text:
            return "TLS error"
        return "connect error"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol error"
    if isinstance(exc, httpx.NetworkError):
        return "network error"
    return type(exc).__name__


def _one_sample(client: httpx.Client, index: int, url: str, headers: dict[str, str], timeout_s: float) -> Sample:
    # Last time seen per trace step, layer prefix dropped so http11 and http2 read the same; "last" keeps the
    # successful attempt when the transport retried a connect.
    marks: dict[str, float] = {}

    def trace(event: str, info: Mapping[str, Any]) -> None:
        marks[event.split(".", 1)[-1]] = time.perf_counter()

    request = client.build_request("GET", url, headers=headers, timeout=timeout_s, extensions={"trace": trace})
    start = time.perf_counter()
    try:
        response = client.send(request, stream=True, follow_redirects=False)
        try:
            response.read()
            end = time.perf_counter()
        finally:
            response.close()
    except httpx.HTTPError as exc:
        return Sample(index=index, ok=False, status_code=None, reason=failure_reason(exc))
    timings = {
        f"{phase}_ms": (marks[stop] - marks[begin]) * 1000.0
        for phase, (begin, stop) in _TRACE_SPANS.items()
        if begin in marks and stop in marks
    }
    status = response.status_code
    failed = status >= FAILING_STATUS
    return Sample(
        index=index,
        ok=not failed,
        status_code=status,
        reason=f"HTTP {status}" if failed else None,
        total_ms=(end - start) * 1000.0,
        **timings,
    )


def phase_stats(values_ms: np.ndarray) -> PhaseStats:
    """p50/p95/p99 (numpy ``linear`` method), mean, min and max of ``values_ms``."""
    values = np.asarray(values_ms, dtype=float)
    p50, p95, p99 = np.percentile(values, [50, 95, 99], method=PERCENTILE_METHOD)
    return PhaseStats(
        count=int(values.size),
        p50=float(p50),
        p95=float(p95),
        p99=float(p99),
        mean=float(values.mean()),
        min=float(values.min()),
        max=float(values.max()),
    )


def summarise_samples(
    url: str,
    samples: list[Sample],
    *,
    started_at: datetime,
    duration_s: float = 0.0,
    new_connection_per_sample: bool = True,
) -> ProbeResult:
    """Fold raw samples into a :class:`ProbeResult` (also for samples collected elsewhere)."""
    ok = [s for s in samples if s.ok]
    failures: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            reason = s.reason or "unknown"
            failures[reason] = failures.get(reason, 0) + 1
    codes: dict[int, int] = {}
    for s in samples:
        if s.status_code is not None:
            codes[s.status_code] = codes.get(s.status_code, 0) + 1
    phases: dict[str, PhaseStats] = {}
    for phase in PHASES:
        values = np.array([v for s in ok if (v := s.phase_ms(phase)) is not None], dtype=float)
        if values.size:
            phases[phase] = phase_stats(values)
    if not ok:
        status = "failed"
    elif failures:
        status = "degraded"
    else:
        status = "ok"
    return ProbeResult(
        url=url,
        started_at=started_at,
        status=status,
        samples_ok=len(ok),
        samples_failed=len(samples) - len(ok),
        failures=dict(sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        phases=phases,
        status_codes=dict(sorted(codes.items())),
        new_connection_per_sample=new_connection_per_sample,
        duration_s=duration_s,
        samples=tuple(samples),
    )


def probe(
    url: str,
    *,
    samples: int = 50,
    timeout_s: float = 10,
    concurrency: int = 1,
    headers: Mapping[str, str] | None = None,
    client: httpx.Client | None = None,
    new_connection_per_sample: bool = True,
) -> ProbeResult:
    """GET ``url`` ``samples`` times (``concurrency`` at once) and summarise phase timings and failures.

    ``timeout_s`` is httpx's per-operation timeout (connect, each read, each write, pool wait), not a cap on a
    whole sample. A given ``client`` is used as is (its transport, TLS settings, proxies) and not closed.
    """
    _check_url(url)
    if samples < 1:
        raise DataError(f"samples must be at least 1, got {samples}", "50 or more give stable p95s")
    if concurrency < 1:
        raise DataError(f"concurrency must be at least 1, got {concurrency}", "use 1 for sequential samples")
    if timeout_s <= 0:
        raise DataError(f"timeout_s must be positive, got {timeout_s}", "use e.g. 10")
    sent_headers = dict(headers or {})
    if new_connection_per_sample:
        sent_headers["Connection"] = "close"
    own_client = client is None
    # Enough pooled connections that concurrent samples never queue for one (queueing would count as latency).
    limits = httpx.Limits(max_connections=max(concurrency, 100), max_keepalive_connections=max(concurrency, 20))
    http = client if client is not None else httpx.Client(timeout=timeout_s, limits=limits)
    started_at = datetime.now(UTC)
    clock = time.perf_counter()
    try:
        if concurrency == 1:
            results = [_one_sample(http, i, url, sent_headers, timeout_s) for i in range(samples)]
        else:
            with ThreadPoolExecutor(max_workers=min(concurrency, samples), thread_name_prefix="probe") as pool:
                results = list(pool.map(lambda i: _one_sample(http, i, url, sent_headers, timeout_s), range(samples)))
    finally:
        if own_client:
            http.close()
    return summarise_samples(
        url,
        results,
        started_at=started_at,
        duration_s=time.perf_counter() - clock,
        new_connection_per_sample=new_connection_per_sample,
    )
