"""PPMS connectors against a loopback server answering like the GitHub and Jira REST APIs; CSV readers."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from framework2.blocks.project_sources import GitHubSource, JiraSource
from framework2.errors import DataError
from framework2.tasks.planning.connectors import (
    SourceError,
    github_dependencies,
    jira_jql,
    read_csv,
    read_github,
    read_jira,
    read_people_csv,
)
from framework2.tasks.planning.records import DependencyRecord
from tests.http_fixtures import LoopbackHTTPServer, Reply
from tests.http_fixtures import http_server as http_server_fixture  # noqa: F401  (registers `http_server`)

TOKEN = "ghp_s3cr3tT0kenValue"
JIRA_TOKEN = "ATATT-s3cr3t-jira-token"
NOW = 1_780_000_000.0  # the injected clock: 2026-05-28 20:26:40 UTC
ISSUES = "/repos/octo/shop/issues"
SEARCH = "/rest/api/3/search/jql"


class Sleeps(list):
    """An injected ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def clock() -> float:
    return NOW


def github(server: LoopbackHTTPServer, **overrides: Any) -> GitHubSource:
    fields: dict[str, Any] = {"api_url": server.url, "repositories": ["octo/shop"], "token": TOKEN, "per_page": 2}
    fields.update(overrides)
    return GitHubSource(**fields)


def gh_issue(number: int, **fields: Any) -> dict[str, Any]:
    """An issue as GET /repos/{owner}/{repo}/issues lists it (the fields PPMS reads)."""
    labels = fields.pop("labels", [])
    issue = {
        "id": 1000 + number,
        "number": number,
        "title": f"Issue {number}",
        "state": "open",
        "labels": [{"id": i, "name": name, "color": "ededed"} for i, name in enumerate(labels)],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "body": "",
        "created_at": "2026-01-05T09:00:00Z",
        "updated_at": "2026-01-06T09:00:00Z",
        "closed_at": None,
        "html_url": f"https://github.com/octo/shop/issues/{number}",
    }
    issue.update(fields)
    return issue


def link(server: LoopbackHTTPServer, page: int, last: int) -> dict[str, str]:
    url = server.url_for(ISSUES)
    return {"Link": f'<{url}?page={page}&per_page=2>; rel="next", <{url}?page={last}&per_page=2>; rel="last"'}


def query(request: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.query).items()}


# --- GitHub ----------------------------------------------------------------------------------------


def test_github_pages_are_followed_pull_requests_skipped_and_issues_mapped(http_server: LoopbackHTTPServer) -> None:
    page1 = [
        gh_issue(
            1,
            labels=["bug", "Status: In Progress", "estimate: 3d", "skill: Python"],
            assignee={"login": "ada", "id": 1},
            milestone={"title": "v1.0", "due_on": "2026-03-01T08:00:00Z"},
            updated_at="2026-01-07T10:00:00Z",
        ),
        gh_issue(2, title="A PR", pull_request={"url": "..."}, updated_at="2026-01-09T00:00:00Z"),
    ]
    page2 = [
        gh_issue(
            3,
            state="closed",
            labels=["enhancement", "points: 5"],
            closed_at="2026-01-08T12:00:00Z",
            updated_at="2026-01-08T12:00:00Z",
            body="Needs the login first.\n\n- Depends on #1\n- Blocked by Octo/Payments#34\nBlocks #4, #99",
        ),
        gh_issue(4, body="Part of the epic.", labels=["chore"]),
    ]
    http_server.route(ISSUES, Reply(200, page1, headers=link(http_server, 2, 2)), Reply(200, page2))

    batch = read_github(github(http_server, days_per_point=0.5), None, sleep=Sleeps(), clock=clock)

    first, second = http_server.requests_to(ISSUES)
    assert query(first) == {"state": "all", "sort": "created", "direction": "asc", "per_page": "2"}
    assert query(second) == {"page": "2", "per_page": "2"}  # the Link URL, as given
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.headers["accept"] == "application/vnd.github+json"

    tasks = {t.key: t for t in batch.tasks}
    assert list(tasks) == ["github:octo/shop#1", "github:octo/shop#3", "github:octo/shop#4"]  # #2 is a PR
    one, three, four = tasks.values()
    assert (one.status, one.type, one.estimate_days, one.assignee, one.milestone) == (
        "in_progress",
        "bug",
        3.0,
        "ada",
        "v1.0",
    )
    assert one.required_skills == ["python"] and one.project == "github:octo/shop"
    assert one.started_at == datetime(2026, 1, 7, 10, tzinfo=UTC)  # labelled in progress: its last update
    assert (three.status, three.type, three.estimate_days) == ("done", "feature", 2.5)
    assert three.done_at == datetime(2026, 1, 8, 12, tzinfo=UTC) and three.started_at is None
    assert (four.status, four.type, four.estimate_days) == ("todo", "chore", None)

    assert batch.dependencies == [
        DependencyRecord(task="github:octo/shop#3", depends_on="github:octo/shop#1"),
        DependencyRecord(task="github:octo/shop#3", depends_on="github:octo/payments#34"),  # across repositories
        DependencyRecord(task="github:octo/shop#4", depends_on="github:octo/shop#3"),  # "Blocks #4"
        # "Blocks #99": #99 is not in the batch, so declaring its edges would wipe its stored ones.
    ]
    assert [p.key for p in batch.projects] == ["github:octo/shop"]
    assert batch.cursor == datetime(2026, 1, 9, tzinfo=UTC)  # the newest listed, the PR included
    assert batch.rejected == []


