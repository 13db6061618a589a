"""PCES evolution: what changed between two versions of a requirement, and how much requirements move.

``diff_requirements`` compares two versions field by field. Decisions worth knowing:

- No diff (None) when the content hashes are equal: that is no new version.
- Front-matter fields compared: title, priority, owner, project, tasks, components, status. Like a dict diff,
  ``fields_added`` are fields empty before (None or no items) and set after, ``fields_removed`` the reverse,
  and ``fields_changed`` those set on both sides with different values; the three are disjoint. For an added
  requirement every set field is "added", for a removed one every set field is "removed".
- Acceptance criteria are compared as sets of normalised text (case-folded, whitespace collapsed), so
  reordering them or re-wrapping a line is no criteria change (the body diff still shows the moved lines).
  An edited criterion is one removed and one added: there is no reliable way to tell an edit from a swap.
- ``body_diff`` is a unified diff (difflib, 3 lines of context), "" when the bodies are equal. "Lines
  changed" in the summary, and in churn, is lines added plus lines removed, so editing one line counts 2.

A new version is **cosmetic** or **substantive** (``classify_edit``, rule in its docstring): a typo fix or a
re-wrap is stored and shown like any version, but it is no requirement change — nothing is re-assessed,
re-forecast or announced for it, and it is not counted as churn.

``evolution_metrics`` turns a history of versions into volatility figures; ``churn_chart`` draws it weekly.
A "change" there is an edit or a removal of an existing requirement. Additions are counted in their own
column but are not changes: writing a requirement is not instability of it, and the first import of an
existing folder would otherwise look like a burst of volatility. Weeks are 7-day buckets counted back from
``now`` (the newest week ends at ``now``). Points after ``now`` are ignored (a clock ahead of ours).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field, field_validator

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.context.requirements import FIELDS, Requirement

WEEK = timedelta(days=7)


class FieldChange(BaseModel):
    """One front-matter field's value before and after."""

    field: str
    before: Any = None
    after: Any = None


class RequirementDiff(BaseModel):
    """What changed from one version of a requirement to the next (see the module docstring for the rules)."""

    id: str
    kind: Literal["added", "changed", "removed"]
    fields_added: list[str] = Field(default_factory=list)
    fields_removed: list[str] = Field(default_factory=list)
    fields_changed: list[FieldChange] = Field(default_factory=list)
    body_diff: str = ""
    criteria_added: list[str] = Field(default_factory=list)
    criteria_removed: list[str] = Field(default_factory=list)
    summary: str = ""
    cosmetic: bool = Field(False, description="Whitespace/typo-level edit only: stored and shown, triggers nothing.")
    cosmetic_reason: str = ""


# --- diffs ---------------------------------------------------------------------------------------------------


def normalise_criterion(text: str) -> str:
    """The form criteria are compared in: case-folded, whitespace collapsed."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def _new_criteria(criteria: Sequence[str], against: Sequence[str]) -> list[str]:
    """Criteria (as written, in order, once each) whose normal form is not among ``against``'s."""
    known = {normalise_criterion(c) for c in against}
    found: list[str] = []
    for criterion in criteria:
        key = normalise_criterion(criterion)
        if key not in known:
            known.add(key)
            found.append(criterion)
    return found


def unified_body_diff(before: str, after: str, name: str) -> str:
    """A unified diff of two bodies ("" when equal)."""
    if before == after:
        return ""
    lines = difflib.unified_diff(
        before.split("\n") if before else [],
        after.split("\n") if after else [],
        fromfile=f"{name} (before)",
        tofile=f"{name} (after)",
        lineterm="",
    )
    return "\n".join(lines)


def body_lines_changed(body_diff: str) -> tuple[int, int]:
    """(lines added, lines removed) in a unified diff; the file header lines are not counted."""
    added = removed = 0
    in_hunk = False
    for line in body_diff.split("\n"):
        if line.startswith("@@"):
            in_hunk = True
        elif in_hunk and line.startswith("+"):
            added += 1
        elif in_hunk and line.startswith("-"):
            removed += 1
    return added, removed


def churn(diff: RequirementDiff) -> int:
    """Body lines added + removed, plus acceptance criteria added + removed."""
    return sum(body_lines_changed(diff.body_diff)) + len(diff.criteria_added) + len(diff.criteria_removed)


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == ""


