"""Jira issues → task records (JQL paging in creation order, status categories, "Blocks" links)."""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError

from framework2.blocks.project_sources import JiraSource
from framework2.tasks.planning.connectors.fetch import (
    Clock,
    Fetcher,
    Sleep,
    SourceError,
    _check_header_value,
    _http_client,
)
from framework2.tasks.planning.connectors.mapping import (
    _item_time,
    _newest,
    _owned_edges,
    _parse_time,
    _prefixed,
    _Reject,
    _task_type,
    _utc,
    _validation_reason,
    _words,
)
from framework2.tasks.planning.records import Batch, DependencyRecord, ProjectRecord, TaskRecord

JIRA_FIELDS = (
    "summary",
    "status",
    "issuetype",
    "labels",
    "assignee",
    "created",
    "updated",
    "resolutiondate",
    "issuelinks",
    "fixVersions",
    "project",
    "parent",
    "statuscategorychangedate",
)
_JIRA_STATUS = {"new": "todo", "undefined": "todo", "indeterminate": "in_progress", "done": "done"}
_JIRA_TIME_FIELDS = {"timeoriginalestimate", "timeestimate", "aggregatetimeoriginalestimate", "aggregatetimeestimate"}


def jira_jql(source: JiraSource, since: datetime | None) -> str:
    """The block's JQL, plus ``updated >= "..."`` when ``since`` is given, in creation order."""
    base = source.base_jql()
    orders = list(re.finditer(r"\border\s+by\b", base, re.I))
    condition = (base[: orders[-1].start()] if orders else base).strip()
    parts = [f"({condition})"] if condition else []
    since = _utc(since)
    if since is not None:
        # Jira reads JQL dates in the account's time zone and to the minute: round down so nothing is missed.
        local = since.astimezone(ZoneInfo(source.jql_timezone))
        parts.append(f'updated >= "{local:%Y-%m-%d %H:%M}"')
    return " AND ".join(parts) + " ORDER BY created ASC, key ASC"


def _jira_estimate(source: JiraSource, fields: dict[str, Any]) -> float | None:
    name = source.estimate_field
    if not name:
        return None
    value = fields.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise _Reject(f"estimate field {name} {value!r} is not a number of zero or more")
    if name in _JIRA_TIME_FIELDS:  # time tracking is in seconds
        return number / 3600 / source.hours_per_day
    return number * source.days_per_point


def _jira_assignee(source: JiraSource, fields: dict[str, Any]) -> str | None:
    person = fields.get("assignee")
    if not isinstance(person, dict):
        return None
    return person.get(source.assignee_handle) or person.get("accountId")


def _jira_milestone(fields: dict[str, Any]) -> str | None:
    versions = [v.get("name") for v in fields.get("fixVersions") or [] if isinstance(v, dict) and v.get("name")]
    if versions:
        return str(versions[0])
    parent = fields.get("parent") if isinstance(fields.get("parent"), dict) else {}
    parent_fields = parent.get("fields") if isinstance(parent.get("fields"), dict) else {}
    parent_type = parent_fields.get("issuetype") if isinstance(parent_fields.get("issuetype"), dict) else {}
    if _words(str(parent_type.get("name") or "")) == "epic":
        return parent_fields.get("summary") or parent.get("key")
    return None


def jira_dependencies(this: str, links: Any) -> list[DependencyRecord]:
    """Edges from an issue's "Blocks" links: inward ("is blocked by") → this depends on it, outward the reverse."""
    edges = []
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict):
            continue
        kind = link.get("type") if isinstance(link.get("type"), dict) else {}
        if _words(str(kind.get("name") or "")) != "blocks" and _words(str(kind.get("inward") or "")) != (
            "is blocked by"
        ):
            continue
        inward, outward = link.get("inwardIssue"), link.get("outwardIssue")
        if isinstance(inward, dict) and inward.get("key"):
            edges.append(DependencyRecord(task=this, depends_on=f"jira:{inward['key']}"))
        if isinstance(outward, dict) and outward.get("key"):
            edges.append(DependencyRecord(task=f"jira:{outward['key']}", depends_on=this))
    return edges