def test_github_text_no_store_can_hold_arrives_as_replacement_characters(http_server: LoopbackHTTPServer) -> None:
    # JSON may escape a lone surrogate or NUL; neither has a place in UTF-8 or PostgreSQL text, and one such title
    # failed every later sync.
    http_server.route(ISSUES, Reply(200, [gh_issue(1, title="Broken \ud800 title \u0000 end", body="\udfff")]))

    batch = read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    [task] = batch.tasks
    assert task.title == "Broken \ufffd title \ufffd end"
    task.title.encode("utf-8")  # no surrogate left


def test_github_since_is_passed_through_and_is_the_cursor_when_nothing_changed(
    http_server: LoopbackHTTPServer,
) -> None:
    http_server.route(ISSUES, Reply(200, []))
    since = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)

    batch = read_github(github(http_server), since, sleep=Sleeps(), clock=clock)

    [request] = http_server.requests_to(ISSUES)
    assert query(request)["since"] == "2026-03-01T12:30:05Z"
    assert batch.tasks == [] and batch.cursor == since


def test_github_unreadable_issues_are_rejected_with_a_reason_and_the_rest_load(
    http_server: LoopbackHTTPServer,
) -> None:
    issues = [
        gh_issue(1, labels=["estimate: lots"]),
        gh_issue(2, created_at="yesterday"),
        gh_issue(3, body="### Details\n**Estimate:** `2d`\n> Depends on #1 (quoted from elsewhere)"),
        gh_issue(4, body="<!-- Depends on #123 (template example) -->\nEstimate: 12h\n```\nBlocks #1\n```"),
        "not an issue",
    ]
    http_server.route(ISSUES, Reply(200, issues))

    batch = read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    assert {t.key: t.estimate_days for t in batch.tasks} == {"github:octo/shop#3": 2.0, "github:octo/shop#4": 1.5}
    assert batch.dependencies == []  # quotes, comments and code blocks state nothing
    reasons = [r["reason"] for r in batch.rejected]
    assert "label 'estimate: lots' is not an estimate" in reasons[0] and "github:octo/shop#1" in reasons[0]
    assert "created_at 'yesterday' is not an ISO 8601 time" in reasons[1]
    assert "not an issue" in reasons[2]
    assert batch.rejected[0]["source"] == "github:octo/shop#1" and batch.rejected[0]["payload"]["number"] == 1


def test_github_body_dependency_forms() -> None:
    body = "Depends on: #1, #2 and octo/lib#3\nblocked by https://github.com/octo/api/issues/9\nunblocks #5"
    edges = github_dependencies(body, "Octo/Shop", "github:octo/shop#7")
    assert [e.depends_on for e in edges] == [
        "github:octo/shop#1",
        "github:octo/shop#2",
        "github:octo/lib#3",
        "github:octo/api#9",
    ]


