"""Requirement files: YAML front matter checked field by field, and folders read file by file, each bad file
reported with what to fix."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from framework2.errors import DataError
from framework2.tasks.context.requirements.criteria import acceptance_criteria
from framework2.tasks.context.requirements.links import ID_EXAMPLE, unused_id
from framework2.tasks.context.requirements.model import (
    _INVISIBLE_IN_ID,
    _QUOTED,
    MAX_FILE_BYTES,
    MAX_NAME_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    MOSCOW,
    STATUSES,
    FileProblem,
    ReadResult,
    Requirement,
    _collapse,
    _make,
    normalise_text,
    unwanted_character,
)
from framework2.tasks.context.safe_yaml import UnsafeYAML, load_limited
from framework2.tasks.context.source_checks import pattern_problem


def _split_front_matter(text: str) -> tuple[str, str]:
    """(front matter YAML, body); DataError when the file does not start with a closed front matter."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise DataError(
            "file has no front matter (it must start with a line '---')",
            hint="start the file with '---', then 'id: REQ-…' and 'title: …', then a line '---'",
        )
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            return "\n".join(lines[1:end]), "\n".join(lines[end + 1 :])
    raise DataError(
        "front matter is not closed (no second '---' line)",
        hint="end the front matter with a line '---' before the Markdown body",
    )


def _load_yaml(front: str) -> dict[str, Any]:
    try:
        data = load_limited(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, UnsafeYAML):
            raise DataError(f"front matter{where} {problem}", hint=exc.hint) from None
        raise DataError(
            f"front matter is not valid YAML{where}: {problem}",
            hint="fix the YAML; quote values holding ':', '#', '@' or starting with '[' or '{'",
        ) from None
    if data is None:
        raise DataError("front matter is empty", hint="add at least 'id: REQ-…' and 'title: …'")
    if not isinstance(data, dict):
        raise DataError(
            f"front matter is a {_type_name(data)}, not 'key: value' lines",
            hint="write the front matter as 'key: value' lines, e.g. 'id: REQ-1'",
        )
    return data


def _quoted(value: Any) -> str:
    """``repr(value)`` cut short: a reason names the value, it does not reproduce a page of it (the front
    matter is bounded and has no aliases, so the full repr is small enough to build)."""
    shown = repr(value)
    return shown if len(shown) <= _QUOTED else shown[: _QUOTED - 1] + "…"


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", bool: "true/false", int: "number", float: "number", str: "text"}.get(
        type(value), type(value).__name__
    )


