"""A small blue-green demo web app for tests, the benchmark and the demo of PLOS release analysis.

One process stands in for the pods of both colours: ``/blue/...`` and ``/green/...`` answer with each
colour's current behaviour (error rate and latency), so a preview URL template such as
``http://127.0.0.1:PORT/{{colour}}`` reaches "the new colour". ``/metrics`` exposes, in Prometheus' text
format, what a real app would:

* ``demo_http_requests_total{colour, code}`` — a counter of answered requests;
* ``demo_http_request_duration_seconds{colour}`` — a histogram of how long they took.

A load generator per colour sends requests (20 per second by default) so Prometheus has rates to
compute without outside traffic; setting a colour's load to 0 models a colour nobody calls.

    app = DemoApp().start()
    app.set_behaviour("green", **behaviour_for_image("shop:2.0-faulty").model_dump())
    app.set_load("blue", 0)
    ...
    app.stop()

Behaviour can also be changed over HTTP, for the demo:
``POST /admin/green?error_rate=0.3&latency=0.3`` (also ``image=<image>`` and ``load=<requests per second>``);
``GET /admin/green`` shows it.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

COLOURS = ("blue", "green")
BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CODES = ("200", "500")
DEFAULT_LOAD = 20.0
# Latency is drawn from latency_seconds * [1 - JITTER, 1 + JITTER]; without spread every request of a
# colour would land in one bucket and statistical tests would see nothing but ties.
JITTER = 0.2
# Requests of the load generators in flight at once; beyond this it sheds load instead of piling up threads.
MAX_IN_FLIGHT = 64


class Behaviour(BaseModel):
    """How one colour answers."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(0.0, ge=0, le=1, description="Share of requests answered with HTTP 500.")
    latency_seconds: float = Field(0.005, ge=0, le=30, description="Typical time to answer, in seconds.")


HEALTHY = Behaviour()
FAULTY = Behaviour(error_rate=0.3, latency_seconds=0.3)
SLOW = Behaviour(error_rate=0.0, latency_seconds=0.6)


def behaviour_for_image(image: str) -> Behaviour:
    """The behaviour of a release of ``image``: a tag with "faulty" or "slow" says how it misbehaves.

    ``shop:2.0-faulty`` answers 30 % of requests with 500 after ~0.3 s, ``shop:2.0-slow`` answers all
    after ~0.6 s, anything else is healthy (~5 ms, no errors). Without a tag the image name is read.
    """
    name = image.split("@", 1)[0].rsplit("/", 1)[-1]
    tag = name.split(":", 1)[1] if ":" in name else name
    tag = tag.lower()
    if "faulty" in tag:
        return FAULTY
    if "slow" in tag:
        return SLOW
    return HEALTHY


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(float(value))


class _Histogram:
    """Cumulative-bucket bookkeeping for one colour."""

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.count += 1
        self.sum += seconds
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1