def test_github_401_says_the_token_was_rejected_without_quoting_it(http_server: LoopbackHTTPServer) -> None:
    body = {"message": f"Bad credentials {TOKEN}", "documentation_url": "https://docs.github.com/rest"}
    http_server.route(ISSUES, Reply(401, body))

    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    error = caught.value
    assert "token rejected (HTTP 401)" in str(error) and "page 1" in str(error)
    assert "token in the GitHub Source block" in error.hint and not error.transient
    assert TOKEN not in f"{error!s} {error!r}"


def test_github_error_text_no_store_can_hold_is_cleaned_before_it_is_quoted(http_server: LoopbackHTTPServer) -> None:
    # The error is stored with the failed run: a raw surrogate or NUL there left the run "running".
    http_server.route(ISSUES, Reply(404, {"message": "Not Found \ud800 \u0000 here"}))

    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    text = str(caught.value)
    assert "Not Found \ufffd \ufffd here" in text
    text.encode("utf-8")


def test_github_rate_limit_resetting_soon_is_waited_out(http_server: LoopbackHTTPServer) -> None:
    limited = Reply(
        403,
        {"message": "API rate limit exceeded for user ID 1.", "documentation_url": "https://docs.github.com/rest"},
        headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 1)},
    )
    http_server.route(ISSUES, limited, Reply(200, [gh_issue(1)]))
    sleeps = Sleeps()

    batch = read_github(github(http_server), None, sleep=sleeps, clock=clock)

    assert sleeps == [2.0]  # until the reset, plus a second for clock skew
    assert len(http_server.requests_to(ISSUES)) == 2 and len(batch.tasks) == 1


def test_github_rate_limit_resetting_late_fails_naming_the_reset_time(http_server: LoopbackHTTPServer) -> None:
    reset = int(NOW) + 3600
    limited = Reply(
        403,
        {"message": "API rate limit exceeded"},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    http_server.route(ISSUES, limited)
    sleeps = Sleeps()

    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=sleeps, clock=clock, max_wait_seconds=60)

    error = caught.value
    assert "rate limit exhausted" in str(error) and "resets at 2026-05-28 21:26:41 UTC" in str(error)
    assert error.transient and error.reset_at == datetime.fromtimestamp(reset + 1, UTC)
    assert sleeps == [] and len(http_server.requests_to(ISSUES)) == 1


def test_retry_after_is_honoured_for_secondary_limits_and_429(http_server: LoopbackHTTPServer) -> None:
    secondary = Reply(403, {"message": "You have exceeded a secondary rate limit."}, headers={"retry-after": "5"})
    too_many = Reply(429, "slow down", headers={"Retry-After": "7"})
    http_server.route(ISSUES, secondary, too_many, Reply(200, [gh_issue(1)]))
    sleeps = Sleeps()

    batch = read_github(github(http_server), None, sleep=sleeps, clock=clock)

    assert sleeps == [5.0, 7.0] and len(batch.tasks) == 1


def test_a_403_that_is_not_a_rate_limit_is_a_permission_error(http_server: LoopbackHTTPServer) -> None:
    http_server.route(ISSUES, Reply(403, {"message": "Resource not accessible by personal access token"}))

    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    assert "HTTP 403" in str(caught.value) and "Resource not accessible" in str(caught.value)
    assert "Issues (read)" in caught.value.hint


def test_5xx_is_retried_with_backoff_then_succeeds_or_gives_up(http_server: LoopbackHTTPServer) -> None:
    http_server.route(ISSUES, Reply(502, "bad gateway"), Reply(200, [gh_issue(1)]))
    sleeps = Sleeps()
    assert len(read_github(github(http_server), None, sleep=sleeps, clock=clock).tasks) == 1
    assert sleeps == [1.0] and len(http_server.requests_to(ISSUES)) == 2

    http_server.route(ISSUES, Reply(500, {"message": "Server Error"}))
    sleeps = Sleeps()
    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=sleeps, clock=clock)
    assert sleeps == [1.0, 2.0, 4.0]
    assert "HTTP 500 Internal Server Error 4 times" in str(caught.value) and caught.value.transient