class _Problems:
    """Collects every problem of a file's front matter, so one read tells the author all that needs fixing."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.hints: list[str] = []

    def add(self, reason: str, hint: str) -> None:
        self.reasons.append(reason)
        if hint not in self.hints:
            self.hints.append(hint)

    def _clean(self, key: str, value: str, limit: int) -> bool:
        """False (with the problem noted) when ``value`` holds a control character or is longer than ``limit``."""
        bad = unwanted_character(value)
        if bad is not None:
            self.add(f"{key} holds the control character {bad}", f"write {key} as plain text")
            return False
        if len(value) > limit:
            self.add(f"{key} is {len(value):,} characters long; at most {limit} are allowed", f"shorten {key}")
            return False
        if key == "id" and (found := _INVISIBLE_IN_ID.search(value)):
            self.add(
                f"id holds the invisible character U+{ord(found.group()):04X}",
                "type the id again: it must not look like another id it is not",
            )
            return False
        return True

    def text(
        self, data: dict[str, Any], key: str, *, required: bool, example: str, limit: int = MAX_NAME_CHARS
    ) -> str | None:
        value = data.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.add(f"front matter has no {key}", f"add '{key}: {example}' to the front matter")
            return None
        if not isinstance(value, str):
            self.add(
                f"{key} must be text, not {_quoted(value)} ({_type_name(value)})",
                f'write it as text, quoted if need be: {key}: "{example}"',
            )
            return None
        return _collapse(value) if self._clean(key, _collapse(value), limit) else None

    def names(self, data: dict[str, Any], key: str, example: str) -> list[str]:
        value = data.get(key)
        if value is None:
            return []
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.add(
                f"{key} must be a list of text, not {_quoted(value)}",
                f"write it as a list, e.g. '{key}: [{example}]'",
            )
            return []
        names = sorted({_collapse(v) for v in values if v.strip()})
        return [n for n in names if self._clean(f"{key} entry", n, MAX_NAME_CHARS)]

    def priority(self, data: dict[str, Any]) -> str | None:
        value = data.get("priority")
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5:
            return str(value)
        if isinstance(value, str):
            word = re.sub(r"[\s'’]", "", value).lower()
            if word in MOSCOW:
                return word
            if word in {"1", "2", "3", "4", "5"}:
                return word
        self.add(
            f"priority {_quoted(value)} is not one of must, should, could, wont or 1-5",
            "write 'priority: must' (must/should/could/wont) or 'priority: 1' (1 highest … 5)",
        )
        return None

    def status(self, data: dict[str, Any]) -> str:
        value = data.get("status")
        if value is None or (isinstance(value, str) and not value.strip()):
            return "draft"
        word = value.strip().lower() if isinstance(value, str) else None
        if word not in STATUSES:
            self.add(
                f"status {_quoted(value)} is not one of {', '.join(STATUSES)}",
                f"write one of: {', '.join(STATUSES)}",
            )
            return "draft"
        return word


def _front_matter_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The record's front-matter fields, every problem collected and raised as one DataError."""
    problems = _Problems()
    fields = {
        "id": problems.text(data, "id", required=True, example=ID_EXAMPLE),
        "title": problems.text(data, "title", required=True, example="What the requirement is", limit=MAX_TITLE_CHARS),
        "priority": problems.priority(data),
        "owner": problems.text(data, "owner", required=False, example="alice"),
        "project": problems.text(data, "project", required=False, example="jira:SHOP"),
        "tasks": problems.names(data, "tasks", "jira:SHOP-12"),
        "components": problems.names(data, "components", "checkout"),
        "status": problems.status(data),
    }
    if problems.reasons:
        raise DataError("; ".join(problems.reasons), hint="; ".join(problems.hints))
    if fields["owner"]:
        fields["owner"] = fields["owner"].lstrip("@") or None  # "@alice" and "alice" are one handle
    return fields


def parse_requirement(text: str, source: str) -> Requirement:
    """A requirement from a Markdown file's text; DataError(message, hint) when the file is not usable."""
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise DataError("file is empty", hint="write the front matter ('id', 'title') and the requirement")
    # Trailing whitespace goes before YAML sees it: a trailing tab is a YAML error, and it is no change.
    front, body = _split_front_matter(normalise_text(text))
    fields = _front_matter_fields(_load_yaml(front))
    body = normalise_text(body)
    bad = unwanted_character(body)
    if bad is not None:
        raise DataError(f"the text holds the control character {bad}", hint="save the file as plain UTF-8 text")
    fields.update(body=body, acceptance_criteria=acceptance_criteria(body))
    return _make(fields, source)


def _has_front_matter(text: str) -> bool:
    return normalise_text(text.lstrip("\ufeff")).split("\n", 1)[0] == "---"  # as parse_requirement sees it


def _read_file(path: Path) -> str:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)  # no more than that, whatever size the file claims or grows to
    except OSError as exc:
        raise DataError(f"file cannot be read: {exc.strerror or exc}", hint="check the file's permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise DataError(
            f"file is larger than {MAX_FILE_BYTES // 1024:,} KiB; not read",
            hint="split it into one file per requirement, or move attachments out of the requirements folder",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"file is not UTF-8 text (bad byte 0x{data[exc.start]:02x} at position {exc.start})",
            hint="save the file as UTF-8",
        ) from None


