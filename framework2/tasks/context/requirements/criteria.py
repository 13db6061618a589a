"""Acceptance criteria found in a body: checklists under a criteria heading, in Markdown or Jira text."""

from __future__ import annotations

import re

from framework2.tasks.context.requirements.model import _collapse, normalise_text

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_WIKI_HEADING = re.compile(r"^\s*h([1-6])\.\s+(.*?)\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_THEMATIC = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_ITEM = re.compile(r"^(?P<indent>[ ]*)(?P<marker>[-*+]|\d{1,9}[.)])(?:[ \t]+(?P<text>.*))?$")
_CHECKBOX = re.compile(r"^\[[ xX]\](?:[ \t]+|$)")
# "Acceptance criteria:", bold in Markdown (**, __) or Jira wiki (*) allowed.
_LABEL = re.compile(r"^\s*(?:\*{1,2}|_{1,2})?\s*acceptance\s+criteria\s*:?\s*(?:\*{1,2}|_{1,2})?\s*:?\s*$", re.I)
_LABEL_LEVEL = 7  # a "label line" section ends at any heading


def _is_criteria_heading(text: str) -> bool:
    name = re.sub(r"(?:^|[ \t]+)#+$", "", text.strip())  # ATX closing hashes
    name = _collapse(name.strip("*_ ").rstrip(":").strip("*_ ")).casefold()
    return name == "acceptance criteria"


def _heading(lines: list[str], i: int, *, jira: bool) -> tuple[int, str, bool] | None:
    """(level, text, underlined) when line ``i`` is a heading, else None; ``underlined``: a setext heading,
    whose underline is line i + 1."""
    line = lines[i]
    if match := _ATX.match(line):
        return len(match.group(1)), match.group(2) or "", False
    if jira and (match := _WIKI_HEADING.match(line)):
        return int(match.group(1)), match.group(2), False
    if (
        i + 1 < len(lines)
        and line.strip()
        and len(line) - len(line.lstrip(" ")) < 4
        and not _ITEM.match(line)
        and not _THEMATIC.match(line)
        and (underline := _SETEXT.match(lines[i + 1]))
    ):
        return (1 if underline.group(1).startswith("=") else 2), line.strip(), True
    return None


def acceptance_criteria(body: str, *, jira: bool = False) -> list[str]:
    """The criteria in a Markdown body (see the module docstring for the rules).

    ``jira`` also reads Jira wiki headings ("h3. Acceptance criteria") and a line that is only
    "Acceptance criteria:" (bold allowed) as the start of the section, as Jira descriptions are written.
    """
    lines = [line.expandtabs(4) for line in normalise_text(body).split("\n")]
    # (top-level text, nested texts), each as the pieces of its lines: joined once at the end, since joining
    # on every continuation line is quadratic in a long item.
    criteria: list[tuple[list[str], list[list[str]]]] = []
    section: int | None = None  # the heading level of the open criteria section
    base: int | None = None  # indentation of the section's first item
    fence: str | None = None
    open_item = False  # continuation lines belong to the last item
    blank_before = False
    skip_next = False
    for i, line in enumerate(lines):
        if skip_next:  # a setext underline
            skip_next = False
            continue
        if fence:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if match := _FENCE.match(line):
            fence = match.group(1)
            open_item = False
            continue
        heading = _heading(lines, i, jira=jira)
        if heading is None and jira and _LABEL.match(line):
            heading = (_LABEL_LEVEL, "acceptance criteria", False)
        if heading is not None:
            level, text, skip_next = heading
            if section is not None and level <= section:
                section = None
            if section is None and _is_criteria_heading(text):
                section, base, open_item, blank_before = level, None, False, False
            continue
        if section is None:
            continue
        if not line.strip():
            blank_before = True
            continue
        item = None if _THEMATIC.match(line) else _ITEM.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if item:
            text = _CHECKBOX.sub("", (item.group("text") or "").strip())
            if base is None or indent <= base or not criteria:
                base = indent if base is None else min(base, indent)
                criteria.append(([text], []))
            else:
                criteria[-1][1].append([text])
            open_item = True
        elif open_item and criteria and (indent > (base or 0) or not blank_before):
            # A continuation of the last item (lazy or indented): part of the same criterion.
            parent, nested = criteria[-1]
            (nested[-1] if nested else parent).append(line.strip())
        else:
            open_item = False  # prose in the section, not a criterion
        blank_before = False
    result = []
    for parent_lines, nested_lines in criteria:
        nested = [" ".join(pieces) for pieces in nested_lines]
        parts = [_collapse(n) for n in nested if _collapse(n)]
        head = _collapse(" ".join(parent_lines))
        # "Totals include VAT: for EU addresses; for UK addresses"
        text = ((head.rstrip(":").rstrip() + ": " if head else "") + "; ".join(parts)) if parts else head
        if text:
            result.append(text)
    return result