def test_malformed_page_names_the_page_and_url(http_server: LoopbackHTTPServer) -> None:
    broken = Reply(200, b'[{"number": 3, "title": "cut o', headers={"Content-Type": "application/json"})
    http_server.route(ISSUES, Reply(200, [gh_issue(1)], headers=link(http_server, 2, 2)), broken)

    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    message = str(caught.value)
    assert "page 2" in message and f"{http_server.url_for(ISSUES)}?page=2" in message
    assert "is not valid JSON" in message and "application/json" in message


def test_a_page_that_is_not_a_list_and_a_missing_repository_are_clear_errors(http_server: LoopbackHTTPServer) -> None:
    http_server.route(ISSUES, Reply(200, {"message": "hello"}))
    with pytest.raises(SourceError, match="page 1 .* is a JSON dict, not a list of issues"):
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)

    http_server.route(ISSUES, Reply(404, {"message": "Not Found"}))
    with pytest.raises(SourceError) as caught:
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)
    assert "HTTP 404" in str(caught.value) and "owner/name" in caught.value.hint


def test_a_next_link_to_another_host_is_not_followed(http_server: LoopbackHTTPServer) -> None:
    elsewhere = {"Link": '<http://attacker.example/repos/octo/shop/issues?page=2>; rel="next"'}
    http_server.route(ISSUES, Reply(200, [gh_issue(1)], headers=elsewhere))

    with pytest.raises(SourceError, match="another host"):
        read_github(github(http_server), None, sleep=Sleeps(), clock=clock)


def test_unreachable_and_slow_servers_are_retried_then_reported(http_server: LoopbackHTTPServer) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    with pytest.raises(SourceError, match="could not be reached") as caught:
        read_github(github(http_server, api_url=f"http://127.0.0.1:{port}"), None, sleep=sleeps, clock=clock)
    assert caught.value.transient and sleeps == [1.0, 2.0, 4.0]

    http_server.route(ISSUES, Reply(200, [], delay=1.0))
    with pytest.raises(SourceError, match="timed out"):
        read_github(github(http_server, timeout_seconds=0.05), None, sleep=Sleeps(), clock=clock, max_retries=1)
    assert len(http_server.requests_to(ISSUES)) == 2


# --- Jira ------------------------------------------------------------------------------------------


def jira(server: LoopbackHTTPServer, **overrides: Any) -> JiraSource:
    fields: dict[str, Any] = {
        "site_url": server.url,
        "email": "ppms@acme.com",
        "api_token": JIRA_TOKEN,
        "project_keys": ["SHOP"],
        "days_per_point": 0.5,
        "page_size": 2,
    }
    fields.update(overrides)
    return JiraSource(**fields)


BLOCKS = {"id": "10000", "name": "Blocks", "inward": "is blocked by", "outward": "blocks"}
RELATES = {"id": "10003", "name": "Relates", "inward": "relates to", "outward": "relates to"}
CATEGORY_NAMES = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}


