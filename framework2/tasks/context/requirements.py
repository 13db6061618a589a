"""PCES requirements: Markdown files with YAML front matter (or Jira issues) read into versioned records.

The file format::

    ---
    id: REQ-12                  # required, a string; unique across the folder
    title: Guest checkout       # required
    priority: must              # optional: must | should | could | wont, or an integer 1 (highest) to 5
    owner: alice                # optional handle ("@alice" is read as "alice")
    project: jira:SHOP          # optional PPMS project key
    tasks: [jira:SHOP-12]       # optional PPMS task keys (one key may be written without the list)
    components: [checkout]      # optional component names (one name may be written without the list)
    status: approved            # optional: draft (the default) | approved | implemented | retired
    ---
    Free Markdown. ...

    ## Acceptance criteria
    - [ ] A guest can pay without an account
    - Totals include VAT:
      - for EU addresses
      - for UK addresses

Decisions worth knowing:

- The front matter is the first lines between two '---' lines (blank lines and a UTF-8 BOM before it are
  allowed; '...' also closes it). Text values have their whitespace collapsed.
- Priority: MoSCoW words are lower-cased ("Won't" → "wont"); integers 1-5 (or their strings) are kept as the
  strings "1" … "5". The two scales are not converted into each other: five levels do not map onto four
  classes without a guess, and a diff should show what the author wrote.
- Acceptance criteria are the list items under a heading named "Acceptance criteria" (ATX ``#`` or setext
  underlined headings, any level, any case, a trailing colon allowed), until the next heading of the same or
  a higher level. Each top-level item is one criterion; checkbox markers are stripped. Nested items refine
  their parent and are part of it ("Totals include VAT: for EU addresses; for UK addresses"), so a nested
  edit changes that one criterion; an item counts as nested when it is indented more than the section's
  first item (people indent by 2 under "1." too, which strict CommonMark would not nest). Lines in fenced
  code blocks are never headings or items. Whitespace inside a criterion is collapsed.
- ``tasks`` and ``components`` are sets: duplicates are dropped and they are kept sorted, so reordering them
  is no new version.
- The content hash is sha256 over a canonical JSON of the parsed values (never the raw text), so quoting,
  key order, list style and other YAML re-formatting, CRLF vs LF, trailing whitespace and blank lines at the
  start or end of the body do not count; any other body edit does (also reordering criteria: the body
  changed, though the criteria set did not). The source (path) is not hashed, so moving a file keeps its
  versions. Unknown front-matter keys are ignored and not hashed: they are not part of the record. The
  canonical form starts with ``HASH_VERSION``, bumped whenever these rules change.
- A folder is read file by file: one bad file becomes a ``FileProblem`` with the reason and what to do, and
  the others are still read. Files are read in sorted path order. Duplicate ids (compared case-insensitively,
  since "REQ-3" and "req-3" are surely meant to be one) make every file with that id a problem and none is
  kept: which one is right cannot be known. README.md files without front matter are skipped (a folder's
  README describes the folder); one with front matter is a requirement like any other. Files and folders
  whose names start with "." are skipped (.git, .github templates). A symlink resolving outside the root
  is not followed and is reported (so is a broken one); two paths resolving to the same file are read once.
- Hostile files are problems, not crashes: a file over ``MAX_FILE_BYTES`` is not read, and the front matter
  is parsed by ``safe_yaml.load_limited`` (size and nesting bounds, no YAML aliases), so an alias bomb or
  deep nesting is refused in milliseconds with a short reason that never quotes the expanded content; values
  quoted in reasons are cut to a few dozen characters. Any other failure on one file is still that file's
  problem (reason: the error's type only).
- Jira issues map as documented on ``requirement_from_jira``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from framework2.errors import DataError
from framework2.tasks.context.safe_yaml import UnsafeYAML, load_limited
from framework2.tasks.context.source_checks import pattern_problem

RequirementStatus = Literal["draft", "approved", "implemented", "retired"]
STATUSES: tuple[str, ...] = ("draft", "approved", "implemented", "retired")
MOSCOW: tuple[str, ...] = ("must", "should", "could", "wont")
# Bumped whenever the canonical form changes, so a store can tell a new version from a new hashing rule.
HASH_VERSION = "pces-requirement-v1"
FIELDS: tuple[str, ...] = ("title", "priority", "owner", "project", "tasks", "components", "status")
_KNOWN_KEYS = ("id", *FIELDS)
# The most characters of a file's value quoted in a problem's reason.
_QUOTED = 60
# Larger files are refused unread: a requirement is a page or two of Markdown (this is ~100 pages), every file is
# held in memory, and the criteria scan of the worst 256 KiB body takes under a second.
MAX_FILE_BYTES = 256 * 1024


class Requirement(BaseModel):
    """One requirement as read, with the hash that identifies its version."""

    model_config = ConfigDict(frozen=True)  # the hash must keep describing the fields

    id: str = Field(..., min_length=1)
    title: str = Field(..., min_length=1)
    priority: str | None = Field(None, description="must | should | could | wont, or '1' (highest) … '5'.")
    owner: str | None = None
    project: str | None = Field(None, description="PPMS project key, e.g. 'jira:SHOP'.")
    tasks: list[str] = Field(default_factory=list, description="PPMS task keys, sorted, e.g. 'jira:SHOP-12'.")
    components: list[str] = Field(default_factory=list, description="Component names, sorted.")
    status: RequirementStatus = "draft"
    body: str = Field("", description="Markdown body: LF line ends, no trailing spaces, no blank lines at the ends.")
    acceptance_criteria: list[str] = Field(default_factory=list)
    source: str = Field(..., description="File path relative to the root, or 'jira:KEY'.")
    content_hash: str = Field(..., description="sha256 of the canonical form of every field but source.")


class FileProblem(BaseModel):
    """A file (or Jira issue) that could not be used, or a link in it that points nowhere."""

    source: str
    reason: str
    hint: str = ""


class ReadResult(BaseModel):
    """What a folder held: the good requirements, and a problem for each file that was not usable."""

    requirements: list[Requirement] = Field(default_factory=list)
    problems: list[FileProblem] = Field(default_factory=list)


# --- canonical form and hash -------------------------------------------------------------------------------


def canonical_form(fields: dict[str, Any]) -> str:
    """The text that is hashed: the version tag and a sorted-key JSON of every field but source and hash."""
    hashed = {key: fields.get(key) for key in (*_KNOWN_KEYS, "body", "acceptance_criteria")}
    return HASH_VERSION + "\n" + json.dumps(hashed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(fields: dict[str, Any]) -> str:
    """sha256 (hex) of ``canonical_form(fields)``; ``fields`` may be a ``Requirement.model_dump()``."""
    return hashlib.sha256(canonical_form(fields).encode("utf-8")).hexdigest()


def _make(fields: dict[str, Any], source: str) -> Requirement:
    return Requirement(**fields, source=source, content_hash=content_hash(fields))


# --- text normalisation ------------------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """LF line ends, no trailing whitespace on any line, no blank lines at the start or end."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip("\n")


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