def _jira_task(source: JiraSource, issue: dict[str, Any]) -> tuple[TaskRecord, list[DependencyRecord]]:
    issue_key = issue.get("key")
    if not isinstance(issue_key, str) or not issue_key.strip():
        raise _Reject("issue has no key")
    fields = issue.get("fields")
    if not isinstance(fields, dict):
        raise _Reject("issue has no fields")
    key = f"jira:{issue_key}"
    project = fields.get("project") if isinstance(fields.get("project"), dict) else {}
    project_key = project.get("key") or issue_key.rsplit("-", 1)[0]

    status_field = fields.get("status") if isinstance(fields.get("status"), dict) else {}
    category = status_field.get("statusCategory") if isinstance(status_field.get("statusCategory"), dict) else {}
    status = _JIRA_STATUS.get(str(category.get("key")))
    if status is None:
        raise _Reject(
            f"status {status_field.get('name')!r} has status category {category.get('key')!r}, not one of "
            "new, indeterminate, done"
        )
    issue_type = fields.get("issuetype") if isinstance(fields.get("issuetype"), dict) else {}
    labels = [str(label) for label in fields.get("labels") or [] if str(label).strip()]
    created = _item_time(fields, "created", required=True)
    updated = _item_time(fields, "updated", required=True)
    resolved = _item_time(fields, "resolutiondate", required=False)
    category_changed = _item_time(fields, "statuscategorychangedate", required=False)
    try:
        task = TaskRecord(
            key=key,
            project=f"jira:{project_key}",
            title=str(fields.get("summary") or ""),
            status=status,
            type=_task_type(str(issue_type.get("name") or "task")),
            labels=labels,
            estimate_days=_jira_estimate(source, fields),
            assignee=_jira_assignee(source, fields),
            required_skills=[v.lower() for _, v in _prefixed(labels, source.skill_label_prefix) if v],
            created_at=created,
            # The status category last changed when it entered its current one: the start while in progress.
            started_at=category_changed if status == "in_progress" else None,
            done_at=(resolved or category_changed or updated) if status == "done" else None,
            updated_at=updated,
            milestone=_jira_milestone(fields),
        )
    except ValidationError as exc:
        raise _Reject(_validation_reason(exc)) from None
    return task, jira_dependencies(key, fields.get("issuelinks"))


def _jira_payload(issue: Any) -> dict[str, Any]:
    if not isinstance(issue, dict):
        return {"item": repr(issue)[:200]}
    fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
    status = fields.get("status") if isinstance(fields.get("status"), dict) else {}
    return {
        "key": issue.get("key"),
        "summary": fields.get("summary"),
        "status": status.get("name"),
        "created": fields.get("created"),
        "updated": fields.get("updated"),
    }