def jira_link(kind: dict[str, str], *, inward: str | None = None, outward: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": "1", "type": kind}
    if inward:
        entry["inwardIssue"] = {"id": "2", "key": inward, "fields": {"summary": "other"}}
    if outward:
        entry["outwardIssue"] = {"id": "3", "key": outward, "fields": {"summary": "other"}}
    return entry


def jira_issue(key: str, category: str = "new", **fields: Any) -> dict[str, Any]:
    """An issue as /rest/api/3/search(/jql) returns it with the fields PPMS asks for."""
    project = key.split("-")[0]
    base: dict[str, Any] = {
        "summary": f"Summary of {key}",
        "status": {"name": CATEGORY_NAMES.get(category, "Odd"), "statusCategory": {"id": 2, "key": category}},
        "issuetype": {"name": "Story", "subtask": False},
        "labels": [],
        "assignee": None,
        "created": "2026-01-05T09:00:00.000+0000",
        "updated": "2026-01-06T09:00:00.000+0100",
        "resolutiondate": None,
        "statuscategorychangedate": "2026-01-05T09:00:00.000+0000",
        "issuelinks": [],
        "fixVersions": [],
        "project": {"id": "10000", "key": project, "name": f"{project.title()} project"},
        "customfield_10016": None,
    }
    base.update(fields)
    return {"id": str(abs(hash(key)) % 100000), "key": key, "self": f"https://acme.atlassian.net/{key}", "fields": base}


def test_jira_token_pagination_maps_issues_and_blocks_links_both_ways(http_server: LoopbackHTTPServer) -> None:
    page1 = {
        "issues": [
            jira_issue(
                "SHOP-1",
                "indeterminate",
                issuetype={"name": "Bug"},
                labels=["backend", "skill:Python"],
                customfield_10016=3,
                assignee={"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Ada Lovelace"},
                statuscategorychangedate="2026-01-07T08:00:00.000+0000",
                fixVersions=[{"id": "1", "name": "1.0"}],
                issuelinks=[
                    jira_link(BLOCKS, inward="OPS-4"),  # SHOP-1 is blocked by OPS-4 (another project)
                    jira_link(BLOCKS, outward="SHOP-2"),  # SHOP-1 blocks SHOP-2
                    jira_link(BLOCKS, outward="OPS-9"),  # OPS-9 is outside this read
                    jira_link(RELATES, outward="SHOP-3"),
                ],
            ),
            jira_issue(
                "SHOP-2",
                "done",
                resolutiondate="2026-01-09T17:30:00.000+0000",
                updated="2026-01-09T17:31:00.000+0000",
                issuelinks=[jira_link(BLOCKS, inward="SHOP-1")],  # the same link seen from SHOP-2
            ),
        ],
        "nextPageToken": "CAEaAggD",
        "isLast": False,
    }
    page2 = {
        "issues": [
            jira_issue(
                "SHOP-3",
                parent={"key": "SHOP-100", "fields": {"summary": "Checkout", "issuetype": {"name": "Epic"}}},
            )
        ],
        "isLast": True,
    }
    http_server.route(SEARCH, Reply(200, page1), Reply(200, page2), method="POST")
    since = datetime(2026, 1, 1, 6, 15, 42, tzinfo=UTC)

    batch = read_jira(jira(http_server), since, sleep=Sleeps(), clock=clock)

    first, second = http_server.requests_to(SEARCH, "POST")
    assert (
        first.json()["jql"] == '(project in ("SHOP")) AND updated >= "2026-01-01 06:15" ORDER BY created ASC, key ASC'
    )
    assert {"summary", "status", "issuelinks", "statuscategorychangedate", "customfield_10016"} <= set(
        first.json()["fields"]
    )
    assert first.json()["maxResults"] == 2 and "nextPageToken" not in first.json()
    assert second.json()["nextPageToken"] == "CAEaAggD"
    assert first.headers["authorization"].startswith("Basic ")

    one, two, three = batch.tasks
    assert (one.key, one.project, one.status, one.type, one.estimate_days) == (
        "jira:SHOP-1",
        "jira:SHOP",
        "in_progress",
        "bug",
        1.5,
    )
    assert one.assignee == "5b10ac8d82e05b22cc7d4ef5" and one.milestone == "1.0" and one.required_skills == ["python"]
    assert one.started_at == datetime(2026, 1, 7, 8, tzinfo=UTC) and one.done_at is None
    assert one.updated_at == datetime(2026, 1, 6, 8, tzinfo=UTC)  # +0100 read as UTC
    assert (two.status, two.done_at, two.started_at) == ("done", datetime(2026, 1, 9, 17, 30, tzinfo=UTC), None)
    assert (three.status, three.type, three.milestone, three.estimate_days) == ("todo", "feature", "Checkout", None)
    assert batch.dependencies == [
        DependencyRecord(task="jira:SHOP-1", depends_on="jira:OPS-4"),
        DependencyRecord(task="jira:SHOP-2", depends_on="jira:SHOP-1"),
    ]
    assert [(p.key, p.name) for p in batch.projects] == [("jira:SHOP", "Shop project")]
    assert batch.cursor == datetime(2026, 1, 9, 17, 31, tzinfo=UTC)


def test_jira_classic_search_pages_by_start_at_and_total(http_server: LoopbackHTTPServer) -> None:
    classic = "/rest/api/3/search"
    page1 = {"expand": "schema,names", "startAt": 0, "maxResults": 2, "total": 3, "issues": []}
    page1["issues"] = [jira_issue("SHOP-1"), jira_issue("SHOP-2", "done")]
    page2 = {"expand": "schema,names", "startAt": 2, "maxResults": 2, "total": 3, "issues": [jira_issue("SHOP-3")]}
    http_server.route(classic, Reply(200, page1), Reply(200, page2), method="POST")

    batch = read_jira(jira(http_server, search_path=classic), None, sleep=Sleeps(), clock=clock)

    first, second = http_server.requests_to(classic)
    assert "startAt" not in first.json() and second.json()["startAt"] == 2
    assert first.json()["jql"] == '(project in ("SHOP")) ORDER BY created ASC, key ASC'
    assert [t.key for t in batch.tasks] == ["jira:SHOP-1", "jira:SHOP-2", "jira:SHOP-3"]
    assert batch.tasks[1].done_at == datetime(2026, 1, 5, 9, tzinfo=UTC)  # no resolution date: category change


def test_jira_jql_keeps_the_condition_drops_its_order_and_uses_the_accounts_time_zone() -> None:
    source = JiraSource(
        site_url="https://acme.atlassian.net",
        email="ppms@acme.com",
        api_token=JIRA_TOKEN,
        jql="project = SHOP AND labels = ppms order by Rank",
        jql_timezone="Europe/Berlin",
    )
    jql = jira_jql(source, datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC))
    assert jql == '(project = SHOP AND labels = ppms) AND updated >= "2026-03-01 13:34" ORDER BY created ASC, key ASC'


