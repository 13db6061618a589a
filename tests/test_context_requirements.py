"""PCES requirements: Markdown files with front matter and Jira issues read into versioned records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from framework2.errors import DataError
from framework2.tasks.context.requirements import (
    FileProblem,
    Requirement,
    acceptance_criteria,
    parse_requirement,
    read_requirements_dir,
    requirement_from_jira,
    unknown_task_links,
)

GOOD = """---
id: REQ-12
title: Guest checkout
priority: Must
owner: '@alice'
project: jira:SHOP
tasks: [jira:SHOP-2, jira:SHOP-1, jira:SHOP-1]
components: checkout
status: Approved
---
A guest pays without creating an account.

## Acceptance criteria
- [ ] A guest can pay by card
- [x] Totals include VAT:
  - for EU addresses
  - for UK
    addresses
1. The receipt is e-mailed
2) The order shows in the back office

Notes between the lists are prose, not criteria.

```
- not a criterion: it is code
## not a heading either
```
* A star item
  continued on the next line

### Edge cases
- An empty cart cannot be paid (a lower heading stays in the section)

## Out of scope
- Gift cards
"""


def write(root: Path, name: str, text: str | bytes) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def requirement(id: str = "REQ-1", title: str = "A title", **front: Any) -> str:
    lines = [f"id: {id}", f"title: {title}", *(f"{k}: {v}" for k, v in front.items())]
    return "---\n" + "\n".join(lines) + "\n---\nBody.\n\n## Acceptance criteria\n- It works\n"


# --- parsing -----------------------------------------------------------------------------------------------


def test_good_file_is_parsed_with_its_front_matter_and_criteria() -> None:
    req = parse_requirement(GOOD, "shop/checkout.md")

    assert (req.id, req.title, req.priority, req.owner, req.project, req.status) == (
        "REQ-12",
        "Guest checkout",
        "must",
        "alice",
        "jira:SHOP",
        "approved",
    )
    assert req.tasks == ["jira:SHOP-1", "jira:SHOP-2"]  # a set: sorted, once each
    assert req.components == ["checkout"]  # one name without a list is a list of one
    assert req.source == "shop/checkout.md"
    assert req.body.startswith("A guest pays") and req.body.endswith("- Gift cards")
    assert req.acceptance_criteria == [
        "A guest can pay by card",
        "Totals include VAT: for EU addresses; for UK addresses",
        "The receipt is e-mailed",
        "The order shows in the back office",
        "A star item continued on the next line",
        "An empty cart cannot be paid (a lower heading stays in the section)",
    ]
    assert len(req.content_hash) == 64


def test_criteria_section_ends_at_a_heading_of_the_same_or_higher_level() -> None:
    body = "# Req\n### acceptance criteria:\n- one\n#### Detail\n- two\n## Design\n- not a criterion\n"
    assert acceptance_criteria(body) == ["one", "two"]


def test_setext_heading_starts_the_criteria_section_and_a_missing_section_gives_no_criteria() -> None:
    assert acceptance_criteria("Acceptance Criteria\n---\n- one\n\nNext\n===\n- two\n") == ["one"]
    assert acceptance_criteria("Just prose.\n\n- a list without the heading\n") == []


def test_defaults_when_optional_fields_are_absent() -> None:
    req = parse_requirement("---\nid: REQ-1\ntitle: Minimal\n---\n", "a.md")

    assert (req.priority, req.owner, req.project, req.tasks, req.components, req.status) == (
        None,
        None,
        None,
        [],
        [],
        "draft",
    )
    assert req.body == "" and req.acceptance_criteria == []


@pytest.mark.parametrize(
    ("written", "expected"),
    [("Must", "must"), ('"Won\'t"', "wont"), ("could", "could"), ("1", "1"), ("'5'", "5")],
)
def test_priority_keeps_moscow_words_and_the_1_to_5_scale_without_converting(written: str, expected: str) -> None:
    assert parse_requirement(requirement(priority=written), "a.md").priority == expected


def test_every_problem_of_a_file_is_reported_at_once_with_hints() -> None:
    text = "---\nid: 12\ntitle: x\ntasks: 5\npriority: urgent\nstatus: done\n---\n"
    with pytest.raises(DataError) as caught:
        parse_requirement(text, "a.md")

    assert caught.value.message == (
        "id must be text, not 12 (number); priority 'urgent' is not one of must, should, could, wont or 1-5; "
        "tasks must be a list of text, not 5; status 'done' is not one of draft, approved, implemented, retired"
    )
    assert "write one of: draft, approved, implemented, retired" in caught.value.hint


# --- folders -----------------------------------------------------------------------------------------------

BAD_FILES = [
    ("empty.md", "", "file is empty"),
    ("blank.md", "  \n\n", "file is empty"),
    ("no_front.md", "# Just a heading\n", "file has no front matter (it must start with a line '---')"),
    ("unclosed.md", "---\nid: REQ-9\ntitle: x\n", "front matter is not closed (no second '---' line)"),
    (
        "bad_yaml.md",
        "---\nid: REQ-9\ntitle: a: b\n---\n",
        "front matter is not valid YAML at line 3, column 9: mapping values are not allowed here",
    ),
    ("empty_front.md", "---\n---\nBody\n", "front matter is empty"),
    ("list_front.md", "---\n- id\n---\n", "front matter is a list, not 'key: value' lines"),
    ("no_id.md", "---\ntitle: x\n---\n", "front matter has no id"),
    ("no_title.md", "---\nid: REQ-9\ntitle: ''\n---\n", "front matter has no title"),
    (
        "wrong_type.md",
        "---\nid: REQ-9\ntitle: x\ncomponents: {a: 1}\n---\n",
        "components must be a list of text, not {'a': 1}",
    ),
    (
        "latin1.md",
        "---\nid: REQ-9\ntitle: caf\xe9\n---\n".encode("latin-1"),
        "file is not UTF-8 text (bad byte 0xe9 at position 24)",
    ),
]


@pytest.mark.parametrize(("name", "content", "reason"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_bad_file_is_a_problem_with_its_reason_and_the_other_files_are_read(
    tmp_path: Path, name: str, content: str | bytes, reason: str
) -> None:
    write(tmp_path, "a_good.md", requirement("REQ-1"))
    write(tmp_path, name, content)
    write(tmp_path, "z_good.md", requirement("REQ-2"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1", "REQ-2"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert (problem.source, problem.reason) == (name, reason)
    assert problem.hint  # always says what to do


def test_duplicate_ids_are_reported_for_every_file_and_none_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "a.md", requirement("REQ-3", "First"))
    write(tmp_path, "sub/b.md", requirement("req-3", "Second"))  # ids compare case-insensitively
    write(tmp_path, "c.md", requirement("REQ-4"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-4"]
    assert [(p.source, p.reason) for p in result.problems] == [
        ("a.md", "REQ-3 is defined in a.md and sub/b.md; ids must be unique"),
        ("sub/b.md", "req-3 is defined in a.md and sub/b.md; ids must be unique"),
    ]


def test_files_are_read_in_sorted_path_order_with_sources_relative_to_the_root(tmp_path: Path) -> None:
    write(tmp_path, "b/z.md", requirement("REQ-3"))
    write(tmp_path, "a.md", requirement("REQ-2"))
    write(tmp_path, "b/a.md", requirement("REQ-1"))
    write(tmp_path, "notes.txt", "not markdown")

    result = read_requirements_dir(str(tmp_path))

    assert [(r.source, r.id) for r in result.requirements] == [
        ("a.md", "REQ-2"),
        ("b/a.md", "REQ-1"),
        ("b/z.md", "REQ-3"),
    ]
    assert result.problems == []


def test_readme_without_front_matter_is_skipped_and_with_front_matter_is_read(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# Requirements\nOne file per requirement.\n")
    write(tmp_path, "sub/readme.md", requirement("REQ-7"))

    result = read_requirements_dir(tmp_path)

    assert [r.source for r in result.requirements] == ["sub/readme.md"]
    assert result.problems == []


def test_hidden_folders_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, ".github/PULL_REQUEST_TEMPLATE.md", "## What changed\n")
    write(tmp_path, "a.md", requirement("REQ-1"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1"] and result.problems == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks here")
def test_a_symlink_outside_the_root_is_reported_and_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "reqs", tmp_path / "elsewhere"
    secret = write(outside, "secret.md", requirement("REQ-99"))
    write(root, "a.md", requirement("REQ-1"))
    (root / "link.md").symlink_to(secret)
    (root / "inside.md").symlink_to(root / "a.md")  # a second path to a file already read: read once

    result = read_requirements_dir(root)

    assert [r.id for r in result.requirements] == ["REQ-1"]
    assert [p.source for p in result.problems] == ["link.md"]
    assert result.problems[0].reason.startswith("symlink points outside the requirements folder")


def test_a_missing_root_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_requirements_dir(tmp_path / "nope")


def test_unknown_task_links_are_reported_per_file_and_the_requirement_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "a.md", requirement("REQ-1", tasks="[jira:SHOP-1, jira:SHOP-9, jira:SHOP-8]"))
    write(tmp_path, "b.md", requirement("REQ-2", tasks="[jira:SHOP-1]"))
    result = read_requirements_dir(tmp_path)

    problems = unknown_task_links(result.requirements, {"jira:SHOP-1"})

    assert [r.id for r in result.requirements] == ["REQ-1", "REQ-2"]
    assert problems == [
        FileProblem(
            source="a.md",
            reason="REQ-1 links to tasks PPMS does not know: jira:SHOP-8, jira:SHOP-9",
            hint=problems[0].hint,
        )
    ]
    assert unknown_task_links(result.requirements, {"jira:SHOP-1", "jira:SHOP-8", "jira:SHOP-9"}) == []


# --- content hash --------------------------------------------------------------------------------------------


def test_content_hash_ignores_the_path_line_endings_trailing_whitespace_and_yaml_style(tmp_path: Path) -> None:
    original = parse_requirement(GOOD, "shop/checkout.md")
    crlf = GOOD.replace("\n", "\r\n")
    trailing = "\n".join(line + "  \t" for line in GOOD.split("\n")) + "\n\n"
    restyled = GOOD.replace("title: Guest checkout", 'title: "Guest checkout"').replace(
        "tasks: [jira:SHOP-2, jira:SHOP-1, jira:SHOP-1]", "tasks:\n  - jira:SHOP-1\n  - jira:SHOP-2"
    )
    write(tmp_path, "moved/elsewhere.md", crlf)

    moved = read_requirements_dir(tmp_path).requirements[0]

    assert moved.source == "moved/elsewhere.md"
    hashes = {
        original.content_hash,
        moved.content_hash,
        parse_requirement(crlf, "a.md").content_hash,
        parse_requirement(trailing, "a.md").content_hash,
        parse_requirement(restyled, "a.md").content_hash,
    }
    assert hashes == {original.content_hash}
    assert parse_requirement(trailing, "a.md").body == original.body


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("account.", "account!"),  # the body
        ("- [ ] A guest can pay by card", "- [ ] A guest can pay by card or PayPal"),  # a criterion
        ("priority: Must", "priority: should"),
        ("components: checkout", "components: [checkout, billing]"),
        ("\n\n## Acceptance criteria", "\n\n\n## Acceptance criteria"),  # a blank line inside the body counts
    ],
)
def test_content_hash_changes_with_a_real_edit(old: str, new: str) -> None:
    assert old in GOOD
    edited = GOOD.replace(old, new, 1)
    assert parse_requirement(edited, "a.md").content_hash != parse_requirement(GOOD, "a.md").content_hash


def test_parse_requirement_raises_a_data_error_with_message_and_hint() -> None:
    with pytest.raises(DataError) as caught:
        parse_requirement("---\ntitle: No id\n---\n", "a.md")

    assert caught.value.message == "front matter has no id"
    assert caught.value.hint == "add 'id: REQ-1' to the front matter"


# --- Jira ----------------------------------------------------------------------------------------------------


def jira_issue(description: Any, **fields: Any) -> dict[str, Any]:
    """An issue as the Jira Cloud REST API v3 search returns it (the fields PCES reads)."""
    base: dict[str, Any] = {
        "summary": "Guest checkout",
        "description": description,
        "priority": {"name": "High"},
        "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Alice Doe"},
        "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
        "issuetype": {"name": "Story"},
        "project": {"key": "SHOP"},
        "components": [{"name": "checkout"}, {"name": "billing"}],
        "issuelinks": [
            {"type": {"name": "Blocks"}, "outwardIssue": {"key": "SHOP-20"}},
            {"type": {"name": "Relates"}, "inwardIssue": {"key": "WEB-3"}},
        ],
        "subtasks": [{"key": "SHOP-13"}],
    }
    base.update(fields)
    return {"id": "10012", "key": "SHOP-12", "fields": base}


PLAIN = """The guest pays without an account.

