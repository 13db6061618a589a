"""Checks of a Requirements Source's fields that end up on a git command line or in a file path.

Each function returns why the value is refused, or None when it is fine. The block runs them as validators
(a bad block cannot be saved) and ``sources``/``requirements`` run them again on use, for blocks saved before
these rules existed. No imports beyond the standard library: the block module imports this one.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

# Longer branch names are not a real branch; the bound keeps error messages and command lines short.
MAX_BRANCH_CHARS = 200
# Characters git-check-ref-format(1) forbids anywhere in a ref name: controls, space, ~ ^ : ? * [ and \.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def branch_problem(branch: str) -> str | None:
    """Why ``branch`` is not a branch name git would accept (the rules of ``git check-ref-format --branch``),
    or None. A leading '-' is refused first: git would read the name as an option."""
    shown = repr(branch if len(branch) <= 60 else branch[:59] + "…")
    if not branch:
        return "branch is empty"
    if branch.startswith("-"):
        return f"branch {shown} starts with '-', which git would read as an option"
    if len(branch) > MAX_BRANCH_CHARS:
        return f"branch is {len(branch)} characters long, more than the {MAX_BRANCH_CHARS} allowed"
    if match := _REF_FORBIDDEN.search(branch):
        return f"branch {shown} contains {match.group()!r}, which git does not allow in a branch name"
    for bad in ("..", "@{", "//"):
        if bad in branch:
            return f"branch {shown} contains '{bad}', which git does not allow in a branch name"
    if branch in ("@", "HEAD") or branch.startswith("/") or branch.endswith(("/", ".", ".lock")):
        return f"branch {shown} is not a valid git branch name"
    if any(part.startswith(".") or part.endswith(".lock") for part in branch.split("/")):
        return f"branch {shown} has a part starting with '.' or ending with '.lock', which git does not allow"
    return None


def subdirectory_problem(subdirectory: str) -> str | None:
    """Why ``subdirectory`` could lead outside the directory or repository it is relative to, or None.
    (A symlink leaving it can only be seen on disk: ``inside`` checks that.)"""
    if not subdirectory:
        return None
    posix = PurePosixPath(subdirectory.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(subdirectory).drive or subdirectory.startswith("~"):
        return f"subdirectory must be relative to the repository or directory, got {subdirectory!r}"
    if ".." in posix.parts:
        return f"subdirectory must stay inside the repository or directory, got {subdirectory!r}"
    if "\x00" in subdirectory:
        return "subdirectory contains a NUL character"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why the glob ``pattern`` could match files outside the folder it is applied to, or None."""
    if not pattern.strip():
        return "pattern is empty"
    posix = PurePosixPath(pattern.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(pattern).drive:
        return f"pattern must be relative to the requirements folder, got {pattern!r}"
    if ".." in posix.parts:
        return f"pattern must stay inside the requirements folder, got {pattern!r}"
    return None


#: Transports a requirements repository may be read over. git's "<transport>::<address>" form (``ext::`` runs
#: a command, ``fd::`` reads a file descriptor) and any other URL scheme are refused.
GIT_PROTOCOLS = ("https", "http", "ssh", "git", "file")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)::")


def git_url_problem(git_url: str) -> str | None:
    """Why ``git_url`` cannot be handed to git safely, or None (reachability is git's to report)."""
    if git_url.startswith("-"):
        return "git_url starts with '-', which git would read as an option"
    if any(ord(c) < 0x20 or c == "\x7f" for c in git_url):
        return "git_url contains a control character"
    allowed = ", ".join(f"{p}://" for p in GIT_PROTOCOLS)
    if match := _TRANSPORT.match(git_url):
        return f"git_url uses the git transport {match.group(1)!r}::, which is refused; use {allowed} or a path"
    # Case-sensitive, as git's own protocol allowlist is: FILE:// would pass a lowered check and fail in git.
    if (match := _SCHEME.match(git_url)) and match.group(1) not in GIT_PROTOCOLS:
        return f"git_url uses the scheme {match.group(1)!r}, which is refused; use {allowed} or a path"
    return None