def _show(field: str, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    text = str(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f'"{text}"' if field == "title" else text


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _field_part(change: FieldChange) -> str:
    if isinstance(change.before, list) and isinstance(change.after, list):
        gone = [v for v in change.before if v not in change.after]
        new = [v for v in change.after if v not in change.before]
        return f"{change.field} " + ", ".join([*(f"+{v}" for v in new), *(f"-{v}" for v in gone)])
    return f"{change.field} {_show(change.field, change.before)} → {_show(change.field, change.after)}"


def _summary(diff: RequirementDiff, before: Requirement | None, after: Requirement | None) -> str:
    if after is not None and before is None:
        details = [after.status]
        if after.priority:
            details.append(f"priority {after.priority}")
        details.append(_plural(len(after.acceptance_criteria), "acceptance criterion", "acceptance criteria"))
        return f"{diff.id} added: {_show('title', after.title)} ({', '.join(details)})"
    if before is not None and after is None:
        criteria = _plural(len(before.acceptance_criteria), "acceptance criterion", "acceptance criteria")
        return f"{diff.id} removed: {_show('title', before.title)} (had {criteria})"
    assert before is not None and after is not None
    parts: list[str] = []
    changed = {c.field: c for c in diff.fields_changed}
    for field in ("id", *FIELDS):
        if field in changed:
            parts.append(_field_part(changed[field]))
        elif field in diff.fields_added:
            parts.append(f"{field} set to {_show(field, getattr(after, field))}")
        elif field in diff.fields_removed:
            parts.append(f"{field} removed (was {_show(field, getattr(before, field))})")
    added, removed = len(diff.criteria_added), len(diff.criteria_removed)
    if added and removed:
        parts.append(f"{_plural(added, 'acceptance criterion', 'acceptance criteria')} added, {removed} removed")
    elif added or removed:
        count = added or removed
        parts.append(
            f"{_plural(count, 'acceptance criterion', 'acceptance criteria')} {'added' if added else 'removed'}"
        )
    lines = sum(body_lines_changed(diff.body_diff))
    if lines:
        parts.append(f"body {_plural(lines, 'line', 'lines')} changed")
    return f"{diff.id}: " + ("; ".join(parts) if parts else "no visible change (the content hash differs)")


def diff_requirements(before: Requirement | None, after: Requirement | None) -> RequirementDiff | None:
    """What changed from ``before`` to ``after``; None when both are the same version (or both None).

    ValueError when the two are different requirements (ids differ beyond case): a caller's mistake.
    """
    if before is None and after is None:
        return None
    if before is not None and after is not None:
        if before.content_hash == after.content_hash:
            return None
        if before.id.casefold() != after.id.casefold():
            raise ValueError(f"cannot diff two different requirements: {before.id} and {after.id}")
    one = after if after is not None else before
    assert one is not None
    kind: Literal["added", "changed", "removed"] = (
        "added" if before is None else "removed" if after is None else "changed"
    )
    diff = RequirementDiff(id=one.id, kind=kind)
    for field in ("id", *FIELDS):
        old = getattr(before, field) if before is not None else None
        new = getattr(after, field) if after is not None else None
        if old == new or (_empty(old) and _empty(new)) or (field == "id" and kind != "changed"):
            continue
        if _empty(old):
            diff.fields_added.append(field)
        elif _empty(new):
            diff.fields_removed.append(field)
        else:
            diff.fields_changed.append(FieldChange(field=field, before=old, after=new))
    old_criteria = before.acceptance_criteria if before is not None else []
    new_criteria = after.acceptance_criteria if after is not None else []
    diff.criteria_added = _new_criteria(new_criteria, old_criteria)
    diff.criteria_removed = _new_criteria(old_criteria, new_criteria)
    diff.body_diff = unified_body_diff(
        before.body if before is not None else "", after.body if after is not None else "", one.id
    )
    diff.summary = _summary(diff, before, after)
    if kind == "changed" and before is not None and after is not None:
        diff.cosmetic, diff.cosmetic_reason = classify_edit(diff, before, after)
        if diff.cosmetic:
            diff.summary += f" (cosmetic: {diff.cosmetic_reason})"
    return diff


# --- cosmetic or substantive -----------------------------------------------------------------------------------

# Words whose small change flips a meaning: never a typo, whichever side they are on.
_MEANING_WORDS = frozenset(
    {
        *("not", "no", "nor", "never", "must", "may", "can", "cannot", "cant", "should", "shall", "will", "wont"),
        *("would", "all", "any", "none", "only", "and", "or", "min", "max", "less", "more", "least", "most"),
        *("before", "after", "above", "below", "http", "https", "true", "false", "yes", "on", "off"),
    }
)
_MAX_TYPOS = 3
_MIN_TYPO_LETTERS = 4  # "MB" → "GB", "ms" → "s", "plan A" → "plan B": short words are meaning, not typing
_MAX_WORD_LETTERS = 40  # longer "words" (hashes, URLs, base64) are data: any change to them is substantive
_PROSE_PUNCTUATION = frozenset(".,;:!?'\"()‘’“”")  # ignorable; a change to any other symbol (<, ≥, %, -, ~) is not
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")


def _tokens(text: str) -> list[str]:
    """Words (case-folded) and symbols, without whitespace and prose punctuation."""
    return [t for t in (m.group().casefold() for m in _TOKEN.finditer(text)) if t not in _PROSE_PUNCTUATION]


def _one_edit(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by one insertion, deletion, substitution or swap of two neighbours (linear)."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        swapped = i + 1 < len(a) and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
        return swapped or a[i + 1 :] == b[i + 1 :]
    longer, shorter = (a, b) if len(a) > len(b) else (b, a)
    return longer[i + 1 :] == shorter[i:]


def _typo(old: str, new: str) -> bool:
    """One word mistyped into another: a single slip of a letter inside a word of at least 4 letters, keeping
    its first letter (prefixes carry meaning: in-, un-, de-, ex-) and its plural (a trailing "s"); never a
    number, a symbol, a meaning word, or a "word" so long it is data."""
    if min(len(old), len(new)) < _MIN_TYPO_LETTERS or max(len(old), len(new)) > _MAX_WORD_LETTERS:
        return False
    if not (old.isalpha() and new.isalpha()) or {old, new} & _MEANING_WORDS or old[0] != new[0]:
        return False
    if old.rstrip("s") == new.rstrip("s"):  # payment / payments, http / https
        return False
    return _one_edit(old, new)


def typo_edits(before: str, after: str) -> list[tuple[str, str]] | None:
    """The (old, new) word pairs that turn ``before`` into ``after`` when every difference is a typo-level
    word swap (case, spacing and prose punctuation ignored); None when any difference is more than that.

    Linear in the text: a typo adds or removes no word, so the words are compared position by position."""
    old_tokens, new_tokens = _tokens(before), _tokens(after)
    if len(old_tokens) != len(new_tokens):
        return None  # a word or a symbol added or removed
    pairs: list[tuple[str, str]] = []
    for a, b in zip(old_tokens, new_tokens, strict=True):
        if a != b:
            if len(pairs) == _MAX_TYPOS or not _typo(a, b):
                return None
            pairs.append((a, b))
    return pairs


def classify_edit(diff: RequirementDiff, before: Requirement, after: Requirement) -> tuple[bool, str]:
    """Is a new version of a requirement cosmetic, and why.

    Cosmetic: acceptance criteria, links (tasks, components), priority, owner, project and status all
    unchanged, and the title and body differ only in whitespace, case, prose punctuation (. , ; : ! ? quotes
    and brackets) or at most ``_MAX_TYPOS`` = 3 typo-level word slips (``_typo``: one letter inserted, dropped,
    replaced or swapped inside a word of 4+ letters, first letter and plural kept; never a number, a symbol
    such as < ≥ % - ~, or a word like "not", "must", "only" whose small change flips the meaning). Anything
    else is substantive. The reason names what decided. ``before`` should be the last *substantive* version,
    so that typo-sized edits spread over several commits cannot rewrite a requirement unseen."""
    if diff.criteria_added or diff.criteria_removed:
        return False, "acceptance criteria changed"
    fields = {c.field for c in diff.fields_changed} | set(diff.fields_added) | set(diff.fields_removed)
    if fields - {"title"}:
        return False, f"{', '.join(sorted(fields - {'title'}))} changed"
    swaps: list[tuple[str, str]] = []
    for old, new in ((before.title or "", after.title or ""), (before.body, after.body)):
        found = typo_edits(old, new)
        if found is None:
            return False, "the text changed beyond typos"
        swaps += found
    if len(swaps) > _MAX_TYPOS:
        return False, f"{len(swaps)} words changed"
    if not swaps:
        return True, "whitespace, case or punctuation only"
    return True, "typo fix " + ", ".join(f"'{a}' → '{b}'" for a, b in swaps)


def against_last_substantive(change: RequirementDiff, base: Requirement, after: Requirement) -> RequirementDiff:
    """A cosmetic ``change`` checked again against ``base``, the last substantive version: several cosmetic
    edits in a row that add up to more than typos make the newest one substantive."""
    if not change.cosmetic:
        return change
    since = diff_requirements(base, after)
    if since is None:
        return change
    cosmetic, reason = classify_edit(since, base, after)
    if cosmetic:
        return change
    return change.model_copy(
        update={
            "cosmetic": False,
            "cosmetic_reason": f"with the cosmetic edits before it, {reason}",
            "summary": change.summary.rsplit(" (cosmetic:", 1)[0],
        }
    )


# --- metrics -------------------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    # A time without an offset is read as UTC, as everywhere in framework2.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class VersionPoint(BaseModel):
    """One new version of a requirement: when it was recorded, its diff, and when work on its tasks started.

    ``work_started`` is the earliest start of the requirement's linked tasks at that time (None when none has
    started); the caller knows the tasks, this module does not.
    """

    id: str
    project: str | None = None
    at: datetime
    diff: RequirementDiff
    work_started: datetime | None = None

    @field_validator("at", "work_started")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _utc(value)


METRIC_COLUMNS: tuple[str, ...] = (
    "level",  # "requirement", "project" or "all"
    "key",  # the requirement id, the project key, or "all"
    "project",  # a requirement's project (its newest version's); the key on project rows; None on "all"
    "requirements",  # requirements counted in the row (1 on requirement rows)
    "added",  # requirements added in the window
    "edited",  # edits ("changed" versions) in the window
    "removed",  # removals in the window
    "changes",  # edited + removed
    "churn",  # over the changes: body lines added + removed, plus acceptance criteria added + removed
    "late_changes",  # changes recorded after work on the requirement's linked tasks had started
    "weeks_changed",  # weeks in the window with at least one change
    "weeks_observed",  # weeks the row was watched in the window (see volatility)
    "volatility",  # weeks_changed / weeks_observed, 0..1
)


def _empty_metrics() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype="object") for column in METRIC_COLUMNS})