def test_jira_unreadable_issues_are_rejected_and_bad_jql_is_a_clear_error(http_server: LoopbackHTTPServer) -> None:
    issues = [
        jira_issue("SHOP-1", "weird"),
        jira_issue("SHOP-2", customfield_10016=-2),
        jira_issue("SHOP-3", created="not a time"),
        jira_issue("SHOP-4", customfield_10016=5),
    ]
    http_server.route(SEARCH, Reply(200, {"issues": issues, "isLast": True}), method="POST")
    batch = read_jira(jira(http_server), None, sleep=Sleeps(), clock=clock)
    assert [t.key for t in batch.tasks] == ["jira:SHOP-4"]
    reasons = [r["reason"] for r in batch.rejected]
    assert "status category 'weird'" in reasons[0]
    assert "estimate field customfield_10016 -2" in reasons[1]
    assert "created 'not a time' is not an ISO 8601 time" in reasons[2]
    assert [r["source"] for r in batch.rejected] == ["jira:SHOP-1", "jira:SHOP-2", "jira:SHOP-3"]

    error_body = {"errorMessages": ["Field 'labls' does not exist or you do not have permission to view it."]}
    http_server.route(SEARCH, Reply(400, error_body), method="POST")
    with pytest.raises(SourceError) as caught:
        read_jira(jira(http_server, jql="labls = x"), None, sleep=Sleeps(), clock=clock)
    assert "Field 'labls' does not exist" in str(caught.value) and "JQL" in caught.value.hint


def test_jira_429_retry_after_is_waited_and_401_names_the_credentials(http_server: LoopbackHTTPServer) -> None:
    too_many = Reply(429, "", headers={"Retry-After": "3", "X-RateLimit-Reset": "2026-05-28T20:30Z"})
    http_server.route(SEARCH, too_many, Reply(200, {"issues": [jira_issue("SHOP-1")], "isLast": True}), method="POST")
    sleeps = Sleeps()
    assert len(read_jira(jira(http_server), None, sleep=sleeps, clock=clock).tasks) == 1
    assert sleeps == [3.0]

    http_server.route(SEARCH, Reply(401, "Client must be authenticated to access this resource."), method="POST")
    with pytest.raises(SourceError) as caught:
        read_jira(jira(http_server), None, sleep=Sleeps(), clock=clock)
    assert "token rejected" in str(caught.value) and "email and api_token" in caught.value.hint
    assert JIRA_TOKEN not in f"{caught.value!s} {caught.value!r}"


