"""Jira issues (their Atlassian document bodies) as requirements."""

from __future__ import annotations

import re
from typing import Any

from framework2.errors import DataError
from framework2.tasks.context.requirements.criteria import acceptance_criteria
from framework2.tasks.context.requirements.markdown import _type_name
from framework2.tasks.context.requirements.model import MOSCOW, STATUSES, Requirement, _collapse, _make, normalise_text

# Jira's default priority schemes (Cloud: Highest … Lowest; Server: Blocker … Trivial) on the 1-5 scale.
_JIRA_PRIORITY = {
    "highest": "1",
    "blocker": "1",
    "high": "2",
    "critical": "2",
    "medium": "3",
    "major": "3",
    "low": "4",
    "minor": "4",
    "lowest": "5",
    "trivial": "5",
}
_JIRA_RETIRED = {"won't do", "wont do", "cancelled", "canceled", "rejected", "obsolete", "declined", "retired"}
_JIRA_CATEGORY = {"new": "draft", "indeterminate": "approved", "done": "implemented"}


def _adf_inline(node: Any) -> str:
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
    if kind == "text":
        return str(node.get("text") or "")
    if kind == "hardBreak":
        return "\n"
    if kind in ("mention", "emoji", "status", "date"):
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in ("inlineCard", "blockCard", "embedCard"):
        return str(attrs.get("url") or "")
    return "".join(_adf_inline(child) for child in _adf_children(node))


def _adf_children(node: dict[str, Any]) -> list[Any]:
    content = node.get("content")
    return content if isinstance(content, list) else []


_ADF_INLINE = {"text", "hardBreak", "mention", "emoji", "status", "date", "inlineCard"}


def _adf_lines(node: Any) -> list[str]:
    """A block node as Markdown lines (lists as '- '/'1. '/'- [ ] ' items, headings as '#'), blocks separated by
    a blank line, so the Markdown criteria rules apply to Jira descriptions too."""
    if not isinstance(node, dict):
        return []
    kind = node.get("type")
    attrs = node.get("attrs") if isinstance(node.get("attrs"), dict) else {}
    children = _adf_children(node)
    if kind in _ADF_INLINE:
        return _adf_inline(node).split("\n")
    if kind == "paragraph":
        return _adf_inline(node).split("\n")
    if kind == "heading":
        level = attrs.get("level") if isinstance(attrs.get("level"), int) else 1
        return ["#" * min(max(level, 1), 6) + " " + _collapse(_adf_inline(node))]
    if kind in ("bulletList", "orderedList", "taskList"):
        lines: list[str] = []
        for number, item in enumerate(children, start=1):
            if not isinstance(item, dict):
                continue
            if kind == "orderedList":
                marker = f"{number}. "
            elif item.get("type") == "taskItem":
                done = (item.get("attrs") or {}).get("state") == "DONE"
                marker = "- [x] " if done else "- [ ] "
            else:
                marker = "- "
            item_lines = _adf_item_lines(item)
            if not item_lines:
                item_lines = [""]
            lines.append(marker + item_lines[0])
            lines.extend(" " * len(marker) + line if line else "" for line in item_lines[1:])
        return lines
    if kind == "codeBlock":
        language = attrs.get("language") or ""
        return [f"```{language}", *_adf_inline(node).split("\n"), "```"]
    if kind == "blockquote":
        return ["> " + line if line else ">" for line in _adf_blocks(children)]
    if kind == "rule":
        return ["---"]
    if kind == "table":
        return [
            "| " + " | ".join(_collapse(_adf_inline(cell)) for cell in _adf_children(row)) + " |"
            for row in children
            if isinstance(row, dict)
        ]
    if "text" in node:
        return str(node.get("text") or "").split("\n")
    return _adf_blocks(children)  # doc, panel, expand, layouts, unknown containers


def _adf_item_lines(item: dict[str, Any]) -> list[str]:
    """A list item's lines: its inline text (task items hold text directly) and nested blocks, tight."""
    lines: list[str] = []
    inline = ""
    for child in _adf_children(item):
        if isinstance(child, dict) and child.get("type") in _ADF_INLINE:
            inline += _adf_inline(child)
            continue
        if inline:
            lines.extend(inline.split("\n"))
            inline = ""
        lines.extend(_adf_lines(child))
    if inline:
        lines.extend(inline.split("\n"))
    return lines


def _adf_blocks(children: list[Any]) -> list[str]:
    lines: list[str] = []
    for child in children:
        block = _adf_lines(child)
        if not block:
            continue
        if lines:
            lines.append("")
        lines.extend(block)
    return lines


