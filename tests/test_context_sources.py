"""PCES sources: a git repository is cloned once, then brought to the branch head on every ingest (local edits
in the cache never leak into what is read); bad sources are clear errors; the block checks its fields."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from framework2.blocks.requirements_source import RequirementsSource
from framework2.errors import DataError
from framework2.tasks.context.sources import checkout_directory, shown


def git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    (repo / "reqs").mkdir()
    (repo / "reqs" / "a.md").write_text("---\nid: REQ-1\ntitle: One\n---\nfirst\n")
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "one", cwd=repo)
    return repo


def test_repository_is_cloned_then_brought_to_the_branch_head(origin: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "shop"
    first = checkout_directory(path=None, git_url=str(origin), branch="main", subdirectory="reqs", cache=cache)
    assert (first.directory / "a.md").read_text().endswith("first\n")
    assert first.commit == git("rev-parse", "HEAD", cwd=origin)

    (origin / "reqs" / "a.md").write_text("---\nid: REQ-1\ntitle: One\n---\nsecond\n")
    git("commit", "--quiet", "-am", "two", cwd=origin)
    (cache / "reqs" / "a.md").write_text("a local edit nobody committed\n")

    second = checkout_directory(path=None, git_url=str(origin), branch="main", subdirectory="reqs", cache=cache)
    assert (second.directory / "a.md").read_text().endswith("second\n")
    assert second.commit == git("rev-parse", "HEAD", cwd=origin) != first.commit


def test_a_plain_directory_is_read_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    result = checkout_directory(path=str(tmp_path), git_url=None, branch="main", subdirectory="reqs", cache=tmp_path)
    assert result.directory == tmp_path / "reqs" and result.commit is None


def test_bad_sources_are_clear_errors_without_credentials(origin: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as missing:
        checkout_directory(path=str(tmp_path / "nope"), git_url=None, branch="main", subdirectory="", cache=tmp_path)
    assert "path" in missing.value.hint
    with pytest.raises(DataError, match="git clone of https://\\*\\*\\*@127.0.0.1:9/x.git failed") as refused:
        checkout_directory(
            path=None,
            git_url="https://user:s3cret@127.0.0.1:9/x.git",
            branch="main",
            subdirectory="",
            cache=tmp_path / "c1",
            timeout=20,
        )
    assert "s3cret" not in str(refused.value) and "git_url" in refused.value.hint
    with pytest.raises(DataError, match="git clone .* failed"):
        checkout_directory(path=None, git_url=str(origin), branch="nope", subdirectory="", cache=tmp_path / "c2")
    with pytest.raises(DataError, match="'docs' is not a folder"):
        checkout_directory(path=None, git_url=str(origin), branch="main", subdirectory="docs", cache=tmp_path / "c3")
    assert shown("https://a:b@host/x") == "https://***@host/x" and shown("/local/path") == "/local/path"


def test_the_block_wants_exactly_one_place_to_read_and_jql_with_jira() -> None:
    assert RequirementsSource(path="/srv/reqs").pattern == "**/*.md"
    for bad, message in (
        ({}, "nowhere to read"),
        ({"path": "/a", "git_url": "/b"}, "not both"),
        ({"jira_source": "acme"}, "needs jira_jql"),
        ({"path": "/a", "subdirectory": "../etc"}, "inside the repository"),
    ):
        with pytest.raises(ValidationError, match=message):
            RequirementsSource(**bad)


def test_jira_epics_become_requirements_across_pages_and_a_bad_issue_is_a_problem(http_server) -> None:  # type: ignore[no-untyped-def]
    from framework2.blocks.project_sources import JiraSource
    from framework2.tasks.context.sources import read_jira_requirements
    from tests.http_fixtures import Reply

    epic = {
        "key": "SHOP-7",
        "fields": {
            "summary": "Guest checkout",
            "description": "Pay without an account.\n\nAcceptance criteria:\n- pay by card\n- receipt by email",
            "priority": {"name": "High"},
            "assignee": {"accountId": "ana-1", "displayName": "Ana"},
            "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            "project": {"key": "SHOP"},
            "issuetype": {"name": "Epic"},
            "issuelinks": [],
            "subtasks": [],
        },
    }
    nameless = {"key": "SHOP-8", "fields": {"project": {"key": "SHOP"}}}
    http_server.route(
        "/rest/api/3/search/jql",
        Reply(200, body={"issues": [epic], "nextPageToken": "p2", "isLast": False}),
        Reply(200, body={"issues": [nameless], "isLast": True}),
        method="POST",
    )
    source = JiraSource(site_url=http_server.url, email="pces@acme.com", api_token="t0ken", jql="x")

    read = read_jira_requirements(source, "issuetype = Epic AND project = SHOP")

    [requirement] = read.requirements
    assert (requirement.id, requirement.source, requirement.project) == ("SHOP-7", "jira:SHOP-7", "jira:SHOP")
    assert requirement.acceptance_criteria == ["pay by card", "receipt by email"]
    [problem] = read.problems
    assert problem.source == "jira:SHOP-8" and problem.reason.startswith("(page 2)") and "summary" in problem.reason
    first, second = http_server.requests_to("/rest/api/3/search/jql")
    assert first.json()["jql"] == "issuetype = Epic AND project = SHOP" and "description" in first.json()["fields"]
    assert second.json()["nextPageToken"] == "p2"
