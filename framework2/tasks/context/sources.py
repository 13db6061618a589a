"""Where PCES reads requirements: a local directory as it is, a git repository kept as a clone under the
Framework Set 2 home and brought up to the branch's head on every ingest, and Jira epics and stories
through the same paged, rate-limit-aware search PPMS reads tasks with.

The clone is reset hard to ``origin/<branch>`` (never merged): it is PCES's own cache, and a local edit in it
would otherwise make the next ingest read something nobody committed. The commit read is returned so every
stored version says which commit it came from. Credentials in a URL are never shown in an error.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework2.blocks.project_sources import JiraSource
from framework2.errors import DataError
from framework2.tasks.context.requirements import FileProblem, ReadResult, requirement_from_jira
from framework2.tasks.planning.connectors import iter_jira_issues

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


@dataclass(frozen=True)
class Checkout:
    """The directory to read, and the git commit it holds (None for a plain directory)."""

    directory: Path
    commit: str | None


def shown(url: str) -> str:
    """``url`` with any user:password@ part hidden."""
    return _CREDENTIALS.sub("***@", url)


def _git(args: list[str], cwd: Path | None, timeout: float, url: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(
            f"git {args[0]} of {shown(url)} took longer than {timeout:g} s",
            "check that the repository is reachable, or raise the block's timeout_seconds",
        ) from None
    if done.returncode != 0:
        message = shown(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
        raise DataError(
            f"git {args[0]} of {shown(url)} failed: {message}",
            "check the block's git_url and branch, and that this machine may read the repository",
        )
    return done.stdout.strip()


def checkout_directory(
    *, path: str | None, git_url: str | None, branch: str, subdirectory: str, cache: Path, timeout: float = 120.0
) -> Checkout:
    """The directory holding the requirement files: ``path`` itself, or ``git_url``'s ``branch`` cloned (first
    time) or fetched and reset (after) into ``cache``."""
    if path:
        directory = Path(path).expanduser() / subdirectory
        if not directory.is_dir():
            raise DataError(
                f"requirements directory {directory} does not exist",
                "point the Requirements Source block's path at the folder of Markdown files",
            )
        return Checkout(directory, None)
    if not git_url:
        raise DataError("the requirements source has neither a path nor a git_url", "set one of them on the block")
    if (cache / ".git").is_dir():
        _git(["fetch", "--quiet", "origin", branch], cache, timeout, git_url)
        _git(["reset", "--quiet", "--hard", f"origin/{branch}"], cache, timeout, git_url)
    else:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _git(["clone", "--quiet", "--branch", branch, "--single-branch", git_url, str(cache)], None, timeout, git_url)
    commit = _git(["rev-parse", "HEAD"], cache, timeout, git_url)
    directory = cache / subdirectory
    if not directory.is_dir():
        raise DataError(
            f"{subdirectory!r} is not a folder in {shown(git_url)} at {commit[:12]}",
            "fix the Requirements Source block's subdirectory",
        )
    return Checkout(directory, commit)


# The fields requirement_from_jira reads.
JIRA_REQUIREMENT_FIELDS = (
    "summary",
    "description",
    "priority",
    "assignee",
    "status",
    "issuelinks",
    "subtasks",
    "project",
    "issuetype",
    "components",
    "updated",
)


def read_jira_requirements(source: JiraSource, jql: str, **fetch: Any) -> ReadResult:
    """Jira issues found by ``jql`` as requirements; an issue that cannot be one is a problem with why, and
    never stops the others. ``fetch`` goes to ``iter_jira_issues`` (client, retries, clock)."""
    requirements, problems = [], []
    for page, issue in iter_jira_issues(source, jql, JIRA_REQUIREMENT_FIELDS, **fetch):
        key = issue.get("key") if isinstance(issue, dict) else None
        try:
            if not isinstance(issue, dict):
                raise DataError(f"item is a JSON {type(issue).__name__}, not an issue", "check the Jira search")
            requirements.append(requirement_from_jira(issue))
        except DataError as exc:
            problems.append(
                FileProblem(source=f"jira:{key or '?'}", reason=f"(page {page}) {exc.message}", hint=exc.hint or "")
            )
    return ReadResult(requirements=requirements, problems=problems)