# Characters no requirement needs and a store or a reader is hurt by: NUL (PostgreSQL text cannot hold it), other
# C0/C1 controls, and the bidirectional overrides and line separators that make text read other than it is.
# Lone surrogates too: a YAML "\ud800" or a file name with bytes that are not UTF-8 (Python keeps those as
# surrogates) has no UTF-8 form, so no store can hold it.
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]")
MAX_NAME_CHARS = 200  # ids, owners, projects, task and component names: the store's key columns hold 200
MAX_TITLE_CHARS = 500
MAX_SOURCE_CHARS = 500  # the store's requirement.source column
# In an id, characters that make two ids look the same while they differ (zero-width, joiners, odd spaces).
_INVISIBLE_IN_ID = re.compile("[\u00a0\u00ad\u034f\u061c\u180e\u200b-\u200f\u2060-\u2064\ufeff]")


def unwanted_character(text: str) -> str | None:
    """The first control or direction-override character in ``text`` as 'U+XXXX at line N', or None."""
    found = _UNWANTED.search(text)
    if found is None:
        return None
    line = text.count("\n", 0, found.start()) + 1
    return f"U+{ord(found.group()):04X} at line {line}"


# --- acceptance criteria -----------------------------------------------------------------------------------

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


# --- front matter ------------------------------------------------------------------------------------------


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


# --- folders -----------------------------------------------------------------------------------------------


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


# --- Jira ----------------------------------------------------------------------------------------------------

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


# --- links ---------------------------------------------------------------------------------------------------


ID_EXAMPLE = "REQ-1"


def unused_id(ids: Iterable[str]) -> str:
    """'id: REQ-n' quoted, with n one past the highest REQ-number among ``ids`` (case-insensitive)."""
    numbers = [int(m.group(1)) for i in ids if (m := re.fullmatch(r"req-(\d{1,9})", i.strip().casefold()))]
    return f"'id: REQ-{max(numbers, default=0) + 1}' (an id no other requirement uses)"


def unknown_task_links(requirements: Sequence[Requirement], known_tasks: set[str]) -> list[FileProblem]:
    """One problem per requirement that links tasks PPMS does not know (the requirement itself stays usable)."""
    problems = []
    for requirement in requirements:
        unknown = [task for task in requirement.tasks if task not in known_tasks]
        if unknown:
            noun = "task" if len(unknown) == 1 else "tasks"
            problems.append(
                FileProblem(
                    source=requirement.source,
                    reason=f"{requirement.id} links to {noun} PPMS does not know: {', '.join(unknown)}",
                    hint="check the key (e.g. jira:SHOP-12, github:octo/shop#12), or let PPMS read that tracker first",
                )
            )
    return problems