def _is_change(point: VersionPoint) -> bool:
    # Writing a requirement is not instability of it, and neither is fixing a typo in it.
    return point.diff.kind != "added" and not point.diff.cosmetic


def _is_late(point: VersionPoint) -> bool:
    return _is_change(point) and point.work_started is not None and point.at > point.work_started


def _row(
    level: str,
    key: str,
    project: str | None,
    requirements: int,
    points: list[VersionPoint],
    week: Callable[[datetime], int],
    observed: int,
) -> dict[str, Any]:
    changes = [p for p in points if _is_change(p)]
    weeks_changed = len({week(p.at) for p in changes})
    return {
        "level": level,
        "key": key,
        "project": project,
        "requirements": requirements,
        "added": sum(p.diff.kind == "added" for p in points),
        "edited": sum(p.diff.kind == "changed" for p in points),
        "removed": sum(p.diff.kind == "removed" for p in points),
        "changes": len(changes),
        "churn": sum(churn(p.diff) for p in changes),
        "late_changes": sum(_is_late(p) for p in points),
        "weeks_changed": weeks_changed,
        "weeks_observed": observed,
        "volatility": weeks_changed / observed if observed else 0.0,
    }


def evolution_metrics(points: Sequence[VersionPoint], *, now: datetime, window_days: int = 90) -> pd.DataFrame:
    """Volatility of each requirement, each project and all of them over the last ``window_days``.

    Columns are ``METRIC_COLUMNS`` (each explained there). The volatility index is the share of watched weeks
    with at least one change. Weeks rather than a count of changes, because ten saves of one edit in an
    afternoon are one change of mind, not ten; a share, so it compares across windows and sizes (0 = stable,
    1 = changed every week). A requirement is watched from the start of the window, or from the week it was
    added if later, until ``now`` or the week it was removed; projects and "all" for the whole window.

    Rows: every requirement that existed during the window (zeros when it did not change), sorted by project
    and id, then one per project (by each version's own project at the time, so a moved requirement's changes
    stay with the project they happened in; requirements without a project count only in "all"), then "all".
    Empty input (or a history of requirements all removed before the window) gives an empty frame with the
    columns.
    """
    if window_days <= 0:
        raise ValueError(f"window_days must be positive, not {window_days}")
    now = _utc(now)
    start = now - timedelta(days=window_days)
    weeks = math.ceil(window_days / 7)

    def week(moment: datetime) -> int:  # 0 = the week ending now
        return min(int((now - moment) / WEEK), weeks - 1)

    history: dict[str, list[VersionPoint]] = {}
    for point in sorted((p for p in points if p.at <= now), key=lambda p: p.at):
        history.setdefault(point.id, []).append(point)
    in_window = [p for p in points if start < p.at <= now]

    rows: list[dict[str, Any]] = []
    for requirement, versions in history.items():
        earlier = [p for p in versions if p.at <= start]
        recent = [p for p in versions if p.at > start]
        existed_at_start = bool(earlier) and earlier[-1].diff.kind != "removed"
        if not recent and not existed_at_start:
            continue  # removed before the window
        first_week = weeks - 1 if existed_at_start else week(recent[0].at)
        last_week = week(recent[-1].at) if recent and recent[-1].diff.kind == "removed" else 0
        rows.append(_row("requirement", requirement, versions[-1].project, 1, recent, week, first_week - last_week + 1))
    if not rows and not in_window:
        return _empty_metrics()
    rows.sort(key=lambda r: (r["project"] or "", r["key"]))

    projects = sorted({r["project"] for r in rows if r["project"]} | {p.project for p in in_window if p.project})
    for project in projects:
        members = sum(r["project"] == project for r in rows)
        own = [p for p in in_window if p.project == project]
        rows.append(_row("project", project, project, members, own, week, weeks))
    rows.append(_row("all", "all", None, sum(r["level"] == "requirement" for r in rows), in_window, week, weeks))
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))


