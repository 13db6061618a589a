"""PPMS connectors: GitHub issues, Jira issues and CSV files read into normalised records (a ``Batch``).

One module per connector (``github``, ``jira``, ``csv_files``), on a shared HTTP layer (``fetch``) and shared
item-mapping helpers (``mapping``); the names below are the package's interface.

``read_github`` and ``read_jira`` page through the trackers' REST APIs with a shared HTTP layer
(``Fetcher``): bounded retries with backoff on 5xx, timeouts and connection errors; rate limits waited out
when they reset within ``max_wait_seconds``, else a ``SourceError`` saying when they reset; 401/403/404
and malformed pages as ``SourceError`` naming the page and URL, with a hint. Any ``SourceError`` aborts the
whole read: a batch is all of a source or nothing, so its cursor never skips unread items. A single item
that cannot be read goes to ``Batch.rejected`` with the reason; the rest load.

Decisions worth knowing:

- Incremental: ``since`` becomes GitHub's ``since=`` and Jira's ``updated >= "yyyy-MM-dd HH:mm"`` (in the
  block's ``jql_timezone``, because Jira reads JQL dates in the account's time zone; rounded down to the
  minute). Both are inclusive, so the newest item of a run is read again next run (upserts are idempotent).
  ``Batch.cursor`` is the newest ``updated`` of every item listed (rejected ones and GitHub pull requests
  too: a rejected item is read again once someone edits it, which moves its updated time), or ``since`` when
  nothing was listed.
- Order: GitHub is read ``sort=created&direction=asc`` and Jira ``ORDER BY created ASC`` (a JQL's own ORDER
  BY is replaced). With offset pagination, an updated-time order moves an item edited during the read to
  the end and shifts the rest back by one, silently skipping an item; creation order only ever appends.
- GitHub status: closed → done (also closed as not planned: the record has no resolution); open with a
  label "in progress" (any case, "-" or "_" for the space), "wip", "doing", "started", "in development" or
  "in review", optionally prefixed "status:", → in_progress; else todo.
  Type: the issue's GitHub issue type when set, else the first label naming one (bug/defect →
  bug; feature/enhancement/story → feature; chore/maintenance/tech debt/refactor/docs → chore; task → task;
  "type: " prefixes allowed), else task. Estimate: the largest estimate label ("estimate: 3d", "estimate: 6h",
  "points: 5" × days_per_point; prefixes from the block; an unreadable one rejects the issue), else the first
  body line "Estimate: 2d" / "Points: 3" (prose there that is not an amount is ignored). Units: d, h, w (5 d).
  started_at: GitHub has no start time without per-issue timeline requests, so it is the issue's updated
  time while it carries an in-progress label (an upper bound; keep the earliest seen) and None otherwise.
- GitHub dependencies from body lines (outside code blocks, HTML comments and quotes): "Depends on #12",
  "Blocked by owner/repo#34" (or an issue URL) → this depends on it; "Blocks #56" → #56 depends on this.
- Jira status from ``status.statusCategory.key`` (new → todo, indeterminate → in_progress, done → done);
  started_at is ``statuscategorychangedate`` while in progress, done_at ``resolutiondate`` (else that
  date) when done. Dependencies from "Blocks" links: inwardIssue ("is blocked by") → this depends on it,
  outwardIssue ("blocks") → it depends on this; across projects too.
- Only edges whose dependent task is in the batch are kept. The store replaces a task's dependencies
  with those the batch declares for it, so an edge declared for a task outside the batch (GitHub "Blocks
  #56" when #56 was not updated; a Jira outward link to an issue outside the JQL or not updated) would wipe
  that task's other edges. Jira shows every link on both issues, so nothing is lost there; a GitHub
  "Blocks" line is seen only when the blocked issue is read in the same run (always on a full read).
- Keys: ``github:{owner}/{repo}#{n}`` (owner/repo lower-cased, as GitHub names are case-insensitive),
  ``jira:{KEY}``; CSV keys and projects are kept as written. Skills are lower-cased everywhere.
"""

from __future__ import annotations

from framework2.tasks.planning.connectors.csv_files import (
    EARLIEST_DATE,
    FUTURE_YEARS,
    HOURS_PER_DAY,
    MAX_CELL_CHARS,
    MAX_ESTIMATE_DAYS,
    PEOPLE_COLUMNS,
    TASK_COLUMNS,
    read_csv,
    read_people_csv,
)
from framework2.tasks.planning.connectors.fetch import (
    Clock,
    Fetcher,
    Page,
    Sleep,
    SourceError,
)
from framework2.tasks.planning.connectors.github import (
    github_dependencies,
    read_github,
)
from framework2.tasks.planning.connectors.jira import (
    JIRA_FIELDS,
    iter_jira_issues,
    jira_dependencies,
    jira_jql,
    read_jira,
)

__all__ = [
    "Clock",
    "EARLIEST_DATE",
    "FUTURE_YEARS",
    "Fetcher",
    "HOURS_PER_DAY",
    "JIRA_FIELDS",
    "MAX_CELL_CHARS",
    "MAX_ESTIMATE_DAYS",
    "PEOPLE_COLUMNS",
    "Page",
    "Sleep",
    "SourceError",
    "TASK_COLUMNS",
    "github_dependencies",
    "iter_jira_issues",
    "jira_dependencies",
    "jira_jql",
    "read_csv",
    "read_github",
    "read_jira",
    "read_people_csv",
]
