"""The outbox relay against the session's real Prefect server: every accepted webhook becomes exactly one event,
also when the relay sends it twice, when Prefect is down, and when Prefect took it but the answer was lost.

A loopback TCP forwarder stands between the relay and Prefect so a test can stop "the Prefect API" at a fixed
address and bring it back, or let requests through while dropping Prefect's answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from framework2.service import outbox
from framework2.service.app import create_app
from framework2.store.engine import open_store, session_scope
from framework2.store.models import WebhookDelivery
from tests.conftest import free_port
from tests.test_webhooks import PATH, make_secret, make_settings, rows, serve, signed

# The session's Prefect server, late in a long run on a loaded 2-core machine, has been seen to take over 10 s
# (the relay's own timeout) to answer; steps that must succeed get this much patience.
SLOW_SERVER = 60.0


class Forwarder:
    """A TCP forwarder on a fixed loopback port to ``upstream``: ``forward``, ``drop_answers`` (the request
    reaches Prefect, the reply never reaches the client) or stopped (connection refused)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.mode = "forward"
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self, mode: str = "forward") -> None:
        self.mode = mode
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            # shutdown first: a plain close leaves the socket listening while accept() blocks on it (Linux).
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.create_connection(self.upstream)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self.mode == "drop_answers":
                    # Prefect has answered, so it has the events; the client never learns that.
                    target.shutdown(socket.SHUT_RDWR)
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture
def forwarder(prefect_server: str) -> Iterator[Forwarder]:
    url = httpx.URL(prefect_server)
    proxy = Forwarder((url.host, url.port or 80))
    proxy.start()
    yield proxy
    proxy.stop()


