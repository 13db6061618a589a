"""A real HTTP server on loopback for tests: register canned replies, then read what was received.

Used wherever the product talks HTTP (competitor feeds, webhook notifications): the code under test
uses its real client against ``server.url_for("/path")`` instead of a mocked transport.

    def test_something(http_server):
        http_server.route("/offers", Reply(500), Reply(200, body={"offers": []}))  # 500 once, then 200
        http_server.route("/hook", method="POST")                                   # 200, empty body
        ...
        assert http_server.requests_to("/offers")[0].headers["authorization"] == "Bearer t"
        [hook] = http_server.wait_for_requests(1, path="/hook")                     # for async senders

Replies for a route are served in order and the last one repeats. A path nobody registered answers
404, so a wrong URL in a test fails loudly instead of hanging.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

JsonLike = dict[str, Any] | list[Any]


@dataclass(frozen=True)
class Reply:
    """One canned response; ``delay`` seconds pass before the status line is sent."""

    status: int = 200
    body: bytes | str | JsonLike = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        """The body as bytes and the headers, with a content type guessed from the body's type."""
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            body = self.body
        elif isinstance(self.body, str):
            body = self.body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        else:
            body = json.dumps(self.body).encode()
            headers.setdefault("Content-Type", "application/json")
        return body, headers


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the server saw it; header names are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


class LoopbackHTTPServer:
    """A threaded ``http.server`` bound to 127.0.0.1 on a free port."""

    def __init__(self) -> None:
        self._routes: dict[tuple[str, str], list[Reply]] = {}
        self._served: dict[tuple[str, str], int] = {}
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._received = threading.Condition(self._lock)
        # Set on close so handlers sleeping through a long delay wake up instead of outliving the test.
        self._closing = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll keeps shutdown (once per test) from costing the default half second.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="loopback-http", daemon=True
        )

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.url + (path if path.startswith("/") else "/" + path)

    def route(self, path: str, *replies: Reply, method: str = "GET") -> None:
        """Answer ``method path`` with ``replies`` in order (the last repeats); default is an empty 200."""
        with self._lock:
            self._routes[(method.upper(), path)] = list(replies) or [Reply()]
            self._served[(method.upper(), path)] = 0

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str | None = None) -> list[ReceivedRequest]:
        """Requests received for ``path`` (and ``method`` when given)."""
        return [r for r in self.requests if r.path == path and (method is None or r.method == method.upper())]

    def wait_for_requests(self, count: int, path: str | None = None, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Block until ``count`` requests (to ``path`` if given) arrived; fail the test on timeout."""

        def matching() -> list[ReceivedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        deadline = time.monotonic() + timeout
        with self._received:
            while len(matching()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = len(matching())
                    raise AssertionError(f"expected {count} request(s) to {path or 'any path'}, got {got}")
                self._received.wait(remaining)
            return matching()

    def reset(self) -> None:
        """Forget routes and received requests."""
        with self._lock:
            self._routes.clear()
            self._served.clear()
            self._requests.clear()

    def start(self) -> LoopbackHTTPServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackHTTPServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record_and_pick(self, request: ReceivedRequest) -> Reply:
        key = (request.method, request.path)
        with self._received:
            self._requests.append(request)
            self._received.notify_all()
            replies = self._routes.get(key)
            if replies is None:
                known = ", ".join(f"{m} {p}" for m, p in self._routes) or "none"
                return Reply(404, f"no route for {request.method} {request.path}; routes: {known}")
            index = min(self._served[key], len(replies) - 1)
            self._served[key] += 1
            return replies[index]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = ReceivedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parts.query,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    received_at=time.time(),
                )
                reply = server._record_and_pick(request)
                if reply.delay and server._closing.wait(reply.delay):
                    return
                payload, headers = reply.encoded()
                try:
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (a timeout test); nothing is listening for this reply.
                    pass

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                # Keep pytest output readable; tests inspect `requests` instead.
                pass

        return Handler


# The explicit name lets a test module import this under an alias (avoiding ruff F811 on parameters)
# and still request it as `http_server`.
@pytest.fixture(name="http_server")
def http_server() -> Iterator[LoopbackHTTPServer]:
    """A fresh loopback HTTP server per test."""
    with LoopbackHTTPServer() as server:
        yield server