def churn_chart(points: Sequence[VersionPoint], *, now: datetime, weeks: int = 12) -> str | None:
    """Changes (edits and removals) per week and project as stacked bars over the last ``weeks`` weeks, with
    each week's late changes marked above its bar; a PNG data URI, or None when there is no change to draw."""
    now = _utc(now)
    start = now - weeks * WEEK
    changes = [p for p in points if start < p.at <= now and _is_change(p)]
    if not changes or weeks <= 0:
        return None
    projects = sorted({p.project or "(no project)" for p in changes})
    counts = np.zeros((len(projects), weeks))
    late = np.zeros(weeks)
    for point in changes:
        column = weeks - 1 - min(int((now - point.at) / WEEK), weeks - 1)  # oldest week left
        counts[projects.index(point.project or "(no project)"), column] += 1
        late[column] += _is_late(point)

    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = np.arange(weeks)
    bottom = np.zeros(weeks)
    for row, project in enumerate(projects):
        ax.bar(x, counts[row], bottom=bottom, label=project, width=0.8)
        bottom += counts[row]
    marked = late > 0
    if marked.any():
        offset = max(bottom.max() * 0.06, 0.15)
        ax.scatter(x[marked], bottom[marked] + offset, marker="v", color="#d62728", zorder=3, label="late changes")
        for position, count, height in zip(x[marked], late[marked], bottom[marked], strict=True):
            ax.annotate(
                f"{count:g}",
                (position, height + offset),
                textcoords="offset points",
                xytext=(0, 5),
                ha="center",
                fontsize=7,
                color="#d62728",
            )
        ax.set_ylim(0, bottom.max() + 4 * offset)
    ax.set_xticks(x, [(now - (weeks - i) * WEEK).strftime("%d %b") for i in x], fontsize=7, rotation=45)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("week starting")
    ax.set_ylabel("requirement changes")
    ax.set_title("Requirement changes per week (edits and removals)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    return figure_to_data_uri(fig)