def prefect_events(
    api: str, ids: list[str], expected: int, *, where: dict[str, Any] | None = None, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Stored Prefect events with these ids (or matching ``where``), read through the REST API. The persister
    flushes every few seconds, so this waits until ``expected`` are there (the table cannot hold an id twice)."""
    deadline = time.monotonic() + timeout
    query = {"filter": where or {"id": {"id": ids}}, "limit": 50}
    while True:
        answer = httpx.post(f"{api}/events/filter", json=query, timeout=10)
        answer.raise_for_status()
        page = answer.json()
        events = page["events"]
        while page.get("next_page"):
            page = httpx.get(page["next_page"], timeout=10).json()
            events += page["events"]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def enqueue(engine: Any, n: int, prefix: str) -> list[WebhookDelivery]:
    return [
        outbox.enqueue(
            engine,
            source="framework-set-2",
            delivery_id=f"{prefix}-{i}",
            system="ppms",
            event="tasks.changed",
            payload={"key": f"{prefix}-{i}", "n": i},
        )[0]
        for i in range(n)
    ]


def test_relay_hands_each_webhook_to_prefect_as_exactly_one_event(prefect_server: str, store_url: str) -> None:
    name, value = make_secret()
    with TestClient(create_app(make_settings(name), relay=False)) as client:
        accepted = []
        for i in range(3):
            document = {"system": "ppms", "event": "tasks.changed", "data": {"key": f"PAY-{i}"}}
            body, headers = signed(value, document, delivery=f"relay-{i}")
            answer = client.post(PATH, content=body, headers=headers)
            assert answer.status_code == 202
            accepted.append(answer.json())
    engine = open_store()
    assert outbox.queue_depth(engine) == 3
    # An automation on these events: Prefect must act on each webhook once, however often it is sent.
    automation = httpx.post(
        f"{prefect_server}/automations/",
        json={
            "name": "webhook relay test",
            "trigger": {
                "type": "event",
                "match": {"prefect.resource.id": "framework2.system.ppms"},
                "expect": ["framework2.ppms.tasks.changed"],
                "posture": "Reactive",
                "threshold": 1,
                "within": 0,
            },
            "actions": [{"type": "do-nothing"}],
        },
        timeout=SLOW_SERVER,
    )
    automation.raise_for_status()
    automation_id = automation.json()["id"]
    prefect = outbox.prefect_api_client(prefect_server, timeout=SLOW_SERVER)
    try:
        assert outbox.relay_once(engine, prefect) == outbox.RelayResult(3, 0)
        assert outbox.relay_once(engine, prefect) == outbox.RelayResult(0, 0)  # nothing left to send
        assert {r.status for r in rows(store_url)} == {"delivered"} and outbox.queue_depth(engine) == 0
        # As if the answer had been lost after Prefect took them: the relay sends the same events again.
        with session_scope(engine) as session:
            session.exec(update(WebhookDelivery).values(status="queued"))  # type: ignore[call-overload]
        assert outbox.relay_once(engine, prefect) == outbox.RelayResult(3, 0)

        ids = [a["event_id"] for a in accepted]
        events = prefect_events(prefect_server, ids, expected=3)
        fired = prefect_events(
            prefect_server,
            [],
            expected=3,
            where={
                "event": {"name": ["prefect.automation.triggered"]},
                "resource": {"id": [f"prefect.automation.{automation_id}"]},
            },
        )
    finally:
        httpx.delete(f"{prefect_server}/automations/{automation_id}", timeout=SLOW_SERVER)
        prefect.close()
    assert sorted(e["id"] for e in events) == sorted(ids)  # each once
    assert sorted(e["payload"]["triggering_event"]["id"] for e in fired) == sorted(ids)  # fired once for each
    by_key = {e["payload"]["key"]: e for e in events}
    first = by_key["PAY-0"]
    assert first["event"] == "framework2.ppms.tasks.changed"
    assert first["resource"]["prefect.resource.id"] == "framework2.system.ppms"
    assert first["payload"]["delivery"] == "relay-0" and first["payload"]["source"] == "framework-set-2"
    assert first["payload"]["received_at"] and first["payload"]["tracker"] is None


def test_prefect_down_mid_stream_keeps_rows_queued_then_delivers_each_once(
    forwarder: Forwarder, prefect_server: str, store_url: str
) -> None:
    engine = open_store()
    first = enqueue(engine, 2, "early")
    with outbox.prefect_api_client(forwarder.api, timeout=SLOW_SERVER) as patient:
        assert outbox.relay_once(engine, patient) == outbox.RelayResult(2, 0)

    forwarder.stop()  # the Prefect API goes away
    later = enqueue(engine, 3, "late")
    result = outbox.relay_once(engine, forwarder.api)
    assert (result.delivered, result.failed) == (0, 3) and "unreachable" in (result.error or "")
    waiting = [r for r in rows(store_url) if r.status == "queued"]
    assert [r.delivery_id for r in waiting] == ["late-0", "late-1", "late-2"]
    assert all(r.attempts == 1 and "ConnectError" in (r.last_error or "") for r in waiting)

    forwarder.start("drop_answers")  # back, but its answers are lost: Prefect has the events, we do not know
    result = outbox.relay_once(engine, forwarder.api)
    assert (result.delivered, result.failed) == (0, 3)
    assert {r.attempts for r in rows(store_url) if r.status == "queued"} == {2}

    forwarder.mode = "forward"
    # A busy server may still time out a round; the rows then stay queued for the next one, as after the outage.
    rounds = []
    while len(rounds) < 5 and (not rounds or rounds[-1].delivered == 0):
        rounds.append(outbox.relay_once(engine, forwarder.api))
        assert rounds[-1] == outbox.RelayResult(3, 0) or "timed out" in (rounds[-1].error or ""), rounds
    stored = rows(store_url)
    assert {r.status for r in stored} == {"delivered"}
    assert [r.attempts for r in stored] == [1, 1] + [2 + len(rounds)] * 3

    ids = [r.event_id for r in first + later]
    events = prefect_events(prefect_server, ids, expected=5)
    assert sorted(e["id"] for e in events) == sorted(ids)  # five webhooks, five events, none twice


def test_relay_stops_the_round_on_a_server_error_and_isolates_a_refused_event(http_server: Any, store_url: str) -> None:
    from tests.http_fixtures import Reply

    engine = open_store()
    enqueue(engine, 3, "x")
    http_server.route("/api/events", Reply(503, body={"detail": "maintenance"}), method="POST")
    result = outbox.relay_once(engine, http_server.url_for("/api"))
    assert result == outbox.RelayResult(0, 3, 'Prefect API answered 503: {"detail": "maintenance"}')
    # 422 for the batch: the rows go one by one; the one Prefect refuses stays queued, the others are delivered.
    http_server.route(
        "/api/events",
        Reply(422, body={"detail": "bad"}),
        Reply(204),
        Reply(422, body={"detail": "bad event"}),
        Reply(204),
        method="POST",
    )
    result = outbox.relay_once(engine, http_server.url_for("/api"))
    assert (result.delivered, result.failed) == (2, 1) and "bad event" in (result.error or "")
    [refused] = [r for r in rows(store_url) if r.status == "queued"]
    assert refused.delivery_id == "x-1" and refused.attempts == 2


def test_the_service_relays_in_the_background(prefect_server: str, store_url: str) -> None:
    name, value = make_secret()
    app = create_app(make_settings(name, relay_interval="30s"))
    with serve(app) as url:
        document = {"system": "pso", "event": "run.requested", "data": {"systems": ["ppis"]}}
        body, headers = signed(value, document, delivery="background-1")
        answer = httpx.post(url + PATH, content=body, headers=headers)
        assert answer.status_code == 202
        # Woken by the new row, the relay delivers at once rather than after its 30 s interval.
        deadline = time.monotonic() + 10
        while rows(store_url)[0].status != "delivered":
            assert time.monotonic() < deadline, "the relay did not deliver"
            time.sleep(0.05)
    [event] = prefect_events(prefect_server, [answer.json()["event_id"]], expected=1)
    assert event["event"] == "framework2.pso.run.requested" and event["payload"]["systems"] == ["ppis"]
