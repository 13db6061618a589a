"""Sample data for PUXT performance: real-user measurements of two releases with planted effects, and a tiny local
app with a configurable delay per path for the synthetic probes.

**Planted effects of** :func:`sample_rum` (tests and the demo rely on them). Releases ``v1.4.0`` (baseline,
first week) and ``v1.5.0`` (candidate, the week after); pages ``/``, ``/product``, ``/checkout``; metrics LCP,
INP, CLS, TTFB, FCP. Every value is lognormal, ``median * exp(sigma * z)``; a release effect multiplies the
median, so every percentile moves by the same factor.

- ``/checkout`` LCP: x 1.25 in v1.5.0 (p75 +25 %, rating from good to needs improvement; Cliff's delta about
  0.27, "small"): a clear **regression**.
- ``/`` INP: x 1.08 in v1.5.0 (p75 +8 %, Cliff's delta about 0.09, "negligible"): with 2000 samples per release
  it is statistically significant but below the practical threshold, so **not** a regression.
- Everything else: identical distributions in both releases.

Samples per metric and release: ``/`` 2000 (the home page gets the traffic), ``/product`` 600, ``/checkout``
400. With ``dirty=True`` seven invalid rows are appended, one per quarantine reason (unknown metric, negative
value, implausible CLS, implausible LCP, missing page, non-numeric value, missing timestamp).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pandas as pd

BASELINE_RELEASE = "v1.4.0"
CANDIDATE_RELEASE = "v1.5.0"
PAGES: tuple[str, ...] = ("/", "/product", "/checkout")
SAMPLES_PER_RELEASE: dict[str, int] = {"/": 2000, "/product": 600, "/checkout": 400}
# (median, sigma of the log) per page and metric in the baseline; ms except CLS.
BASELINE: dict[str, dict[str, tuple[float, float]]] = {
    "/": {"LCP": (1800, 0.45), "INP": (120, 0.5), "CLS": (0.04, 0.6), "TTFB": (350, 0.4), "FCP": (1100, 0.4)},
    "/product": {"LCP": (2200, 0.45), "INP": (150, 0.5), "CLS": (0.06, 0.6), "TTFB": (420, 0.4), "FCP": (1300, 0.4)},
    "/checkout": {"LCP": (1700, 0.45), "INP": (140, 0.5), "CLS": (0.03, 0.6), "TTFB": (380, 0.4), "FCP": (1000, 0.4)},
}
# Planted candidate effects: (page, metric) -> factor on every percentile.
PLANTED: dict[tuple[str, str], float] = {("/checkout", "LCP"): 1.25, ("/", "INP"): 1.08}
RELEASE_STARTS: dict[str, pd.Timestamp] = {
    BASELINE_RELEASE: pd.Timestamp("2025-03-03", tz="UTC"),
    CANDIDATE_RELEASE: pd.Timestamp("2025-03-10", tz="UTC"),
}


def _dirty_rows(at: pd.Timestamp) -> pd.DataFrame:
    rows: list[dict[str, Any]] = [
        {"page": "/", "release": BASELINE_RELEASE, "metric": "FID", "value": 12.0, "timestamp": at},
        {"page": "/", "release": BASELINE_RELEASE, "metric": "LCP", "value": -5.0, "timestamp": at},
        {"page": "/product", "release": CANDIDATE_RELEASE, "metric": "CLS", "value": 12.0, "timestamp": at},
        {"page": "/product", "release": CANDIDATE_RELEASE, "metric": "LCP", "value": 75_000.0, "timestamp": at},
        {"page": None, "release": CANDIDATE_RELEASE, "metric": "INP", "value": 90.0, "timestamp": at},
        {"page": "/checkout", "release": CANDIDATE_RELEASE, "metric": "TTFB", "value": "n/a", "timestamp": at},
        {"page": "/checkout", "release": BASELINE_RELEASE, "metric": "FCP", "value": 900.0, "timestamp": None},
    ]
    return pd.DataFrame(rows)


def sample_rum(seed: int = 0, *, dirty: bool = False) -> pd.DataFrame:
    """RUM beacons (``page, release, metric, value, timestamp``) with the planted effects of the module docstring."""
    rng = np.random.default_rng(seed)
    week_s = 7 * 24 * 3600
    frames = []
    for release, start in RELEASE_STARTS.items():
        for page in PAGES:
            n = SAMPLES_PER_RELEASE[page]
            for metric, (median, sigma) in BASELINE[page].items():
                factor = PLANTED.get((page, metric), 1.0) if release == CANDIDATE_RELEASE else 1.0
                values = median * factor * np.exp(sigma * rng.standard_normal(n))
                offsets = pd.to_timedelta(np.sort(rng.uniform(0, week_s, n)), unit="s")
                frames.append(
                    pd.DataFrame(
                        {
                            "page": page,
                            "release": release,
                            "metric": metric,
                            "value": values,
                            "timestamp": start + offsets,
                        }
                    )
                )
    data = pd.concat(frames, ignore_index=True)
    if dirty:
        data = data.astype({"value": object})
        data = pd.concat([data, _dirty_rows(RELEASE_STARTS[CANDIDATE_RELEASE])], ignore_index=True)
    return data


@contextmanager
def serve_slow_app(delays_ms: Mapping[str, float], *, body_bytes: int = 2048) -> Iterator[str]:
    """A local app on 127.0.0.1 (free port) answering each path of ``delays_ms`` with 200 after that delay.

    Other paths answer 404 at once. Yields the base URL (no trailing slash); the server stops on exit.
    """
    delays = {path: max(float(ms), 0.0) / 1000.0 for path, ms in delays_ms.items()}
    body = (b"<!doctype html><title>demo</title>" + b"x" * body_bytes)[:body_bytes]
    # Set on exit so handlers sleeping through a delay wake up instead of outliving the server.
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless the client says Connection: close

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path not in delays:
                self._reply(404, b"not found")
                return
            if delays[path] and stopping.wait(delays[path]):
                return
            self._reply(200, body)

        def _reply(self, status: int, payload: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the probe reports what matters

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