def test_jira_page_without_issues_and_malformed_page_are_errors(http_server: LoopbackHTTPServer) -> None:
    http_server.route(SEARCH, Reply(200, {"values": []}), method="POST")
    with pytest.raises(SourceError, match=r"page 1 .* has no 'issues' list \(found: values\)"):
        read_jira(jira(http_server), None, sleep=Sleeps(), clock=clock)

    page1 = {"issues": [jira_issue("SHOP-1")], "nextPageToken": "t2", "isLast": False}
    http_server.route(SEARCH, Reply(200, page1), Reply(200, "<html>Log in</html>"), method="POST")
    with pytest.raises(SourceError, match="page 2 .* is not valid JSON"):
        read_jira(jira(http_server), None, sleep=Sleeps(), clock=clock)


# --- CSV -------------------------------------------------------------------------------------------

TASKS_CSV = """\
key,project,title,status,type,labels,estimate_days,assignee,required_skills,created_at,started_at,done_at,depends_on,business_value,time_criticality,risk_reduction
T-1,Web,Login page,done,Feature,ui;auth,3,ada,Python;UX,2026-01-05,2026-01-06T09:00Z,2026-01-08 17:00,,8,5,2
T-2,Web,Checkout,In Progress,bug,,2.5,,,2026-01-05,2026-01-09,,T-1;jira:SHOP-7,,,
T-3,Web,Broken estimate,todo,task,,-2,,,2026-01-05,,,,,,
T-4,Web,Time travel,done,task,,1,,,2026-01-05,2026-01-09,2026-01-07,,,,
T-5,Web,Bad date,todo,task,,1,,,yesterday,,,,,,
T-6,Web,Unknown status,blocked,task,,1,,,2026-01-05,,,,,,
T-7,,No dates,,,,,,,,,,T-2,,,

"""


def test_csv_good_rows_load_and_bad_rows_are_rejected_with_reasons() -> None:
    now = datetime(2026, 2, 1, tzinfo=UTC)
    batch = read_csv(TASKS_CSV, project_default="Ops", now=now)

    tasks = {t.key: t for t in batch.tasks}
    assert list(tasks) == ["T-1", "T-2", "T-7"]
    one, two, seven = tasks.values()
    assert (one.status, one.type, one.labels, one.estimate_days, one.required_skills) == (
        "done",
        "feature",
        ["ui", "auth"],
        3.0,
        ["python", "ux"],
    )
    assert one.done_at == datetime(2026, 1, 8, 17, tzinfo=UTC) and one.updated_at == one.done_at
    assert (one.business_value, one.time_criticality, one.risk_reduction) == (8.0, 5.0, 2.0)
    assert (two.status, two.assignee, two.started_at) == ("in_progress", None, datetime(2026, 1, 9, tzinfo=UTC))
    assert (seven.project, seven.status, seven.created_at) == ("Ops", "todo", now)  # defaults
    assert batch.dependencies == [
        DependencyRecord(task="T-2", depends_on="T-1"),
        DependencyRecord(task="T-2", depends_on="jira:SHOP-7"),  # another source's task
        DependencyRecord(task="T-7", depends_on="T-2"),
    ]
    assert sorted(p.key for p in batch.projects) == ["Ops", "Web"]
    assert batch.cursor == now

    reasons = {r["source"]: r["reason"] for r in batch.rejected}
    assert reasons["T-3"] == "CSV text line 4: estimate_days '-2' is negative"
    assert reasons["T-4"] == "CSV text line 5: done_at 2026-01-07 00:00 is before started_at 2026-01-09 00:00"
    assert reasons["T-5"] == (
        "CSV text line 6: created_at 'yesterday' is not a date (write e.g. 2026-03-01 or 2026-03-01T09:00Z)"
    )
    assert reasons["T-6"] == "CSV text line 7: status 'blocked' is not one of todo, in_progress, done"
    assert batch.rejected[0]["payload"]["estimate_days"] == "-2" and batch.rejected[0]["payload"]["line"] == 4


