"""A requirement as PCES stores it, the problems a file can have, and the canonical form its hash is taken of."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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


def canonical_form(fields: dict[str, Any]) -> str:
    """The text that is hashed: the version tag and a sorted-key JSON of every field but source and hash."""
    hashed = {key: fields.get(key) for key in (*_KNOWN_KEYS, "body", "acceptance_criteria")}
    return HASH_VERSION + "\n" + json.dumps(hashed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(fields: dict[str, Any]) -> str:
    """sha256 (hex) of ``canonical_form(fields)``; ``fields`` may be a ``Requirement.model_dump()``."""
    return hashlib.sha256(canonical_form(fields).encode("utf-8")).hexdigest()


def _make(fields: dict[str, Any], source: str) -> Requirement:
    return Requirement(**fields, source=source, content_hash=content_hash(fields))


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
