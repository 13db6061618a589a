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

from framework2.tasks.context.requirements.criteria import (
    acceptance_criteria,
)
from framework2.tasks.context.requirements.jira import (
    adf_to_markdown,
    requirement_from_jira,
)
from framework2.tasks.context.requirements.links import (
    ID_EXAMPLE,
    unknown_task_links,
    unused_id,
)
from framework2.tasks.context.requirements.markdown import (
    parse_requirement,
    read_requirements_dir,
)
from framework2.tasks.context.requirements.model import (
    FIELDS,
    HASH_VERSION,
    MAX_FILE_BYTES,
    MAX_NAME_CHARS,
    MAX_SOURCE_CHARS,
    MAX_TITLE_CHARS,
    MOSCOW,
    STATUSES,
    FileProblem,
    ReadResult,
    Requirement,
    RequirementStatus,
    canonical_form,
    content_hash,
    normalise_text,
    unwanted_character,
)

__all__ = [
    "FIELDS",
    "FileProblem",
    "HASH_VERSION",
    "ID_EXAMPLE",
    "MAX_FILE_BYTES",
    "MAX_NAME_CHARS",
    "MAX_SOURCE_CHARS",
    "MAX_TITLE_CHARS",
    "MOSCOW",
    "ReadResult",
    "Requirement",
    "RequirementStatus",
    "STATUSES",
    "acceptance_criteria",
    "adf_to_markdown",
    "canonical_form",
    "content_hash",
    "normalise_text",
    "parse_requirement",
    "read_requirements_dir",
    "requirement_from_jira",
    "unknown_task_links",
    "unused_id",
    "unwanted_character",
]
