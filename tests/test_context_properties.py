"""Property tests of the PCES requirement-file boundary (``requirements.read_requirements_dir``).

Whatever a file holds (random bytes, non-UTF-8, a BOM, CRLF, NUL bytes, YAML tags, aliases, NaN, 1e400, nested
flow collections, surrogate escapes), it becomes a requirement or a problem with a reason; the reader never
raises and is quick.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from framework2.tasks.context.requirements import Requirement, content_hash, read_requirements_dir

UNICODE = st.characters(exclude_categories=("Cs",))
YAML_VALUES = st.one_of(
    st.text(UNICODE, max_size=15),
    st.sampled_from(
        [
            "REQ-1",
            "must",
            "Won't",
            "3",
            "7",
            ".nan",
            ".inf",
            "-.inf",
            "1e400",
            "0x10",
            "2026-01-01",
            "null",
            "~",
            "true",
            "[a, b, a]",
            "[]",
            "{x: 1}",
            "[[[[[[1]]]]]]",
            "&a [*a]",
            "*a",
            "!!python/object/apply:os.system [ls]",
            "!!binary aGk=",
            '"\\ud800"',
            '"\\x00"',
            "'a'b'",
            "@alice",
            "|\n  block",
            "approved",
            "Retired",
        ]
    ),
)
KEYS = st.sampled_from(["id", "title", "priority", "owner", "project", "tasks", "components", "status", "x", "? id"])
BODIES = st.one_of(
    st.text(UNICODE, max_size=80),
    st.sampled_from(
        [
            "## Acceptance criteria\n- [ ] one\n  - nested\n- two\n",
            "Acceptance criteria\n===\n1. a\n```\n- not\n```\n",
            "# Acceptance criteria:\n\t- tab\n* star\n+ plus\n",
        ]
    ),
)


@st.composite
def requirement_files(draw: st.DrawFn) -> bytes:
    """A file's bytes: random bytes or text, or front matter of arbitrary keys and values and a body."""
    kind = draw(st.sampled_from(["bytes", "text", "front", "front", "front"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        return draw(st.text(UNICODE, max_size=200)).encode("utf-8")
    lines = [f"{draw(KEYS)}: {draw(YAML_VALUES)}" for _ in range(draw(st.integers(0, 6)))]
    if draw(st.booleans()):  # a usable id and title, among or before those lines
        lines = [f"id: REQ-{draw(st.integers(0, 3))}", "title: A title", *lines[: draw(st.integers(0, 2))]]
    closing = draw(st.sampled_from(["---", "---", "...", "", " --- "]))
    text = "\n".join(["---", *lines, closing, draw(BODIES)])
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode("utf-8")


@settings(max_examples=80, deadline=None)
@given(files=st.lists(requirement_files(), min_size=1, max_size=4))
def test_any_requirement_file_becomes_a_requirement_or_a_problem_with_a_reason(files: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for number, data in enumerate(files):
            (Path(folder) / f"r{number}.md").write_bytes(data)
        started = time.perf_counter()
        result = read_requirements_dir(folder)
        elapsed = time.perf_counter() - started

    assert elapsed < 20  # bounded (no blow-up), not a speed target
    event(f"{len(result.requirements)} requirement(s)")
    sources = sorted([r.source for r in result.requirements] + [p.source for p in result.problems])
    assert sources == [f"r{number}.md" for number in range(len(files))], "each file is one or the other, once"
    for problem in result.problems:
        assert problem.reason.strip()
        # A reason naming only an exception type means the reader failed where it should have judged the file.
        assert "could not be read (" not in problem.reason, problem.reason
    for requirement in result.requirements:
        assert isinstance(requirement, Requirement) and requirement.id.strip() and requirement.title.strip()
        assert requirement.content_hash == content_hash(requirement.model_dump())