def iter_jira_issues(
    source: JiraSource,
    jql: str,
    fields: Sequence[str],
    *,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    max_wait_seconds: float = 60.0,
    max_retries: int = 3,
) -> Iterator[tuple[int, Any]]:
    """Every issue ``jql`` finds, raw, with the page it came on (PPMS tasks and PCES requirements read through it).

    Pages are followed by the shape of the answer: ``nextPageToken``/``isLast`` (``/search/jql``) or
    ``startAt``/``total`` (the classic ``/search``). Raises SourceError when the search cannot be read.
    """
    token = source.api_token.get_secret_value()
    label = f"Jira source '{source.label}'"
    _check_header_value(token, "api_token", label)
    _check_header_value(source.email, "email", label)
    basic = base64.b64encode(f"{source.email}:{token}".encode()).decode()
    url = source.site_url + source.search_path
    query = {"jql": jql, "fields": list(fields), "maxResults": source.page_size}
    with _http_client(client) as http:
        fetcher = Fetcher(
            http,
            label=label,
            headers={"Accept": "application/json"},
            auth=(source.email, token),
            secrets=(token, basic),
            hints={
                401: "check email and api_token in the Jira Source block (the token must belong to that email)",
                403: "the account lacks 'Browse projects' permission on these projects",
                400: "Jira rejected the JQL; fix jql or project_keys in the Jira Source block",
                404: "check site_url and search_path in the Jira Source block",
                410: "this search endpoint was removed; set search_path to /rest/api/3/search/jql",
            },
            timeout_seconds=source.timeout_seconds,
            max_retries=max_retries,
            max_wait_seconds=max_wait_seconds,
            sleep=sleep,
            clock=clock,
        )
        body: dict[str, Any] = dict(query)
        number, tokens = 1, set()
        while True:
            document, _ = fetcher.request_json("POST", url, page=number, json_body=body)
            where = f"{label}: page {number} ({url})"
            if not isinstance(document, dict) or not isinstance(document.get("issues"), list):
                found = ", ".join(map(str, document)) if isinstance(document, dict) else type(document).__name__
                raise SourceError(
                    f"{where} has no 'issues' list (found: {found or 'nothing'})",
                    hint="check site_url and search_path in the Jira Source block",
                )
            for issue in document["issues"]:
                yield number, issue

            if "nextPageToken" in document or ("isLast" in document and "startAt" not in document):
                next_token = document.get("nextPageToken")
                if document.get("isLast") is True or not next_token:
                    break
                if next_token in tokens:
                    raise SourceError(f"{where} repeats a page token", hint="Jira's pagination is looping; run again")
                tokens.add(next_token)
                body = {**query, "nextPageToken": next_token}
            elif "startAt" in document or "total" in document:
                try:
                    start, total = int(document.get("startAt", body.get("startAt", 0))), int(document["total"])
                except (KeyError, TypeError, ValueError):
                    raise SourceError(
                        f"{where} has startAt but no numeric 'total'", hint="check search_path in the Jira Source block"
                    ) from None
                following = start + len(document["issues"])
                if not document["issues"] or following >= total or document.get("isLast") is True:
                    break
                body = {**query, "startAt": following}
            else:
                break  # neither shape: a single page
            number += 1


def read_jira(
    source: JiraSource,
    since: datetime | None,
    *,
    client: httpx.Client | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.time,
    max_wait_seconds: float = 60.0,
    max_retries: int = 3,
) -> Batch:
    """Issues matching the block's JQL updated at or after ``since`` (all when None), as tasks.

    Raises SourceError when the search cannot be read (see ``iter_jira_issues``).
    """
    since = _utc(since)
    label = f"Jira source '{source.label}'"
    fields = [*JIRA_FIELDS, *([source.estimate_field] if source.estimate_field else [])]
    batch = Batch(cursor=since)
    edges: list[DependencyRecord] = []
    projects: dict[str, ProjectRecord] = {}
    issues = iter_jira_issues(
        source,
        jira_jql(source, since),
        fields,
        client=client,
        sleep=sleep,
        clock=clock,
        max_wait_seconds=max_wait_seconds,
        max_retries=max_retries,
    )
    for number, issue in issues:
        fields_of = issue.get("fields") if isinstance(issue, dict) else None
        if isinstance(fields_of, dict):
            batch.cursor = _newest(batch.cursor, _parse_time(fields_of.get("updated")))
        try:
            if not isinstance(issue, dict):
                raise _Reject(f"item is a JSON {type(issue).__name__}, not an issue")
            task, found_edges = _jira_task(source, issue)
        except _Reject as exc:
            issue_key = issue.get("key") if isinstance(issue, dict) else None
            batch.rejected.append(
                {
                    "source": f"jira:{issue_key}" if issue_key else label,
                    "reason": f"jira:{issue_key or '?'} (page {number}): {exc}",
                    "payload": _jira_payload(issue),
                }
            )
            continue
        batch.tasks.append(task)
        edges.extend(found_edges)
        project = fields_of.get("project") if isinstance(fields_of.get("project"), dict) else {}
        projects.setdefault(
            task.project,
            ProjectRecord(key=task.project, name=project.get("name") or task.project[5:], source="jira"),
        )
    for key in source.project_keys:
        projects.setdefault(f"jira:{key}", ProjectRecord(key=f"jira:{key}", name=key, source="jira"))
    batch.projects = list(projects.values())
    batch.dependencies = _owned_edges(edges, batch.tasks)
    return batch
