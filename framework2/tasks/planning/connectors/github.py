"""GitHub issues → task records (status, type, estimate and dependencies from labels and body lines)."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError

from framework2.blocks.project_sources import GitHubSource
from framework2.tasks.planning.connectors.fetch import (
    Clock,
    Fetcher,
    Sleep,
    SourceError,
    _check_header_value,
    _http_client,
)
from framework2.tasks.planning.connectors.mapping import (
    _IN_PROGRESS_WORDS,
    _LEADING_AMOUNT,
    _TYPE_WORDS,
    _days,
    _item_time,
    _newest,
    _owned_edges,
    _parse_time,
    _prefixed,
    _Reject,
    _task_type,
    _utc,
    _validation_reason,
    _without_prefix,
    _words,
)
from framework2.tasks.planning.records import Batch, DependencyRecord, ProjectRecord, TaskRecord

_REF = re.compile(
    r"\s*(?:[,:;&]|\band\b)?\s*"
    r"(?:https?://[^\s/]+/(?P<url_repo>[\w.-]+/[\w.-]+)/(?:issues|pull)/(?P<url_number>\d+)\b"
    r"|(?P<repo>[\w.-]+/[\w.-]+)?#(?P<number>\d+)\b)",
    re.I,
)
_DEPENDENCY_PHRASE = re.compile(r"\b(depends\s+on|blocked\s+by|blocks)\b", re.I)


def _readable_body(body: str) -> list[str]:
    """Body lines that state something: no fenced code, HTML comments (issue templates) or quoted replies."""
    body = re.sub(r"```.*?(```|$)", "", body, flags=re.S)
    body = re.sub(r"<!--.*?(-->|$)", "", body, flags=re.S)
    lines = []
    for raw in body.splitlines():
        if raw.lstrip().startswith(">"):
            continue
        # Markdown decoration around "Estimate: 2d": bold, inline code, list items, task boxes, headings.
        line = re.sub(r"[*`]", "", raw).strip()
        line = re.sub(r"^(?:[-+]\s+(?:\[[ xX]\]\s+)?|\d+[.)]\s+|#+\s+)", "", line).strip()
        if line:
            lines.append(line)
    return lines


def _github_key(repo: str, number: int | str) -> str:
    return f"github:{repo.lower()}#{number}"


def github_dependencies(body: str, repo: str, this: str) -> list[DependencyRecord]:
    """Edges stated in an issue body of ``repo``: "Depends on #12", "Blocked by o/r#3", "Blocks #56"."""
    edges = []
    for line in _readable_body(body or ""):
        for phrase in _DEPENDENCY_PHRASE.finditer(line):
            reverse = _words(phrase.group(1)) == "blocks"
            position = phrase.end()
            while ref := _REF.match(line, position):
                other = _github_key(ref["url_repo"] or ref["repo"] or repo, ref["url_number"] or ref["number"])
                edges.append(
                    DependencyRecord(task=other, depends_on=this)
                    if reverse
                    else DependencyRecord(task=this, depends_on=other)
                )
                position = ref.end()
    return edges


def _github_estimate(source: GitHubSource, labels: list[str], body: str) -> float | None:
    convert = {"days_per_point": source.days_per_point, "hours_per_day": source.hours_per_day}
    found: list[float] = []
    for prefix, points in ((source.estimate_label_prefix, False), (source.points_label_prefix, True)):
        for label, value in _prefixed(labels, prefix):
            days = _days(value, points=points, **convert)
            if days is None:
                raise _Reject(f"label {label!r} is not an estimate like '{prefix} 3d', '{prefix} 6h' or '{prefix} 2'")
            found.append(days)
    if found:
        return max(found)  # conflicting labels: plan with the larger
    # A body is prose: a line like "Estimate: about a week" is read as no estimate rather than rejected.
    for line in _readable_body(body):
        for prefix, points in ((source.estimate_label_prefix, False), (source.points_label_prefix, True)):
            if prefix and line.lower().startswith(prefix.lower()):
                amount = _LEADING_AMOUNT.match(line[len(prefix) :].strip())
                if amount:
                    return _days(amount.group(0), points=points, **convert)
    return None


def _github_task(source: GitHubSource, repo: str, item: dict[str, Any]) -> tuple[TaskRecord, list[DependencyRecord]]:
    number = item.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise _Reject(f"issue number {number!r} is not a number")
    key = _github_key(repo, number)
    labels = [
        str(label.get("name") if isinstance(label, dict) else label).strip()
        for label in item.get("labels") or []
        if (label.get("name") if isinstance(label, dict) else label)
    ]
    plain = [_without_prefix(label, ("status", "state")) for label in labels]

    state = item.get("state")
    if state == "closed":
        status = "done"
    elif state == "open":
        status = "in_progress" if any(word in _IN_PROGRESS_WORDS for word in plain) else "todo"
    else:
        raise _Reject(f"state {state!r} is neither 'open' nor 'closed'")

    issue_type = item.get("type")  # GitHub's issue types, where the organisation uses them
    if isinstance(issue_type, dict) and issue_type.get("name"):
        task_type = _task_type(str(issue_type["name"]))
    else:
        named = (_TYPE_WORDS.get(_without_prefix(label, ("type", "kind"))) for label in labels)
        task_type = next((t for t in named if t), "task")

    body = item.get("body") if isinstance(item.get("body"), str) else ""
    created = _item_time(item, "created_at", required=True)
    updated = _item_time(item, "updated_at", required=True)
    closed = _item_time(item, "closed_at", required=False)
    assignee = item.get("assignee") if isinstance(item.get("assignee"), dict) else {}
    milestone = item.get("milestone") if isinstance(item.get("milestone"), dict) else {}
    try:
        task = TaskRecord(
            key=key,
            project=f"github:{repo.lower()}",
            title=str(item.get("title") or ""),
            status=status,
            type=task_type,
            labels=labels,
            estimate_days=_github_estimate(source, labels, body),
            assignee=assignee.get("login"),
            required_skills=[v.lower() for _, v in _prefixed(labels, source.skill_label_prefix) if v],
            created_at=created,
            # Without the issue timeline the start is unknown; while labelled in progress, its last update
            # is an upper bound of when work started.
            started_at=updated if status == "in_progress" else None,
            done_at=(closed or updated) if status == "done" else None,
            updated_at=updated,
            milestone=milestone.get("title"),
        )
    except ValidationError as exc:
        raise _Reject(_validation_reason(exc)) from None
    return task, github_dependencies(body, repo, key)


def _github_payload(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        return {"item": repr(item)[:200]}
    keep = ("number", "title", "state", "html_url", "created_at", "updated_at", "closed_at")
    payload = {k: item.get(k) for k in keep if k in item}
    payload["labels"] = [label.get("name") if isinstance(label, dict) else label for label in item.get("labels") or []]
    return payload


def read_github(
    source: GitHubSource,
    since: datetime | None,
    *,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    max_wait_seconds: float = 60.0,
    max_retries: int = 3,
) -> Batch:
    """Issues of the block's repositories updated at or after ``since`` (all when None), pull requests skipped.

    Raises SourceError when a repository cannot be read; single unreadable issues go to ``rejected``.
    """
    since = _utc(since)
    token = source.token.get_secret_value() if source.token else ""
    label = f"GitHub source '{source.label}'"
    _check_header_value(token, "token", label)
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    batch = Batch(cursor=since)
    edges: list[DependencyRecord] = []
    with _http_client(client) as http:
        fetcher = Fetcher(
            http,
            label=label,
            headers=headers,
            secrets=(token,),
            hints={
                401: "check the token in the GitHub Source block: it may be expired, revoked or mistyped",
                403: "the token lacks access: a fine-grained token needs Issues (read) on these repositories, "
                "a classic one the repo scope for private repositories",
                404: "check the repositories ('owner/name') and api_url in the GitHub Source block; GitHub answers "
                "404 for private repositories the token cannot see",
            },
            timeout_seconds=source.timeout_seconds,
            max_retries=max_retries,
            max_wait_seconds=max_wait_seconds,
            sleep=sleep,
            clock=clock,
        )
        for repo in source.repositories:
            batch.projects.append(ProjectRecord(key=f"github:{repo.lower()}", name=repo, source="github"))
            params: dict[str, Any] = {
                "state": "all",
                "sort": "created",
                "direction": "asc",
                "per_page": source.per_page,
            }
            if since is not None:
                params["since"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
            for page in fetcher.fetch_pages(f"{source.api_url}/repos/{repo}/issues", params):
                if not isinstance(page.data, list):
                    kind = type(page.data).__name__
                    raise SourceError(
                        f"{label}: page {page.number} ({page.url}) is a JSON {kind}, not a list of issues",
                        hint="check api_url in the GitHub Source block",
                    )
                for item in page.data:
                    if isinstance(item, dict):
                        batch.cursor = _newest(batch.cursor, _parse_time(item.get("updated_at")))
                        if "pull_request" in item:  # the issues API lists pull requests too
                            continue
                    try:
                        if not isinstance(item, dict):
                            raise _Reject(f"item is a JSON {type(item).__name__}, not an issue")
                        task, found = _github_task(source, repo, item)
                    except _Reject as exc:
                        number = item.get("number") if isinstance(item, dict) else None
                        batch.rejected.append(
                            {
                                "source": _github_key(repo, number) if number is not None else f"github:{repo}",
                                "reason": f"{_github_key(repo, number or '?')} (page {page.number}): {exc}",
                                "payload": _github_payload(item),
                            }
                        )
                        continue
                    batch.tasks.append(task)
                    edges.extend(found)
    batch.dependencies = _owned_edges(edges, batch.tasks)
    return batch