def test_csv_missing_required_column_is_a_data_error_listing_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text("\ufeffKey,Title,Status\nT-1,Login,todo\n", encoding="utf-8")

    with pytest.raises(DataError) as caught:
        read_csv(path)
    assert "tasks.csv: required column(s) project missing; columns found: key, title, status" in str(caught.value)

    assert [t.project for t in read_csv(path, project_default="Web").tasks] == ["Web"]  # BOM and case handled

    with pytest.raises(DataError, match="does not exist"):
        read_csv(tmp_path / "nope.csv")


def test_csv_duplicate_keys_and_extra_cells_are_rejected() -> None:
    text = "key,project,title\nT-1,Web,One\nT-1,Web,Again\nT-2,Web,Two,surplus\n"
    batch = read_csv(text)
    assert [t.key for t in batch.tasks] == ["T-1"]
    assert [r["reason"] for r in batch.rejected] == [
        "CSV text line 3: key 'T-1' repeats line 2",
        "CSV text line 4: 1 more cell(s) than the header has columns",
    ]


def test_people_csv_loads_capacity_skills_and_time_off() -> None:
    text = (
        "handle,name,skills,weekly_capacity_days,time_off\n"
        "ada,Ada Lovelace,Python;SQL,4.5,2026-12-24..2027-01-02;2027-02-03\n"
        "bob,Bob,,,\n"
        "cy,Cy,,-1,\n"
        "dee,Dee,,3,2027-01-05..2027-01-01\n"
        "eve,Eve,,3,next week\n"
    )
    batch = read_people_csv(text)

    ada, bob = batch.people
    assert (ada.skills, ada.weekly_capacity_days) == (["python", "sql"], 4.5)
    assert ada.time_off == [(date(2026, 12, 24), date(2027, 1, 2)), (date(2027, 2, 3), date(2027, 2, 3))]
    assert bob.weekly_capacity_days == 4.0  # the record's default
    assert [r["reason"] for r in batch.rejected] == [
        "CSV text line 4: weekly_capacity_days '-1' is negative",
        "CSV text line 5: time_off '2027-01-05..2027-01-01' ends before it starts",
        "CSV text line 6: time_off 'next week' is not a day or range like 2026-12-24..2027-01-02",
    ]

    with pytest.raises(DataError, match="required column.* handle missing; columns found: name, skills"):
        read_people_csv("name,skills\nAda,python\n")


# --- blocks ----------------------------------------------------------------------------------------


def test_blocks_validate_their_settings_and_keep_tokens_secret() -> None:
    assert (GitHubSource.get_block_type_slug(), JiraSource.get_block_type_slug()) == ("github-source", "jira-source")
    for block in (GitHubSource, JiraSource):
        undocumented = [name for name, info in block.model_fields.items() if not info.description]
        assert undocumented == [], f"{block.__name__} fields without a description: {undocumented}"

    with pytest.raises(ValidationError, match="owner/name"):
        GitHubSource(repositories=["shop"])
    with pytest.raises(ValidationError, match="project_keys .* or a jql"):
        JiraSource(site_url="https://acme.atlassian.net", email="a@acme.com", api_token=JIRA_TOKEN)
    with pytest.raises(ValidationError, match="time zone"):
        JiraSource(site_url="https://a.atlassian.net", email="a@a.com", api_token="t", jql="x", jql_timezone="Mars")

    source = JiraSource(
        site_url="https://acme.atlassian.net/", email="a@acme.com", api_token=JIRA_TOKEN, project_keys=["shop"]
    )
    assert source.site_url == "https://acme.atlassian.net" and source.base_jql() == 'project in ("SHOP")'
    gh = GitHubSource(repositories=["octo/shop"], token=TOKEN)
    for text in (repr(source), source.model_dump_json(), repr(gh), gh.model_dump_json()):
        assert JIRA_TOKEN not in text and TOKEN not in text
    assert json.loads(gh.model_dump_json())["api_url"] == "https://api.github.com"