class DemoApp:
    """The demo app on ``host:port`` (a free loopback port by default) with its load generators."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int = 0, load_per_second: float = DEFAULT_LOAD, seed: int | None = None
    ) -> None:
        if load_per_second < 0:
            raise ValueError(f"load_per_second must not be negative, got {load_per_second}")
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._default_load = load_per_second
        self._behaviour: dict[str, Behaviour] = dict.fromkeys(COLOURS, HEALTHY)
        self._load: dict[str, float] = dict.fromkeys(COLOURS, load_per_second)
        # Counters start at 0 for every colour and code, as Prometheus recommends: a series that appears
        # with its first increment loses that increment to rate().
        self._requests: dict[tuple[str, str], int] = {(c, code): 0 for c in COLOURS for code in CODES}
        self._durations: dict[str, _Histogram] = {c: _Histogram() for c in COLOURS}
        self._in_flight = 0
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._server_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="demo-app-http", daemon=True
        )
        self._generators = [
            threading.Thread(target=self._generate, args=(c,), name=f"demo-app-load-{c}", daemon=True) for c in COLOURS
        ]
        self._pool = ThreadPoolExecutor(max_workers=MAX_IN_FLIGHT, thread_name_prefix="demo-app-request")
        self._client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=MAX_IN_FLIGHT))
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the app listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        host = self._httpd.server_address[0]
        return f"http://{host}:{self.port}"

    def colour_url(self, colour: str) -> str:
        """Base URL of one colour, e.g. ``http://127.0.0.1:PORT/green``."""
        self._check_colour(colour)
        return f"{self.url}/{colour}"

    def start(self) -> DemoApp:
        """Serve and generate load in background threads."""
        if self._started:
            raise RuntimeError("the demo app is already started")
        self._started = True
        self._server_thread.start()
        for thread in self._generators:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop the load, wake sleeping handlers and release the port."""
        self._stopping.set()
        for thread in self._generators:
            if thread.is_alive():
                thread.join(timeout=5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
        if self._started:
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._server_thread.is_alive():
            self._server_thread.join(timeout=5)

    def __enter__(self) -> DemoApp:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- behaviour ---------------------------------------------------------------------------------

    @staticmethod
    def _check_colour(colour: str) -> None:
        if colour not in COLOURS:
            raise ValueError(f"colour must be one of {', '.join(COLOURS)}, got {colour!r}")

    def set_behaviour(self, colour: str, error_rate: float = 0.0, latency_seconds: float = 0.005) -> Behaviour:
        """Make ``colour`` answer ``error_rate`` of its requests with 500, after about ``latency_seconds``."""
        self._check_colour(colour)
        behaviour = Behaviour(error_rate=error_rate, latency_seconds=latency_seconds)
        with self._lock:
            self._behaviour[colour] = behaviour
        return behaviour

    def set_image(self, colour: str, image: str) -> Behaviour:
        """Make ``colour`` behave like a release of ``image`` (see :func:`behaviour_for_image`)."""
        behaviour = behaviour_for_image(image)
        return self.set_behaviour(colour, behaviour.error_rate, behaviour.latency_seconds)

    def behaviour(self, colour: str) -> Behaviour:
        """The current behaviour of ``colour``."""
        self._check_colour(colour)
        with self._lock:
            return self._behaviour[colour]

    def set_load(self, colour: str, requests_per_second: float) -> None:
        """Requests per second the built-in generator sends to ``colour``; 0 turns its traffic off."""
        self._check_colour(colour)
        if requests_per_second < 0:
            raise ValueError(f"requests_per_second must not be negative, got {requests_per_second}")
        with self._lock:
            self._load[colour] = float(requests_per_second)

    def load(self, colour: str) -> float:
        """Requests per second the generator currently sends to ``colour``."""
        self._check_colour(colour)
        with self._lock:
            return self._load[colour]

    def reset(self) -> None:
        """Both colours healthy at the default load. Counters keep counting, as a real app's would."""
        with self._lock:
            for colour in COLOURS:
                self._behaviour[colour] = HEALTHY
                self._load[colour] = self._default_load

    def requests_served(self, colour: str) -> int:
        """Requests ``colour`` has answered so far, any status."""
        self._check_colour(colour)
        with self._lock:
            return sum(n for (c, _), n in self._requests.items() if c == colour)

    # --- serving -----------------------------------------------------------------------------------

    def _serve_colour(self, colour: str) -> int:
        """Wait like ``colour`` does, record the request, and return the status to answer with."""
        started = time.perf_counter()
        with self._lock:
            behaviour = self._behaviour[colour]
            jitter = self._random.uniform(1 - JITTER, 1 + JITTER)
            failed = self._random.random() < behaviour.error_rate
        # Waiting on the stop event lets stop() finish without waiting out slow answers.
        self._stopping.wait(behaviour.latency_seconds * jitter)
        status = 500 if failed else 200
        elapsed = time.perf_counter() - started
        with self._lock:
            key = (colour, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            self._durations[colour].observe(elapsed)
        return status

    def metrics_text(self) -> str:
        """The metrics in Prometheus' text exposition format (version 0.0.4)."""
        with self._lock:
            requests = dict(self._requests)
            histograms = {
                c: (list(h.buckets), h.count, h.sum) for c, h in self._durations.items()
            }  # copied under the lock so one scrape is consistent
        lines = [
            "# HELP demo_http_requests_total HTTP requests answered, by colour and status code.",
            "# TYPE demo_http_requests_total counter",
        ]
        for (colour, code), count in sorted(requests.items()):
            lines.append(f'demo_http_requests_total{{colour="{_label_value(colour)}",code="{code}"}} {count}')
        lines += [
            "# HELP demo_http_request_duration_seconds Time taken to answer HTTP requests, by colour.",
            "# TYPE demo_http_request_duration_seconds histogram",
        ]
        for colour, (buckets, count, total) in sorted(histograms.items()):
            label = f'colour="{_label_value(colour)}"'
            for bound, cumulative in zip(BUCKETS, buckets, strict=True):
                lines.append(f'demo_http_request_duration_seconds_bucket{{{label},le="{_number(bound)}"}} {cumulative}')
            lines.append(f'demo_http_request_duration_seconds_bucket{{{label},le="+Inf"}} {count}')
            lines.append(f"demo_http_request_duration_seconds_sum{{{label}}} {_number(total)}")
            lines.append(f"demo_http_request_duration_seconds_count{{{label}}} {count}")
        return "\n".join(lines) + "\n"

    def _admin(self, colour: str, method: str, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        if method == "POST":
            params = {k: v[-1] for k, v in query.items()}
            unknown = sorted(set(params) - {"error_rate", "latency", "image", "load"})
            if unknown:
                return 400, {"error": f"unknown parameter(s) {unknown}; use error_rate, latency, image, load"}
            try:
                if "image" in params:
                    self.set_image(colour, params["image"])
                if "error_rate" in params or "latency" in params:
                    current = self.behaviour(colour)
                    self.set_behaviour(
                        colour,
                        float(params.get("error_rate", current.error_rate)),
                        float(params.get("latency", current.latency_seconds)),
                    )
                if "load" in params:
                    self.set_load(colour, float(params["load"]))
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                return 400, {"error": problems}
            except ValueError as exc:
                return 400, {"error": str(exc)}
        return 200, {"colour": colour, **self.behaviour(colour).model_dump(), "load_per_second": self.load(colour)}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        app = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, body: str | dict[str, Any], content_type: str = "text/plain") -> None:
                if isinstance(body, dict):
                    payload, content_type = json.dumps(body).encode(), "application/json"
                else:
                    payload = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type + "; charset=utf-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout, or the app is stopping)

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                segments = [s for s in parts.path.split("/") if s]
                if parts.path == "/metrics" and self.command == "GET":
                    self._reply(200, app.metrics_text(), "text/plain; version=0.0.4")
                elif len(segments) == 2 and segments[0] == "admin" and segments[1] in COLOURS:
                    if self.command not in ("GET", "POST"):
                        self._reply(405, "use GET or POST")
                        return
                    status, body = app._admin(segments[1], self.command, parse_qs(parts.query))
                    self._reply(status, body)
                elif segments and segments[0] in COLOURS and self.command in ("GET", "HEAD"):
                    colour = segments[0]
                    status = app._serve_colour(colour)
                    if status == 200:
                        self._reply(200, "ok\n" if segments[1:] == ["healthz"] else f"hello from {colour}\n")
                    else:
                        self._reply(status, f"{colour} failed this request (demo fault injection)\n")
                else:
                    self._reply(
                        404,
                        "paths: GET /blue/, /blue/healthz, /green/, /green/healthz, /metrics; "
                        "GET or POST /admin/<colour>?error_rate=&latency=&image=&load=\n",
                    )

            do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _handle

            def log_message(self, format: str, *args: Any) -> None:
                # Forty requests a second would drown every other log line.
                pass

        return Handler

    # --- load --------------------------------------------------------------------------------------

    def _generate(self, colour: str) -> None:
        """Send ``load`` requests per second to ``colour``, open loop, until the app stops."""
        next_at = time.monotonic()
        while not self._stopping.is_set():
            rate = self.load(colour)
            now = time.monotonic()
            if rate <= 0:
                next_at = now
                self._stopping.wait(0.05)
                continue
            # Open loop: requests go out on schedule however slow the answers are, as users' would; after
            # a stall (or a change of rate) the schedule restarts instead of bursting to catch up.
            next_at += 1 / rate
            if next_at < now - 0.5 or next_at > now + 1 / rate:
                next_at = now
            if next_at > now and self._stopping.wait(next_at - now):
                break
            with self._lock:
                if self._in_flight >= MAX_IN_FLIGHT:
                    continue
                self._in_flight += 1
            try:
                self._pool.submit(self._hit, colour)
            except RuntimeError:  # the pool shut down while stopping
                break

    def _hit(self, colour: str) -> None:
        try:
            self._client.get(f"{self.url}/{colour}/")
        except httpx.HTTPError:
            pass  # the answer does not matter, only that the app counted it
        finally:
            with self._lock:
                self._in_flight -= 1


def main() -> None:
    """Run the demo app in the foreground: ``python -m framework2.sample.demo_app [port]``."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    app = DemoApp(port=port).start()
    print(f"demo app on {app.url} (metrics at {app.url}/metrics); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        app.stop()


if __name__ == "__main__":
    main()
