"""PCES against hostile input: requirement files built to exhaust the YAML parser (alias bombs, deep nesting,
values Python refuses, huge files) are problems with a short reason, fast, never an exception; a Requirements
Source's branch, URL, subdirectory and pattern can never become a git option or a path out of the checkout,
whether the block was saved before these checks or not."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from framework2.blocks.requirements_source import RequirementsSource
from framework2.errors import DataError
from framework2.tasks.context import sources as sources_module
from framework2.tasks.context.requirements import MAX_FILE_BYTES, parse_requirement, read_requirements_dir
from framework2.tasks.context.requirements import markdown as requirements_module  # where folders are read
from framework2.tasks.context.safe_yaml import MAX_DEPTH, MAX_YAML_CHARS
from framework2.tasks.context.source_checks import branch_problem
from framework2.tasks.context.sources import checkout_directory
from tests.test_context_sources import git


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def good(id: str) -> str:
    return f"---\nid: {id}\ntitle: Fine\n---\nBody.\n"


def alias_bomb(key: str) -> str:
    """A ~500-byte front matter whose ``key`` expands to 9**9 (387 million) strings when walked."""
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "---\nid: REQ-BOMB\n" + "\n".join(levels) + f"\n{key}: *i\n---\nBody.\n"


# --- requirement files ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["title", "tasks"])
def test_a_yaml_alias_bomb_is_a_short_problem_found_fast_and_the_other_files_are_read(tmp_path: Path, key: str) -> None:
    write(tmp_path, "a.md", good("REQ-1"))
    write(tmp_path, "bomb.md", alias_bomb(key))
    write(tmp_path, "z.md", good("REQ-2"))
    assert len(alias_bomb(key).encode()) < 600

    started = time.perf_counter()
    result = read_requirements_dir(tmp_path)
    elapsed = time.perf_counter() - started

    assert elapsed < 10  # the old reader took 27 s and 2.2 GB; the margin is for a loaded machine
    assert [r.id for r in result.requirements] == ["REQ-1", "REQ-2"]
    [problem] = result.problems
    assert problem.source == "bomb.md"
    assert "alias '*a'" in problem.reason and "not allowed" in problem.reason
    assert len(problem.reason) < 200 and "lol" not in problem.reason  # never the expanded content
    assert "anchor" in problem.hint


@pytest.mark.parametrize(
    "front",
    [
        "title: " + "[" * 5000 + "]" * 5000,  # flow sequences
        "title: " + "{a: " * 3000 + "}" * 3000,  # flow mappings
        "title:\n" + "- " * 3000 + "x",  # block sequences, compact ("- - - x")
    ],
    ids=["flow-sequences", "flow-mappings", "block-sequences"],
)
def test_deeply_nested_front_matter_is_a_problem_not_a_recursion_error(tmp_path: Path, front: str) -> None:
    write(tmp_path, "deep.md", "---\nid: REQ-1\n" + front + "\n---\n")
    write(tmp_path, "ok.md", good("REQ-2"))

    started = time.perf_counter()
    result = read_requirements_dir(tmp_path)

    assert time.perf_counter() - started < 10  # bounded, not a speed target
    assert [r.id for r in result.requirements] == ["REQ-2"]
    [problem] = result.problems
    assert f"nests deeper than {MAX_DEPTH} levels" in problem.reason and problem.hint


@pytest.mark.parametrize(
    ("value", "said"),
    [("9" * 5000, "Exceeds the limit"), ("2001-13-45", "month must be in 1..12")],
    ids=["5000-digit-integer", "impossible-date"],
)
def test_a_value_yaml_accepts_but_python_cannot_hold_is_a_yaml_problem(tmp_path: Path, value: str, said: str) -> None:
    write(tmp_path, "odd.md", f"---\nid: REQ-1\ntitle: x\npriority: {value}\n---\n")

    [problem] = read_requirements_dir(tmp_path).problems

    assert problem.reason.startswith("front matter is not valid YAML at line 4, column 11: value cannot be read")
    assert said in problem.reason and len(problem.reason) < 200


def test_oversized_files_and_front_matter_are_refused_with_the_limit(tmp_path: Path) -> None:
    write(tmp_path, "huge.md", good("REQ-1") + "x" * MAX_FILE_BYTES)
    write(tmp_path, "long_front.md", "---\nid: REQ-2\ntitle: x\nowner: " + "a" * MAX_YAML_CHARS + "\n---\n")
    write(tmp_path, "ok.md", good("REQ-3"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-3"]
    reasons = {p.source: p.reason for p in result.problems}
    assert reasons["huge.md"] == f"file is larger than {MAX_FILE_BYTES // 1024:,} KiB; not read"
    assert (
        reasons["long_front.md"].startswith("front matter is ")
        and "more than the 16,384 allowed" in reasons["long_front.md"]
    )


def test_a_value_quoted_in_a_reason_is_cut_short() -> None:
    many = "[" + ", ".join(f"item{i}" for i in range(1000)) + "]"

    with pytest.raises(DataError) as caught:
        parse_requirement(f"---\nid: REQ-1\ntitle: {many}\n---\n", "a.md")

    assert caught.value.message.startswith("title must be text, not ['item0', 'item1'")
    assert "…" in caught.value.message and len(caught.value.message) < 120


def test_an_unexpected_failure_on_one_file_is_that_files_problem_without_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_parse = requirements_module.parse_requirement

    def parse(text: str, source: str):  # type: ignore[no-untyped-def]
        if source == "bad.md":
            raise MemoryError("lol " * 1000)
        return real_parse(text, source)

    monkeypatch.setattr(requirements_module, "parse_requirement", parse)
    write(tmp_path, "bad.md", good("REQ-1"))
    write(tmp_path, "ok.md", good("REQ-2"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-2"]
    [problem] = result.problems
    assert (problem.source, problem.reason) == ("bad.md", "file could not be read (MemoryError)") and problem.hint


def test_a_symlink_loop_is_a_problem_and_the_other_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "loop.md").symlink_to("loop.md")
    write(tmp_path, "ok.md", good("REQ-1"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1"]
    [problem] = result.problems
    assert problem.source == "loop.md" and "symlink loops" in problem.reason and problem.hint


@pytest.mark.parametrize("pattern", ["/etc/*.md", "../*.md", "sub/../../*.md"])
def test_a_pattern_reaching_outside_the_folder_is_refused(tmp_path: Path, pattern: str) -> None:
    root = tmp_path / "reqs"
    write(root, "a.md", good("REQ-1"))
    write(tmp_path, "outside.md", good("REQ-2"))

    with pytest.raises(DataError, match="pattern must") as caught:
        read_requirements_dir(root, pattern=pattern)
    assert "**/*.md" in caught.value.hint
    with pytest.raises(ValidationError, match="pattern must"):
        RequirementsSource(path=str(root), pattern=pattern)


# --- requirements sources ------------------------------------------------------------------------------------

INJECTED = "--upload-pack=touch {marker}; git-upload-pack"


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    repo = tmp_path / "origin"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    write(repo, "reqs/a.md", good("REQ-1"))
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "one", cwd=repo)
    return repo


def test_an_option_given_as_branch_is_refused_and_never_runs_on_fetch_or_clone(origin: Path, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    branch = INJECTED.format(marker=marker)
    cache = tmp_path / "cache"
    checkout_directory(path=None, git_url=f"file://{origin}", branch="main", subdirectory="", cache=cache)

    # A block saved before the block validated its branch: the second ingest takes the fetch path.
    with pytest.raises(DataError, match="starts with '-', which git would read as an option") as caught:
        checkout_directory(path=None, git_url=f"file://{origin}", branch=branch, subdirectory="", cache=cache)
    assert "branch" in caught.value.hint
    with pytest.raises(DataError, match="starts with '-'"):
        checkout_directory(path=None, git_url=str(origin), branch=branch, subdirectory="", cache=tmp_path / "new")
    assert not marker.exists()
    with pytest.raises(ValidationError, match="starts with '-'"):
        RequirementsSource(git_url=str(origin), branch=branch)


def test_git_itself_never_reads_the_branch_as_an_option_even_past_the_check(
    origin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "PWNED"
    cache = tmp_path / "cache"
    checkout_directory(path=None, git_url=str(origin), branch="main", subdirectory="", cache=cache)
    monkeypatch.setattr(sources_module, "branch_problem", lambda branch: None)  # the second line of defence alone

    for target in (cache, tmp_path / "fresh"):  # fetch, then clone
        with pytest.raises(DataError, match="failed"):
            checkout_directory(
                path=None, git_url=str(origin), branch=INJECTED.format(marker=marker), subdirectory="", cache=target
            )
    assert not marker.exists()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (INJECTED, "git_url starts with '-'"),
        ("ext::touch {marker}", "is refused; use https://"),
        ("fd::3", "is refused; use https://"),
        ("EXT::touch {marker}", "is refused; use https://"),
        ("gopher://example.com/x", "is refused; use https://"),
        ("FILE:///tmp/repo", "is refused; use https://"),
    ],
)
def test_a_git_url_that_is_an_option_a_command_or_an_unknown_transport_is_refused(
    tmp_path: Path, url: str, said: str
) -> None:
    marker = tmp_path / "PWNED"
    url = url.format(marker=marker)

    with pytest.raises(DataError, match=said) as caught:
        checkout_directory(path=None, git_url=url, branch="main", subdirectory="", cache=tmp_path / "cache")
    assert "git_url" in caught.value.hint and not marker.exists()
    with pytest.raises(ValidationError, match=said):
        RequirementsSource(git_url=url)


def test_git_itself_allows_only_the_listed_transports_even_past_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A remote helper on PATH is a transport git runs by default ("pwn::x" runs git-remote-pwn); the allowlist in
    # git's environment is what stops it once a URL gets past the block's check.
    marker = tmp_path / "PWNED"
    helper = tmp_path / "bin" / "git-remote-pwn"
    helper.parent.mkdir()
    helper.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(DataError, match="git clone of .* failed: .*not allowed"):
        sources_module._git(["clone", "--", "pwn::x", str(tmp_path / "out")], None, 30, "pwn::x")
    assert not marker.exists()


def test_fetch_still_follows_a_branch_whose_name_has_a_slash(origin: Path, tmp_path: Path) -> None:
    git("checkout", "--quiet", "-b", "release/2.1", cwd=origin)
    cache = tmp_path / "cache"
    first = checkout_directory(path=None, git_url=str(origin), branch="release/2.1", subdirectory="reqs", cache=cache)
    write(origin, "reqs/a.md", good("REQ-1") + "more\n")
    git("commit", "--quiet", "-am", "two", cwd=origin)

    second = checkout_directory(path=None, git_url=str(origin), branch="release/2.1", subdirectory="reqs", cache=cache)

    assert second.commit == git("rev-parse", "HEAD", cwd=origin) != first.commit
    assert (second.directory / "a.md").read_text().endswith("more\n")


@pytest.mark.parametrize("subdirectory", ["/etc", "//etc", "C:\\Windows", "~/reqs", "reqs/../../x"])
def test_a_subdirectory_that_is_absolute_or_climbs_out_is_refused_at_the_block_and_at_use(
    origin: Path, tmp_path: Path, subdirectory: str
) -> None:
    with pytest.raises(ValidationError, match="subdirectory must"):
        RequirementsSource(git_url=str(origin), subdirectory=subdirectory)
    with pytest.raises(DataError, match="subdirectory must") as caught:
        checkout_directory(path=str(origin), git_url=None, branch="main", subdirectory=subdirectory, cache=tmp_path)
    assert "subdirectory" in caught.value.hint
    with pytest.raises(DataError, match="subdirectory must"):
        checkout_directory(
            path=None, git_url=str(origin), branch="main", subdirectory=subdirectory, cache=tmp_path / "c"
        )


def test_a_subdirectory_symlink_out_of_the_checkout_or_in_a_loop_is_refused(origin: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret.md", good("REQ-9"))
    (origin / "linked").symlink_to(outside)
    git("add", "linked", cwd=origin)
    git("commit", "--quiet", "-m", "link out", cwd=origin)

    with pytest.raises(DataError, match="'linked' leads outside .*through a symlink") as cloned:
        checkout_directory(path=None, git_url=str(origin), branch="main", subdirectory="linked", cache=tmp_path / "c")
    assert "subdirectory" in cloned.value.hint
    with pytest.raises(DataError, match="leads outside"):
        checkout_directory(path=str(origin), git_url=None, branch="main", subdirectory="linked", cache=tmp_path)
    inside = checkout_directory(path=str(origin), git_url=None, branch="main", subdirectory="reqs", cache=tmp_path)
    assert inside.directory == origin / "reqs"
    (origin / "loop").symlink_to("loop")
    with pytest.raises(DataError, match="'loop' of .* cannot be resolved: a symlink loop"):
        checkout_directory(path=str(origin), git_url=None, branch="main", subdirectory="loop", cache=tmp_path)


ACCEPTED = ["main", "release/2.1", "feature/ü", "v1.0-rc", "a@b", "x.y"]
REFUSED = [
    *("-x", "--upload-pack=x", "a..b", "a b", "a\tb", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b"),
    *("x/", "/x", "a//b", ".a", "a/.b", "a.", "a.lock", "a.lock/b", "a@{1}", "@{-1}", "HEAD", "x\n"),
]


@pytest.mark.parametrize("branch", ACCEPTED + REFUSED)
def test_branch_names_are_judged_as_git_check_ref_format_judges_them(branch: str, tmp_path: Path) -> None:
    # Outside any repository, where git cannot expand "@{-1}" into the previous branch.
    by_git = subprocess.run(
        ["git", "check-ref-format", "--branch", branch], cwd=tmp_path, capture_output=True, check=False
    )
    assert (branch_problem(branch) is None) == (by_git.returncode == 0) == (branch in ACCEPTED)
    if branch in REFUSED:
        with pytest.raises(ValidationError, match="give the name of a branch"):
            RequirementsSource(git_url="https://git.example.com/r.git", branch=branch)
    else:
        assert RequirementsSource(git_url="https://git.example.com/r.git", branch=branch).branch == branch


def test_the_lone_at_sign_is_refused_though_git_reads_it_as_head() -> None:
    assert branch_problem("@") is not None and branch_problem("x" * 201) is not None


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ('id: REQ-X\ntitle: "a\\0b"', "title holds the control character U+0000"),
        ("id: REQ-\u202eX\ntitle: T", "id holds the control character U+202E"),
        (f"id: REQ-{'9' * 300}\ntitle: T", "id is 304 characters long; at most 200"),
        (f"id: REQ-X\ntitle: {'t' * 501}", "title is 501 characters long; at most 500"),
        (f"id: REQ-X\ntitle: T\ntasks: [{'k' * 201}]", "tasks entry is 201 characters long"),
    ],
    ids=["nul-title", "rtl-id", "long-id", "long-title", "long-task"],
)
def test_text_a_store_cannot_hold_is_that_files_problem_and_the_rest_is_read(
    tmp_path: Path, front: str, expected: str
) -> None:
    # On PostgreSQL a NUL or a 300-character id failed the whole ingest's write, good files included.
    write(tmp_path, "bad.md", f"---\n{front}\n---\nBody.\n")
    write(tmp_path, "good.md", good("REQ-1"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1"]
    [problem] = result.problems
    assert problem.source == "bad.md" and expected in problem.reason


def test_a_control_character_in_the_body_is_refused_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, "bad.md", "---\nid: REQ-2\ntitle: T\n---\nfirst line\nsecond \x00 line\n")

    [problem] = read_requirements_dir(tmp_path).problems

    assert "U+0000 at line 2" in problem.reason


def test_a_file_path_the_store_cannot_hold_or_that_reads_reversed_is_a_problem(tmp_path: Path) -> None:
    write(tmp_path, "rlo\u202egpj.md", good("REQ-7"))
    write(tmp_path, "/".join(["d" * 100] * 5) + "/deep.md", good("REQ-8"))
    write(tmp_path, "good.md", good("REQ-1"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1"]
    reasons = " | ".join(p.reason for p in result.problems)
    assert len(result.problems) == 2
    assert "character U+202E" in reasons and "512 characters long" in reasons
    assert all("\u202e" not in p.source for p in result.problems)


def test_a_file_name_that_is_not_utf8_is_a_problem_and_the_rest_is_read(tmp_path: Path) -> None:
    # git accepts any bytes in a name; Python keeps the ones that are not UTF-8 as surrogates, which no store holds.
    (tmp_path / "good.md").write_text(good("REQ-1"), encoding="utf-8")
    with open(os.path.join(os.fsencode(tmp_path), b"x\xff.md"), "w", encoding="utf-8") as handle:
        handle.write(good("REQ-2"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1"]
    [problem] = result.problems
    assert "U+DCFF" in problem.reason and "not UTF-8" in problem.reason
    problem.source.encode("utf-8")


def test_a_lone_surrogate_in_front_matter_is_that_files_problem(tmp_path: Path) -> None:
    write(tmp_path, "a.md", good("REQ-1"))
    write(tmp_path, "b.md", good("REQ-2").replace("title: Fine", 'title: "\\ud800"'))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-1"]
    assert len(result.problems) == 1 and "U+D800" in result.problems[0].reason


def test_an_id_with_an_invisible_character_is_refused_so_it_cannot_pose_as_another(tmp_path: Path) -> None:
    write(tmp_path, "a.md", good("REQ-5"))
    write(tmp_path, "b.md", good("REQ\u200b-5"))

    result = read_requirements_dir(tmp_path)

    assert [r.id for r in result.requirements] == ["REQ-5"]
    assert "invisible character U+200B" in result.problems[0].reason