def adf_to_markdown(document: Any) -> str:
    """An Atlassian Document Format document as Markdown text (text nodes concatenated; structure kept)."""
    return normalise_text("\n".join(_adf_lines(document)))


def _field(container: Any, key: str) -> dict[str, Any]:
    value = container.get(key) if isinstance(container, dict) else None
    return value if isinstance(value, dict) else {}


def _jira_status(fields: dict[str, Any]) -> str:
    status = _field(fields, "status")
    name = _collapse(str(status.get("name") or "")).lower()
    if name in STATUSES:
        return name
    if name in _JIRA_RETIRED:
        return "retired"
    category = str(_field(status, "statusCategory").get("key") or "")
    return _JIRA_CATEGORY.get(category, "draft")


def _jira_priority(fields: dict[str, Any]) -> str | None:
    name = re.sub(r"[\s'’]", "", str(_field(fields, "priority").get("name") or "")).lower()
    if name in MOSCOW:
        return name
    return _JIRA_PRIORITY.get(name)


def _jira_tasks(key: str, fields: dict[str, Any]) -> list[str]:
    issue_type = _collapse(str(_field(fields, "issuetype").get("name") or "")).lower()
    # A story is its own implementation work; an epic is done through its children, not by itself.
    tasks = set() if issue_type == "epic" else {f"jira:{key}"}
    links = fields.get("issuelinks")
    for link in links if isinstance(links, list) else []:
        for side in ("inwardIssue", "outwardIssue"):
            other = _field(link, side).get("key")
            if isinstance(other, str) and other.strip():
                tasks.add(f"jira:{other.strip()}")
    subtasks = fields.get("subtasks")
    for subtask in subtasks if isinstance(subtasks, list) else []:
        other = subtask.get("key") if isinstance(subtask, dict) else None
        if isinstance(other, str) and other.strip():
            tasks.add(f"jira:{other.strip()}")
    return sorted(tasks)


def requirement_from_jira(issue: dict[str, Any]) -> Requirement:
    """A requirement from a Jira issue as the REST API v3 search returns it; DataError when it has no key or
    summary.

    Mapping: id = the issue key ("SHOP-12"); source "jira:SHOP-12"; title = summary; body = the description
    (plain text as is, ADF turned into Markdown); criteria as for Markdown, plus Jira wiki headings
    ("h3. Acceptance criteria") and a line that is only "Acceptance criteria:". priority: MoSCoW names as
    they are, Jira's default names on 1-5 (Highest/Blocker 1, High/Critical 2, Medium/Major 3, Low/Minor 4,
    Lowest/Trivial 5), any other name None. owner = assignee accountId (else displayName). project =
    "jira:" + project key (PPMS's project key). status: a status named draft/approved/implemented/retired is
    that; Won't Do/Cancelled/Rejected/Obsolete/Declined → retired; else by status category (To Do → draft,
    In Progress → approved, Done → implemented). tasks = the issue itself (unless it is an epic) and every
    linked issue (either direction, any link type) and sub-task, as "jira:KEY". components = component
    names.
    """
    key = issue.get("key") if isinstance(issue, dict) else None
    if not isinstance(key, str) or not key.strip():
        raise DataError("Jira issue has no key", hint="pass an issue as the Jira search API returns it")
    key = key.strip()
    fields = issue.get("fields")
    if not isinstance(fields, dict):
        raise DataError(f"Jira issue {key} has no fields", hint="request the issue with its fields")
    summary = fields.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise DataError(f"Jira issue {key} has no summary", hint="give the issue a summary in Jira")
    description = fields.get("description")
    if description is None:
        body = ""
    elif isinstance(description, str):
        body = normalise_text(description)
    elif isinstance(description, dict):
        body = adf_to_markdown(description)
    else:
        raise DataError(
            f"Jira issue {key}: description is a {_type_name(description)}, neither text nor an ADF document",
            hint="request the description as text or Atlassian Document Format",
        )
    assignee = _field(fields, "assignee")
    owner = assignee.get("accountId") or assignee.get("displayName")
    project_key = _field(fields, "project").get("key")
    component_names = [
        _collapse(str(c.get("name"))) for c in fields.get("components") or [] if isinstance(c, dict) and c.get("name")
    ]
    record = {
        "id": key,
        "title": _collapse(summary),
        "priority": _jira_priority(fields),
        "owner": _collapse(str(owner)) if owner else None,
        "project": f"jira:{project_key}" if project_key else None,
        "tasks": _jira_tasks(key, fields),
        "components": sorted(set(component_names)),
        "status": _jira_status(fields),
        "body": body,
        "acceptance_criteria": acceptance_criteria(body, jira=True),
    }
    return _make(record, f"jira:{key}")
