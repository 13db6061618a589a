"""The webhook service: contract, authentication, limits, de-duplication and the GitHub/Jira adapters.

Validation tests use FastAPI's TestClient; where the HTTP server matters (what is committed before the answer,
body limits on a real connection) the app runs under uvicorn on a loopback port. The shared secret always comes
from a real Prefect Secret block on the session's Prefect server.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, select

from framework2.config import Settings, WebhookSettings
from framework2.service.app import create_app, uvicorn_options
from framework2.service.webhooks import (
    ALLOWED,
    EVENT_ID_NAMESPACE,
    RateLimiter,
    hub_signature,
    sign,
)
from framework2.store.engine import make_engine
from framework2.store.models import WebhookDelivery
from framework2.systems import SYSTEMS
from tests.conftest import free_port

PATH = "/webhook/framework-set-2"


# --- helpers shared with the relay and fuzz tests -----------------------------------------------------------


def make_secret(value: str | None = None) -> tuple[str, str]:
    """A fresh Secret block on the test Prefect server: (name, value)."""
    from prefect.blocks.system import Secret

    name = f"webhook-test-{uuid.uuid4().hex[:8]}"
    value = uuid.uuid4().hex if value is None else value
    Secret(value=value).save(name, overwrite=True)
    return name, value


def make_settings(secret_block: str, **webhooks: Any) -> Settings:
    """Settings with the webhook section given; the store comes from the environment (``store_url``)."""
    return Settings(webhooks=WebhookSettings(secret_block=secret_block, **webhooks))


def signed(
    secret: str, document: Any, *, timestamp: int | None = None, delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """A framework-set-2 request: the body bytes and its headers, signed now (or at ``timestamp``)."""
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": "application/json",
        "X-Framework2-Timestamp": stamp,
        "X-Framework2-Signature": sign(secret, stamp, body, delivery),
    }
    if delivery is not None:
        headers["X-Framework2-Delivery"] = delivery
    return body, headers


def rows(store_url: str) -> list[WebhookDelivery]:
    """Every outbox row, read over a connection of its own."""
    with Session(make_engine(store_url)) as session:
        return list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)))


@contextmanager
def serve(app: Any, **options: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free loopback port (``options`` as `framework2 api` passes them); yield its
    base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    # The thread runs in a copy of this context: Prefect's test settings (the API URL) live in a context variable.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(server.run,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


TASKS_CHANGED = {"system": "ppms", "event": "tasks.changed", "data": {"tracker": "jira", "key": "PAY-1"}}


@pytest.fixture
def secret(prefect_server: str) -> tuple[str, str]:
    return make_secret()


@pytest.fixture
def client(secret: tuple[str, str], store_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(secret[0]), relay=False)) as test_client:
        yield test_client


# --- accepted, stored first ---------------------------------------------------------------------------------


def test_accepted_webhook_is_committed_before_the_202(secret: tuple[str, str], store_url: str) -> None:
    name, value = secret
    document = {"system": "pces", "event": "requirement.changed", "data": {"requirement": "REQ-7", "note": "x"}}
    with serve(create_app(make_settings(name), relay=False)) as url:
        body, headers = signed(value, document, delivery="d-1")
        answer = httpx.post(url + PATH, content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        # Read over another connection as soon as the answer is in: the row must already be committed.
        [row] = rows(store_url)
        expected_id = str(uuid.uuid5(EVENT_ID_NAMESPACE, "framework-set-2\nd-1"))
        assert answer.json() == {
            "event_id": expected_id,
            "event": "framework2.pces.requirement.changed",
            "delivery": "d-1",
            "duplicate": False,
        }
        assert (row.source, row.delivery_id, row.event_id, row.status) == (
            "framework-set-2",
            "d-1",
            expected_id,
            "queued",
        )
        # Normalised: defaults filled in, the sender's extra key kept.
        assert row.payload == {"requirement": "REQ-7", "version": None, "note": "x"}

        # If the store cannot take the row, there is no 202: the sender is told to retry.
        with make_engine(store_url).begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON webhook_delivery "
                        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                    )
                )
            else:
                conn.execute(
                    text(
                        "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ "
                        "BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse BEFORE INSERT ON webhook_delivery "
                        "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
                    )
                )
        body, headers = signed(value, {**document, "data": {"requirement": "REQ-8"}}, delivery="d-2")
        refused = httpx.post(url + PATH, content=body, headers=headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "30"
        assert "not accepted" in refused.json()["detail"]
        assert len(rows(store_url)) == 1


# --- the contract -------------------------------------------------------------------------------------------


def test_unknown_system_or_event_is_422_listing_the_allowed_values(client: TestClient, secret: tuple[str, str]) -> None:
    body, headers = signed(secret[1], {"system": "ppxx", "event": "tasks.changed", "data": {}})
    answer = client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["errors"] == [
        {"loc": ["body", "system"], "msg": "unknown system 'ppxx'", "allowed": sorted(ALLOWED)}
    ]
    assert problem["allowed"]["ppms"] == ["forecast.requested", "tasks.changed"]
    assert set(problem["allowed"]) == set(SYSTEMS) | {"pso"}
    assert problem["hint"]

    body, headers = signed(secret[1], {"system": "ppms", "event": "tasks.exploded", "data": {}})
    problem = client.post(PATH, content=body, headers=headers).json()
    assert problem["errors"][0]["loc"] == ["body", "event"]
    assert problem["errors"][0]["allowed"] == ["forecast.requested", "tasks.changed"]
    assert "'tasks.exploded' is not accepted for system 'ppms'" in problem["detail"]


@pytest.mark.parametrize(
    ("document", "loc", "msg"),
    [
        ({"system": "pces", "event": "requirement.changed", "data": {}}, ["body", "data", "requirement"], "required"),
        ({"system": "ppms", "event": "tasks.changed"}, ["body", "data"], "field required"),
        ({"system": "ppms", "event": "tasks.changed", "data": [1]}, ["body", "data"], "must be a JSON object"),
        ({"system": "ppms", "event": "tasks.changed", "data": {}, "x": 1}, ["body", "x"], "unexpected field"),
        (
            {"system": "ppms", "event": "tasks.changed", "data": {"source": "me"}},
            ["body", "data", "source"],
            "reserved",
        ),
        ({"system": "ppms", "event": "tasks.changed", "data": {"k": "a\u0000b"}}, ["body", "data", "k"], "NUL"),
        ({"system": "pso", "event": "run.requested", "data": {"systems": ["ppis", "nope"]}}, None, "'ppis'"),
        ({"system": "pces", "event": "requirement.changed", "data": {"requirement": "R", "version": "2"}}, None, "int"),
        ([1, 2], ["body"], "JSON object"),
    ],
)
def test_data_is_checked_against_the_event(
    client: TestClient, secret: tuple[str, str], document: Any, loc: list[Any] | None, msg: str
) -> None:
    body, headers = signed(secret[1], document)
    answer = client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    if loc is not None:
        assert error["loc"] == loc
    assert msg in error["msg"]


def test_deeply_nested_data_is_refused(client: TestClient, secret: tuple[str, str]) -> None:
    deep: Any = "x"
    for _ in range(40):
        deep = {"d": deep}
    body, headers = signed(secret[1], {"system": "ppms", "event": "tasks.changed", "data": deep})
    answer = client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 422 and "nested deeper than 32" in answer.text


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"system": "ppms", "event": }', "line 1 column 29 (char 28)"),
        (b'{"system": "ppms",\n "data": {"x": NaN}}', "NaN is not JSON"),
        (b'{"a": 1e999}', "out of range"),
        (b"\xff\xfe{}", "not UTF-8 (byte 0)"),
        (b"[" * 100_000, "nested"),  # the parser's recursion limit, not a crash
    ],
)
def test_malformed_json_is_400_with_the_position(
    client: TestClient, secret: tuple[str, str], raw: bytes, where: str
) -> None:
    body, headers = signed(secret[1], raw)
    answer = client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert where in answer.json()["detail"] or (where == "nested" and "JSON" in answer.json()["detail"])


# --- authentication -----------------------------------------------------------------------------------------


def test_missing_or_wrong_signature_is_401(client: TestClient, secret: tuple[str, str]) -> None:
    body, headers = signed(secret[1], TASKS_CHANGED)
    cases = {
        "no headers": {"Content-Type": "application/json"},
        "other secret": signed("not-the-secret", TASKS_CHANGED)[1],
        "body changed after signing": headers,
        "not a number": {**headers, "X-Framework2-Timestamp": "soon"},
        "signed another timestamp": {**headers, "X-Framework2-Timestamp": str(int(time.time()) - 1)},
    }
    for case, case_headers in cases.items():
        content = body + b" " if case == "body changed after signing" else body
        answer = client.post(PATH, content=content, headers=case_headers)
        assert answer.status_code == 401, case
        assert answer.json()["hint"], case
    assert "missing X-Framework2-Timestamp and X-Framework2-Signature" in client.post(PATH, content=body).text
    assert client.post(PATH, content=body, headers=headers).status_code == 202  # the untouched request passes


# 5 s past the ±300 s window: the test's whole-second timestamp and the service's clock may be a second or
# more apart on a busy machine, and 301 then landed inside the window.
@pytest.mark.parametrize("offset", [-305, 305])
def test_stale_timestamp_is_401_in_both_directions(client: TestClient, secret: tuple[str, str], offset: int) -> None:
    body, headers = signed(secret[1], TASKS_CHANGED, timestamp=int(time.time()) - offset)
    answer = client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 401
    assert ("old" if offset > 0 else "in the future") in answer.json()["detail"]
    assert "±300 s" in answer.json()["detail"]
    inside = signed(secret[1], TASKS_CHANGED, timestamp=int(time.time()) - (offset - 30 if offset > 0 else offset + 30))
    assert client.post(PATH, content=inside[0], headers=inside[1]).status_code == 202


def test_missing_secret_block_is_503_that_names_it_only_in_the_service_log(
    prefect_server: str, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(make_settings("no-such-webhook-secret"), relay=False)) as client:
        body, headers = signed("whatever", TASKS_CHANGED)
        with caplog.at_level("ERROR", logger="framework2.webhooks"):
            answer = client.post(PATH, content=body, headers=headers)
        assert answer.status_code == 503
        # an unauthenticated sender learns nothing about the set-up ...
        assert "no-such-webhook-secret" not in answer.text and "Secret(" not in answer.text
        assert "not accepted" in answer.json()["detail"]
        # ... the operator's log says which block and how to create it
        logged = caplog.text
        assert "'no-such-webhook-secret'" in logged and "does not exist" in logged
        assert "save('no-such-webhook-secret')" in logged
        # Created afterwards, it is used at once: failures are not cached.
        from prefect.blocks.system import Secret

        late = uuid.uuid4().hex
        Secret(value=late).save("no-such-webhook-secret", overwrite=True)
        body, headers = signed(late, TASKS_CHANGED)
        assert client.post(PATH, content=body, headers=headers).status_code == 202


@pytest.mark.parametrize("weak", ["   ", "short-secret", "a" * 40])
def test_a_blank_or_guessable_secret_is_refused_not_trusted(
    weak: str, prefect_server: str, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    name, _ = make_secret(weak)
    with TestClient(create_app(make_settings(name), relay=False)) as client:
        body, headers = signed(weak, TASKS_CHANGED)
        with caplog.at_level("ERROR", logger="framework2.webhooks"):
            answer = client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 503, answer.text  # never 202 for a request signed with a guessable secret
    assert rows(store_url) == []
    assert f"the Prefect Secret block {name!r} holds" in caplog.text and "token_hex" in caplog.text


def test_a_signed_body_that_is_not_declared_json_is_415_and_an_unsigned_one_learns_nothing(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    body, headers = signed(secret[1], TASKS_CHANGED)
    for kind in ("text/plain", "application/x-www-form-urlencoded", ""):
        answer = client.post(PATH, content=body, headers={**headers, "Content-Type": kind})
        assert answer.status_code == 415, answer.text
        assert "application/json" in answer.json()["hint"]
    form = github(client, secret[1], "ping", {"zen": "z", "hook_id": 1})
    assert form.status_code == 200  # JSON declared: fine
    as_form = client.post(
        "/webhook/github",
        content=b"payload=%7B%7D",
        headers={
            "X-GitHub-Event": "issues",
            "X-Hub-Signature-256": hub_signature(secret[1], b"payload=%7B%7D"),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert as_form.status_code == 415 and "GitHub" in as_form.json()["hint"]
    # without the secret, the signature fails first: the media type is not even discussed
    unsigned = client.post(PATH, content=body, headers={"Content-Type": "text/plain"})
    assert unsigned.status_code == 401
    assert client.post(PATH, content=body, headers={**headers, "Content-Type": "application/json; charset=utf-8"})
    stored = [r for r in rows(store_url) if r.status != "ignored"]  # the ping is remembered, not relayed
    assert stored and all(r.event == "tasks.changed" for r in stored)


# --- limits -------------------------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_by_length_and_by_bytes_read(secret: tuple[str, str], store_url: str) -> None:
    name, value = secret
    with serve(create_app(make_settings(name, max_body_bytes=2048), relay=False)) as url:
        big = {**TASKS_CHANGED, "data": {"blob": "x" * 3000}}
        body, headers = signed(value, big)
        answer = httpx.post(url + PATH, content=body, headers=headers)
        assert answer.status_code == 413 and "Content-Length is 3," in answer.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
            yield body[:1500]
            yield body[1500:]

        answer = httpx.post(url + PATH, content=chunks(), headers=headers)
        assert answer.status_code == 413 and "exceeds 2,048 bytes" in answer.json()["detail"]
        small = signed(value, TASKS_CHANGED)
        assert httpx.post(url + PATH, content=small[0], headers=small[1]).status_code == 202
    assert len(rows(store_url)) == 1


def test_rate_limit_is_429_with_retry_after_per_source(secret: tuple[str, str], store_url: str) -> None:
    with TestClient(create_app(make_settings(secret[0], rate_limit_per_minute=3), relay=False)) as client:
        statuses = []
        for _ in range(4):
            body, headers = signed(secret[1], TASKS_CHANGED)
            answer = client.post(PATH, content=body, headers=headers)
            statuses.append(answer.status_code)
        assert statuses == [202, 202, 202, 429]
        assert answer.headers["retry-after"] == "20"  # 3 a minute: one token every 20 s
        assert "3 requests a minute" in answer.json()["detail"]
        # Another endpoint is another source: its bucket is full.
        assert client.post("/webhook/jira", content=b"{}").status_code == 401


def test_rate_limiter_refills_and_forgets_idle_sources() -> None:
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0], max_sources=2)
    assert [limiter.take("a") for _ in range(60)] == [0.0] * 60
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] += 0.5
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    limiter.take("b")
    now[0] += 120  # everyone refilled: forgetting them changes nothing
    limiter.take("c")
    assert len(limiter._buckets) <= 2


def test_a_captured_signed_webhook_replayed_under_a_new_id_after_a_restart_is_a_duplicate(
    secret: tuple[str, str], store_url: str
) -> None:
    release = {
        "deployment": {
            "id": 9,
            "environment": "production",
            "ref": "v1.4.2",
            "sha": "abc123",
            "payload": json.dumps({"image": "registry.example.com/shop:1.4.2", "app": "web"}),
        },
        "repository": REPO,
    }
    issue = {"webhookEvent": "jira:issue_updated", "issue": {"key": "PAY-1", "fields": {"project": {"key": "PAY"}}}}
    with TestClient(create_app(make_settings(secret[0]), relay=False)) as first:
        original = github(first, secret[1], "deployment", release, "guid-1")
        jira_original = jira(first, secret[1], issue, "jira-1")
    assert original.json()["duplicate"] is False and jira_original.json()["duplicate"] is False
    # The service restarts (a new process would start with nothing in memory): the store still knows.
    with TestClient(create_app(make_settings(secret[0]), relay=False)) as second:
        replayed = github(second, secret[1], "deployment", release, "guid-2-made-up")
        jira_replayed = jira(second, secret[1], issue, "jira-2-made-up")
    assert replayed.status_code == 202 and replayed.json()["duplicate"] is True
    assert replayed.json()["event_id"] == original.json()["event_id"]  # no second blue-green release
    assert jira_replayed.json()["duplicate"] is True
    assert jira_replayed.json()["event_id"] == jira_original.json()["event_id"]
    assert [r.delivery_id for r in rows(store_url)] == ["guid-1", "jira-1"]


@pytest.mark.parametrize("proxies", [[], ["10.9.8.7"]])
def test_a_local_caller_cannot_dodge_the_rate_limit_by_rotating_x_forwarded_for(
    proxies: list[str], secret: tuple[str, str], store_url: str
) -> None:
    settings = make_settings(secret[0], rate_limit_per_minute=3, trusted_proxies=proxies)
    with serve(create_app(settings, relay=False), **uvicorn_options(settings)) as url:
        codes = [
            httpx.post(url + PATH, content=b"{}", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(6)
        ]
    # loopback is not a configured proxy: every request counts against 127.0.0.1, whatever the header says
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429, 429], codes


def test_an_ignored_github_request_replayed_under_another_event_type_starts_nothing(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    # GitHub does not sign X-GitHub-Event: a captured "pending" deployment_status carries a deployment with an
    # image, and re-labelled as a deployment it would start a release.
    release = {"id": 9, "environment": "production", "ref": "v1", "sha": "abc"}
    release["payload"] = json.dumps({"image": "registry.example.com/shop:0.9-old", "app": "web"})
    pending = {"deployment": release, "deployment_status": {"state": "pending"}, "repository": REPO}
    first = github(client, secret[1], "deployment_status", pending, "d-1")
    assert first.status_code == 200 and "'pending' is not acted on" in first.json()["detail"]

    replayed = github(client, secret[1], "deployment", pending, "d-2-made-up")
    assert replayed.status_code == 200, replayed.text
    assert "received before" in replayed.json()["detail"]
    assert [r.status for r in rows(store_url)] == ["ignored"]  # nothing queued for the relay


def test_a_refused_github_request_replayed_under_another_event_type_starts_nothing(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    # GitHub allows environment names of 255 characters; the status contract allows 100: the first is a 422.
    release: dict[str, Any] = {"id": 11, "sha": "abc", "ref": "v2", "environment": "e" * 120}
    release["payload"] = {"image": "registry.example.com/shop:0.9-old", "app": "web"}
    success = {"deployment": release, "deployment_status": {"state": "success"}, "repository": REPO}
    first = github(client, secret[1], "deployment_status", success, "guid-A")
    assert first.status_code == 422, first.text

    replayed = github(client, secret[1], "deployment", success, "guid-B-made-up")
    assert replayed.status_code == 200 and "received before" in replayed.json()["detail"], replayed.text
    assert [r.status for r in rows(store_url)] == ["ignored"]


def test_a_configured_proxy_is_trusted_to_name_the_client() -> None:
    assert uvicorn_options(make_settings("s")) == {"proxy_headers": False}
    assert uvicorn_options(make_settings("s", trusted_proxies=[" 10.0.0.2 ", ""])) == {
        "proxy_headers": True,
        "forwarded_allow_ips": ["10.0.0.2"],
    }


# --- duplicates ---------------------------------------------------------------------------------------------


def test_duplicate_delivery_returns_the_same_event_id_and_stores_one_row(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    first = client.post(PATH, content=(s := signed(secret[1], TASKS_CHANGED, delivery="abc-1"))[0], headers=s[1])
    # A retry, re-signed later and even with another body: the delivery id decides.
    later = {**TASKS_CHANGED, "data": {"key": "PAY-2"}}
    again = client.post(
        PATH,
        content=(s := signed(secret[1], later, timestamp=int(time.time()) + 5, delivery="abc-1"))[0],
        headers=s[1],
    )
    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}

    # Without a delivery header the id is the hash of timestamp and body: the exact same request is a duplicate.
    body, headers = signed(secret[1], {**TASKS_CHANGED, "data": {"key": "PAY-3"}})
    one = client.post(PATH, content=body, headers=headers).json()
    two = client.post(PATH, content=body, headers=headers).json()
    assert (one["duplicate"], two["duplicate"]) == (False, True) and one["event_id"] == two["event_id"]
    # A captured request replayed under a made-up delivery id fails the signature, which covers the id.
    three = client.post(PATH, content=body, headers={**headers, "X-Framework2-Delivery": "fresh-id"})
    assert three.status_code == 401 and "signature" in three.json()["detail"]

    stored = rows(store_url)
    assert len(stored) == 2
    assert stored[0].payload["key"] == "PAY-1"  # the first copy is kept
    body, headers = signed(secret[1], TASKS_CHANGED, delivery="has space")
    bad = client.post(PATH, content=body, headers=headers)
    assert bad.status_code == 400 and "delivery id" in bad.json()["detail"]


def test_two_deliveries_with_the_same_body_in_the_same_second_are_two_events(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    stamp = int(time.time())
    document = {"system": "ppos", "event": "health.requested", "data": {}}
    answers = [
        client.post(PATH, content=(s := signed(secret[1], document, timestamp=stamp, delivery=d))[0], headers=s[1])
        for d in ("same-body-1", "same-body-2")
    ]
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.json()["duplicate"] for a in answers] == [False, False]
    assert answers[0].json()["event_id"] != answers[1].json()["event_id"]
    assert [r.delivery_id for r in rows(store_url)] == ["same-body-1", "same-body-2"]


# --- GitHub -------------------------------------------------------------------------------------------------

REPO = {"full_name": "acme/shop", "name": "shop"}


def github(
    client: TestClient, secret: str, event: str, payload: dict[str, Any], delivery: str | None = None
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": hub_signature(secret, body),
        "Content-Type": "application/json",
    }
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return client.post("/webhook/github", content=body, headers=headers)


def test_github_issue_opened_becomes_ppms_tasks_changed(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    issue = {
        "action": "opened",
        "issue": {"number": 42, "state": "open", "html_url": "https://github.com/acme/shop/issues/42"},
        "repository": REPO,
    }
    delivery = str(uuid.uuid4())
    answer = github(client, secret[1], "issues", issue, delivery)
    assert answer.status_code == 202, answer.text
    assert answer.json()["event"] == "framework2.ppms.tasks.changed"
    assert answer.json()["delivery"] == delivery
    [row] = rows(store_url)
    assert row.source == "github"
    assert row.payload == {
        "tracker": "github",
        "key": "acme/shop#42",
        "action": "opened",
        "repo": "acme/shop",
        "issue": 42,
        "state": "open",
        "url": "https://github.com/acme/shop/issues/42",
    }
    # GitHub's "Redeliver" repeats the delivery GUID: a duplicate.
    assert github(client, secret[1], "issues", issue, delivery).json()["duplicate"] is True
    # Signed with another secret, or not at all: 401.
    assert github(client, "wrong", "issues", issue).status_code == 401
    unsigned = client.post("/webhook/github", content=json.dumps(issue), headers={"X-GitHub-Event": "issues"})
    assert unsigned.status_code == 401 and "X-Hub-Signature-256" in unsigned.json()["detail"]
    # An issues event without the fields the mapping needs is a 422 naming the field.
    broken = github(client, secret[1], "issues", {"action": "opened", "repository": REPO})
    assert broken.status_code == 422 and broken.json()["errors"][0]["loc"] == ["body", "issue", "number"]


def test_github_ping_deployments_and_unused_events(client: TestClient, secret: tuple[str, str], store_url: str) -> None:
    ping = github(client, secret[1], "ping", {"zen": "Keep it simple.", "hook_id": 7})
    assert ping.status_code == 200 and ping.json() == {
        "detail": "pong: the GitHub webhook (hook 7) reaches Framework Set 2",
        "ignored": True,
    }
    push = github(client, secret[1], "push", {"ref": "refs/heads/main"})
    assert push.status_code == 200 and "'push' is not used" in push.json()["detail"]
    # remembered (so their bytes cannot become an event later), never relayed
    assert [r.status for r in rows(store_url)] == ["ignored", "ignored"]

    deployment = {"id": 9, "environment": "production", "ref": "v1.4.2", "sha": "abc123", "payload": {}}
    status = {"deployment": deployment, "repository": REPO}
    failed = github(client, secret[1], "deployment_status", {**status, "deployment_status": {"state": "failure"}})
    assert failed.status_code == 202 and failed.json()["event"] == "framework2.plos.deployment.failed"
    live = github(client, secret[1], "deployment_status", {**status, "deployment_status": {"state": "success"}})
    assert live.json()["event"] == "framework2.puxt.release.deployed"
    pending = github(client, secret[1], "deployment_status", {**status, "deployment_status": {"state": "pending"}})
    assert pending.status_code == 200 and "'pending' is not acted on" in pending.json()["detail"]
    no_image = github(client, secret[1], "deployment", {"deployment": deployment, "repository": REPO})
    assert no_image.status_code == 200 and "no 'image'" in no_image.json()["detail"]
    release = {**deployment, "payload": json.dumps({"image": "registry.example.com/shop:1.4.2", "app": "web"})}
    requested = github(client, secret[1], "deployment", {"deployment": release, "repository": REPO})
    assert requested.json()["event"] == "framework2.plos.release.requested"

    by_event = {r.event: r.payload for r in rows(store_url) if r.status != "ignored"}
    assert by_event["deployment.failed"]["app"] == "shop" and by_event["deployment.failed"]["state"] == "failure"
    assert by_event["release.deployed"]["release"] == "v1.4.2"
    assert by_event["release.requested"] | {} == {
        "app": "web",
        "image": "registry.example.com/shop:1.4.2",
        "namespace": "default",
        "cluster_block": "plos",
        "repo": "acme/shop",
        "environment": "production",
        "ref": "v1.4.2",
        "sha": "abc123",
    }


# --- Jira ---------------------------------------------------------------------------------------------------


def jira(client: TestClient, secret: str, payload: dict[str, Any], identifier: str | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"X-Hub-Signature": hub_signature(secret, body), "Content-Type": "application/json"}
    if identifier:
        headers["X-Atlassian-Webhook-Identifier"] = identifier
    return client.post("/webhook/jira", content=body, headers=headers)


def test_jira_issue_events_become_ppms_tasks_changed(
    client: TestClient, secret: tuple[str, str], store_url: str
) -> None:
    updated = {
        "webhookEvent": "jira:issue_updated",
        "timestamp": 1767225600000,
        "issue": {"key": "PAY-12", "fields": {"project": {"key": "PAY"}}},
        "changelog": {"items": [{"field": "status"}, {"field": "assignee"}, {"field": "status"}]},
    }
    answer = jira(client, secret[1], updated, "1234")
    assert answer.status_code == 202 and answer.json()["event"] == "framework2.ppms.tasks.changed"
    assert answer.json()["delivery"] == "1234"
    assert jira(client, secret[1], updated, "1234").json()["duplicate"] is True  # Jira's retry
    link = {
        "webhookEvent": "issuelink_created",
        "issueLink": {"sourceIssueId": 10, "destinationIssueId": 11, "issueLinkType": {"name": "Blocks"}},
    }
    assert jira(client, secret[1], link).status_code == 202  # no identifier: the body hash is the delivery id
    sprint = jira(client, secret[1], {"webhookEvent": "sprint_started"})
    assert sprint.status_code == 200 and "'sprint_started' is not used" in sprint.json()["detail"]
    assert jira(client, "wrong", updated).status_code == 401

    issue_row, link_row = [r for r in rows(store_url) if r.status != "ignored"]
    assert issue_row.source == "jira"
    assert issue_row.payload == {
        "tracker": "jira",
        "key": "PAY-12",
        "action": "updated",
        "project": "PAY",
        "changed": ["assignee", "status"],
    }
    assert link_row.payload["link"] == {"source_issue_id": 10, "destination_issue_id": 11, "type": "Blocks"}
    assert len(link_row.delivery_id) == 64  # SHA-256 hex of the body


# --- documentation ------------------------------------------------------------------------------------------


def test_no_page_of_the_service_loads_script_from_a_cdn(client: TestClient) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "cdn." not in response.text
    assert client.get("/openapi.json").status_code == 200


def test_openapi_documents_the_contract_and_the_events_table(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/webhook/framework-set-2"]["post"]
    variants = post["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert len(variants) == sum(len(events) for events in ALLOWED.values())
    pces = spec["components"]["schemas"]["PcesRequirementChangedWebhook"]
    assert pces["properties"]["event"]["const"] == "requirement.changed"
    assert spec["components"]["schemas"]["RequirementChanged"]["required"] == ["requirement"]
    assert {"202", "400", "401", "413", "415", "422", "429", "503"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["429"]["headers"]
    assert post["security"] == [{"Framework2Signature": [], "Framework2Timestamp": []}]
    assert spec["components"]["securitySchemes"]["GitHubSignature"]["name"] == "X-Hub-Signature-256"
    assert "/health" in spec["paths"] and "/metrics" in spec["paths"]

    table = client.get(PATH).json()
    assert {row["system"] for row in table} == set(SYSTEMS) | {"pso"}
    change = next(row for row in table if row["prefect_event"] == "framework2.pces.requirement.changed")
    assert change["deployment"] == "pces-change-impact" and "requirement" in change["data_schema"]["properties"]