def _crashed(source: str, exc: Exception) -> FileProblem:
    """The problem for a file the reader failed on unexpectedly; only the error's type is shown, since its text
    may hold (or expand) the file's content."""
    return FileProblem(
        source=source,
        reason=f"file could not be read ({type(exc).__name__})",
        hint="simplify the file (plain 'key: value' front matter, no YAML anchors); if it still fails, report it",
    )


def _listing(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def read_requirements_dir(root: Path | str, *, pattern: str = "**/*.md") -> ReadResult:
    """Every requirement file under ``root``; each unusable file is a ``FileProblem``, never an exception.

    DataError only when nothing could be read at all: ``root`` is not a folder, or ``pattern`` would reach
    outside it.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"requirements folder {root} does not exist", hint="check the path in the configuration")
    if problem := pattern_problem(pattern):
        raise DataError(problem, hint="use a glob below the folder, e.g. '**/*.md'")
    real_root = root.resolve()
    paths = sorted(
        (path for path in root.glob(pattern) if not any(p.startswith(".") for p in path.relative_to(root).parts)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    found: list[tuple[str, Requirement | FileProblem]] = []
    seen: set[Path] = set()
    for path in paths:
        source = path.relative_to(root).as_posix()
        bad = unwanted_character(source)
        if bad is not None or len(source) > MAX_SOURCE_CHARS:
            # The path is stored and shown as the requirement's source: it must fit and read as it is.
            shown = source.encode("ascii", "backslashreplace").decode()[:80]
            why = (
                f"holds the character {bad} (a control character, or a byte that is not UTF-8)"
                if bad
                else f"is {len(source):,} characters long"
            )
            problem = FileProblem(
                source=shown,
                reason=f"the file's path {why}; at most {MAX_SOURCE_CHARS} plain characters are stored",
                hint="rename the file or move it up the folder tree",
            )
            found.append((shown, problem))
            continue
        try:
            real = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop: Python 3.11 raises RuntimeError, later ones OSError
            found.append(
                (
                    source,
                    FileProblem(
                        source=source,
                        reason="symlink loops (it points, through links, back to itself); not followed",
                        hint="remove the link or point it at a requirement file",
                    ),
                )
            )
            continue
        if not real.is_relative_to(real_root):
            found.append(
                (
                    source,
                    FileProblem(
                        source=source,
                        reason=f"symlink points outside the requirements folder ({real}); not followed",
                        hint="copy the file into the folder, or link to a file inside it",
                    ),
                )
            )
            continue
        if path.is_symlink() and not path.exists():
            found.append(
                (
                    source,
                    FileProblem(
                        source=source,
                        reason=f"symlink is broken (it points to {real}, which does not exist)",
                        hint="remove the link or restore its target",
                    ),
                )
            )
            continue
        if real in seen or not path.is_file():
            continue  # a second path to a file already read, or a folder named *.md
        seen.add(real)
        try:
            text = _read_file(path)
            if path.name.lower() == "readme.md" and not _has_front_matter(text):
                continue
            found.append((source, parse_requirement(text, source)))
        except DataError as exc:
            found.append((source, FileProblem(source=source, reason=exc.message, hint=exc.hint)))
        except Exception as exc:  # a bug or a bound missed (MemoryError, RecursionError): one file, not the folder
            found.append((source, _crashed(source, exc)))

    by_id: dict[str, list[str]] = {}
    for source, item in found:
        if isinstance(item, Requirement):
            by_id.setdefault(item.id.casefold(), []).append(source)
    result = ReadResult()
    unused = unused_id(by_id)
    for source, item in found:
        if isinstance(item, FileProblem):
            # The parser's example id may be taken; suggest one no requirement in the folder uses.
            result.problems.append(item.model_copy(update={"hint": item.hint.replace(f"'id: {ID_EXAMPLE}'", unused)}))
            continue
        sources = by_id[item.id.casefold()]
        if len(sources) > 1:
            result.problems.append(
                FileProblem(
                    source=source,
                    reason=f"{item.id} is defined in {_listing(sources)}; ids must be unique",
                    hint="give each requirement its own id, or delete the copy",
                )
            )
        else:
            result.requirements.append(item)
    return result
