"""Where PCES reads requirements: a local directory as it is, a git repository kept as a clone under the
Framework Set 2 home and brought up to the branch's head on every ingest, and Jira epics and stories
through the same paged, rate-limit-aware search PPMS reads tasks with.

The clone is reset hard to ``origin/<branch>`` (never merged): it is PCES's own cache, and a local edit in it
would otherwise make the next ingest read something nobody committed. The commit read is returned so every
stored version says which commit it came from. Credentials in a URL are never shown in an error.

The block's fields reach git's command line and the file system, so they are checked again here (blocks saved
before the block validated them): the branch must be a git branch name and never looks like an option (it goes
after '--' or inside an explicit ``refs/...`` refspec), the URL is passed after '--', and the subdirectory
must stay inside the checkout once symlinks are followed (``source_checks``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framework2.blocks.project_sources import JiraSource
from framework2.errors import DataError
from framework2.tasks.context.requirements import FileProblem, ReadResult, requirement_from_jira
from framework2.tasks.context.source_checks import (
    GIT_PROTOCOLS,
    branch_problem,
    git_url_problem,
    subdirectory_problem,
)
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


# git itself refuses other transports too (a block saved before the URL rule, a submodule URL), and never
# stops to ask for a password on a terminal nobody watches.
def _git_env() -> dict[str, str]:
    return {**os.environ, "GIT_ALLOW_PROTOCOL": ":".join(GIT_PROTOCOLS), "GIT_TERMINAL_PROMPT": "0"}


def _git(args: list[str], cwd: Path | None, timeout: float, url: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=_git_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
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


_SUBDIRECTORY_HINT = "set the Requirements Source block's subdirectory to a folder inside it, or ''"


def _inside(base: Path, subdirectory: str, where: str) -> Path:
    """``base / subdirectory``, refused unless it stays inside ``base`` once symlinks are followed."""
    if problem := subdirectory_problem(subdirectory):
        raise DataError(problem, _SUBDIRECTORY_HINT)
    directory = base / subdirectory
    try:
        real, real_base = directory.resolve(), base.resolve()
    except (OSError, RuntimeError):  # a symlink loop: Python 3.11 raises RuntimeError, later ones OSError
        raise DataError(
            f"subdirectory {subdirectory!r} of {where} cannot be resolved: a symlink loop",
            "point the block's path and subdirectory at real folders",
        ) from None
    if not real.is_relative_to(real_base):
        raise DataError(
            f"subdirectory {subdirectory!r} leads outside {where} (through a symlink); not read",
            "point the block's subdirectory at a real folder inside it, not a link out of it",
        )
    return directory


def _check_git_fields(git_url: str, branch: str) -> None:
    # Blocks saved before the block validated these reach here unchecked; a value git would read as an option
    # must never get onto its command line.
    if problem := git_url_problem(git_url):
        raise DataError(problem, "set the Requirements Source block's git_url to the repository's URL or path")
    if problem := branch_problem(branch):
        raise DataError(problem, "set the Requirements Source block's branch to the name of a branch, e.g. 'main'")


def checkout_directory(
    *, path: str | None, git_url: str | None, branch: str, subdirectory: str, cache: Path, timeout: float = 120.0
) -> Checkout:
    """The directory holding the requirement files: ``path`` itself, or ``git_url``'s ``branch`` cloned (first
    time) or fetched and reset (after) into ``cache``. ``subdirectory`` must resolve inside either, and the
    branch and URL must be what they claim (never options); DataError with a hint otherwise."""
    if path:
        base = Path(path).expanduser()
        directory = _inside(base, subdirectory, str(base))
        if not directory.is_dir():
            raise DataError(
                f"requirements directory {directory} does not exist",
                "point the Requirements Source block's path at the folder of Markdown files",
            )
        return Checkout(directory, None)
    if not git_url:
        raise DataError("the requirements source has neither a path nor a git_url", "set one of them on the block")
    _check_git_fields(git_url, branch)
    if problem := subdirectory_problem(subdirectory):  # before any git work: it will not get better
        raise DataError(problem, _SUBDIRECTORY_HINT)
    # The branch goes after '--' or into an explicit refs/... refspec, never where git looks for options.
    tracking = f"refs/remotes/origin/{branch}"
    if (cache / ".git").is_dir():
        _git(["fetch", "--quiet", "origin", "--", f"+refs/heads/{branch}:{tracking}"], cache, timeout, git_url)
        _git(["reset", "--quiet", "--hard", tracking, "--"], cache, timeout, git_url)
    else:
        cache.parent.mkdir(parents=True, exist_ok=True)
        clone = ["clone", "--quiet", "--branch", branch, "--single-branch", "--", git_url, str(cache)]
        _git(clone, None, timeout, git_url)
    commit = _git(["rev-parse", "HEAD"], cache, timeout, git_url)
    directory = _inside(cache, subdirectory, f"{shown(git_url)} at {commit[:12]}")
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