h3. Acceptance criteria
* A guest can pay by card
* Totals include VAT

h3. Notes
* not a criterion
"""

ADF = {
    "type": "doc",
    "version": 1,
    "content": [
        {
            "type": "paragraph",
            "content": [{"type": "text", "text": "The guest pays "}, {"type": "text", "text": "fast."}],
        },
        {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Acceptance criteria"}]},
        {
            "type": "bulletList",
            "content": [
                {
                    "type": "listItem",
                    "content": [
                        {"type": "paragraph", "content": [{"type": "text", "text": "Totals include VAT"}]},
                        {
                            "type": "bulletList",
                            "content": [
                                {
                                    "type": "listItem",
                                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "for EU"}]}],
                                }
                            ],
                        },
                    ],
                },
                {
                    "type": "listItem",
                    "content": [
                        {
                            "type": "paragraph",
                            "content": [
                                {"type": "text", "text": "Receipt goes to "},
                                {"type": "mention", "attrs": {"id": "x", "text": "@billing"}},
                            ],
                        }
                    ],
                },
            ],
        },
        {
            "type": "taskList",
            "attrs": {"localId": "t"},
            "content": [
                {"type": "taskItem", "attrs": {"state": "DONE"}, "content": [{"type": "text", "text": "Card works"}]},
                {"type": "taskItem", "attrs": {"state": "TODO"}, "content": [{"type": "text", "text": "PayPal works"}]},
            ],
        },
        {
            "type": "orderedList",
            "content": [
                {
                    "type": "listItem",
                    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Step one"}]}],
                }
            ],
        },
        {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Design"}]},
        {
            "type": "bulletList",
            "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "no"}]}]}
            ],
        },
    ],
}


def test_jira_issue_with_a_plain_description_maps_as_documented() -> None:
    req = requirement_from_jira(jira_issue(PLAIN))

    assert isinstance(req, Requirement)
    assert (req.id, req.source, req.title, req.priority, req.owner, req.project, req.status) == (
        "SHOP-12",
        "jira:SHOP-12",
        "Guest checkout",
        "2",
        "5b10ac8d82e05b22cc7d4ef5",
        "jira:SHOP",
        "approved",
    )
    # The story itself, its linked issues (both directions) and its sub-tasks.
    assert req.tasks == ["jira:SHOP-12", "jira:SHOP-13", "jira:SHOP-20", "jira:WEB-3"]
    assert req.components == ["billing", "checkout"]
    assert req.body == PLAIN.strip()
    assert req.acceptance_criteria == ["A guest can pay by card", "Totals include VAT"]


def test_jira_issue_with_an_adf_description_maps_as_documented() -> None:
    req = requirement_from_jira(jira_issue(ADF))

    assert req.body.startswith("The guest pays fast.\n\n## Acceptance criteria\n\n- Totals include VAT\n  - for EU\n")
    assert req.acceptance_criteria == [
        "Totals include VAT: for EU",
        "Receipt goes to @billing",
        "Card works",
        "PayPal works",
        "Step one",
    ]


@pytest.mark.parametrize("label", ["Acceptance criteria:", "*Acceptance criteria:*", "**Acceptance Criteria**"])
def test_a_label_line_starts_the_criteria_in_a_jira_description(label: str) -> None:
    req = requirement_from_jira(jira_issue(f"Intro.\n\n{label}\n- one\n- two\n\nh2. Later\n- three\n"))
    assert req.acceptance_criteria == ["one", "two"]


def test_a_jira_issue_without_description_has_an_empty_body() -> None:
    req = requirement_from_jira(jira_issue(None))
    assert req.body == "" and req.acceptance_criteria == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"name": "To Do", "statusCategory": {"key": "new"}}, "draft"),
        ({"name": "In Review", "statusCategory": {"key": "indeterminate"}}, "approved"),
        ({"name": "Done", "statusCategory": {"key": "done"}}, "implemented"),
        ({"name": "Won't Do", "statusCategory": {"key": "done"}}, "retired"),
        ({"name": "Approved", "statusCategory": {"key": "new"}}, "approved"),
    ],
)
def test_jira_status_maps_by_name_then_category(status: dict[str, Any], expected: str) -> None:
    assert requirement_from_jira(jira_issue("", status=status)).status == expected


def test_jira_epic_is_not_its_own_task_and_unknown_priority_names_are_none() -> None:
    req = requirement_from_jira(
        jira_issue("", issuetype={"name": "Epic"}, priority={"name": "P0 - drop everything"}, assignee=None)
    )

    assert req.tasks == ["jira:SHOP-13", "jira:SHOP-20", "jira:WEB-3"]
    assert req.priority is None and req.owner is None


@pytest.mark.parametrize(
    ("issue", "message"),
    [
        ({"fields": {"summary": "x"}}, "Jira issue has no key"),
        ({"key": "SHOP-1"}, "Jira issue SHOP-1 has no fields"),
        ({"key": "SHOP-1", "fields": {"summary": " "}}, "Jira issue SHOP-1 has no summary"),
        (
            {"key": "SHOP-1", "fields": {"summary": "x", "description": 5}},
            "Jira issue SHOP-1: description is a number, neither text nor an ADF document",
        ),
    ],
)
def test_an_unusable_jira_issue_is_a_data_error(issue: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError) as caught:
        requirement_from_jira(issue)
    assert caught.value.message == message
