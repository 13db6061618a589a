"""GitHub and Jira webhooks mapped onto the events the systems accept (or ignored, saying why)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from framework2.service.webhooks.contract import ContractError


@dataclass(frozen=True)
class Routed:
    """A provider webhook translated into an allowed framework2 event."""

    system: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Ignored:
    """A provider webhook that is understood but causes no event, and why."""

    reason: str


def _get(document: Any, *path: str, kind: type | tuple[type, ...] = str, required: bool = True) -> Any:
    """``document[path...]`` of type ``kind``; a ContractError names the missing or mistyped field."""
    value = document
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if value is None and not required:
        return None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ContractError([{"loc": ["body", *path], "msg": "missing or of the wrong type"}])
    return value


GITHUB_EVENTS = ("issues", "pull_request", "deployment", "deployment_status", "ping")


def map_github(event: str | None, payload: Any) -> Routed | Ignored:
    """Translate a GitHub webhook (``X-GitHub-Event``) into a framework2 event, or say why it causes none."""
    if not isinstance(payload, dict):
        raise ContractError([{"loc": ["body"], "msg": "a GitHub webhook body is a JSON object"}])
    if event == "ping":
        return Ignored(f"pong: the GitHub webhook (hook {payload.get('hook_id')}) reaches Framework Set 2")
    if event not in GITHUB_EVENTS:
        return Ignored(f"GitHub event {event!r} is not used; subscribe the webhook to: {', '.join(GITHUB_EVENTS[:-1])}")
    repo = _get(payload, "repository", "full_name")
    name = _get(payload, "repository", "name")
    if event in ("issues", "pull_request"):
        item = "issue" if event == "issues" else "pull_request"
        number = _get(payload, item, "number", kind=int)
        data = {
            "tracker": "github",
            "key": f"{repo}#{number}",
            "action": _get(payload, "action"),
            "repo": repo,
            item: number,
            "state": _get(payload, item, "state", required=False),
            "url": _get(payload, item, "html_url", required=False),
        }
        if event == "pull_request":
            data["merged"] = _get(payload, "pull_request", "merged", kind=bool, required=False)
        return Routed("ppms", "tasks.changed", data)
    deployment = _get(payload, "deployment", kind=dict)
    extra = deployment.get("payload")
    if isinstance(extra, str):  # GitHub passes the deployment's payload through as given: maybe JSON text
        try:
            extra = json.loads(extra)
        except ValueError:
            extra = {}
    extra = extra if isinstance(extra, dict) else {}
    app = extra.get("app") if isinstance(extra.get("app"), str) else name
    context = {
        "repo": repo,
        "environment": _get(payload, "deployment", "environment", required=False),
        "ref": _get(payload, "deployment", "ref", required=False),
        "sha": _get(payload, "deployment", "sha", required=False),
    }
    if event == "deployment":
        image = extra.get("image")
        if not isinstance(image, str) or not image:
            return Ignored(
                'the GitHub deployment\'s payload has no \'image\': add {"app": ..., "image": ...} to it '
                "to start a PLOS blue-green release"
            )
        namespace = extra.get("namespace") if isinstance(extra.get("namespace"), str) else "default"
        return Routed("plos", "release.requested", {"app": app, "image": image, "namespace": namespace, **context})
    state = _get(payload, "deployment_status", "state")
    url = _get(payload, "deployment_status", "target_url", required=False)
    if state == "success":
        release = extra.get("release") if isinstance(extra.get("release"), str) else context["ref"] or context["sha"]
        return Routed("puxt", "release.deployed", {"release": release, "app": app, "url": url, **context})
    if state in ("failure", "error"):
        return Routed("plos", "deployment.failed", {"app": app, "state": state, "url": url, **context})
    return Ignored(f"deployment_status {state!r} is not acted on; only success, failure and error are")


JIRA_ISSUE_EVENTS = {"jira:issue_created": "created", "jira:issue_updated": "updated", "jira:issue_deleted": "deleted"}
JIRA_LINK_EVENTS = {"issuelink_created": "link_created", "issuelink_deleted": "link_deleted"}


def map_jira(payload: Any) -> Routed | Ignored:
    """Translate a Jira Cloud webhook (``webhookEvent``) into a framework2 event, or say why it causes none."""
    if not isinstance(payload, dict):
        raise ContractError([{"loc": ["body"], "msg": "a Jira webhook body is a JSON object"}])
    kind = payload.get("webhookEvent")
    if kind in JIRA_ISSUE_EVENTS:
        changelog = payload.get("changelog") if isinstance(payload.get("changelog"), dict) else {}
        items = changelog.get("items") if isinstance(changelog.get("items"), list) else []
        fields = {i["field"] for i in items if isinstance(i, dict) and isinstance(i.get("field"), str)}
        return Routed(
            "ppms",
            "tasks.changed",
            {
                "tracker": "jira",
                "key": _get(payload, "issue", "key"),
                "action": JIRA_ISSUE_EVENTS[kind],
                "project": _get(payload, "issue", "fields", "project", "key", required=False),
                "changed": sorted(fields),
            },
        )
    if kind in JIRA_LINK_EVENTS:
        link = _get(payload, "issueLink", kind=dict)
        return Routed(
            "ppms",
            "tasks.changed",
            {
                "tracker": "jira",
                "action": JIRA_LINK_EVENTS[kind],
                "link": {
                    "source_issue_id": link.get("sourceIssueId"),
                    "destination_issue_id": link.get("destinationIssueId"),
                    "type": (link.get("issueLinkType") or {}).get("name")
                    if isinstance(link.get("issueLinkType"), dict)
                    else None,
                },
            },
        )
    used = ", ".join([*JIRA_ISSUE_EVENTS, *JIRA_LINK_EVENTS])
    return Ignored(f"Jira event {kind!r} is not used; subscribe the webhook to: {used}")
