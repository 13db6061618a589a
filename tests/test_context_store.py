"""PCES store: an ingest that dies half way leaves the previous ingest's state whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from framework2.store.context import record_ingest, stored_contents
from framework2.store.engine import open_store, session_scope
from framework2.store.models import RequirementVersion
from framework2.tasks.context.evolution import diff_requirements
from framework2.tasks.context.requirements import Requirement, read_requirements_dir


def write(directory: Path, rid: str, body: str) -> None:
    (directory / f"{rid}.md").write_text(f"---\nid: {rid}\ntitle: {rid}\n---\n{body}\n")


def test_an_ingest_that_fails_half_way_stores_nothing_of_it(tmp_path: Path, store_url: str) -> None:
    engine = open_store()
    for rid in ("REQ-1", "REQ-2", "REQ-3"):
        write(tmp_path, rid, "first")
    first = read_requirements_dir(tmp_path)
    record_ingest(
        engine,
        "src",
        first.requirements,
        set(),
        diff_requirements,
        Requirement.model_validate,
        commit=None,
        run_id=None,
    )
    for rid in ("REQ-1", "REQ-2", "REQ-3"):
        write(tmp_path, rid, "second")
    second = read_requirements_dir(tmp_path)
    calls = {"n": 0}

    def dies_on_the_second(before, after):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the machine lost power")
        return diff_requirements(before, after)

    with pytest.raises(RuntimeError, match="lost power"):
        record_ingest(
            engine,
            "src",
            second.requirements,
            set(),
            dies_on_the_second,
            Requirement.model_validate,
            commit=None,
            run_id=None,
        )

    contents = stored_contents(engine, "src")
    assert {rid: content["body"] for rid, (_s, _st, content) in contents.items()} == {
        "REQ-1": "first",
        "REQ-2": "first",
        "REQ-3": "first",
    }
    with session_scope(engine) as session:
        assert len(session.scalars(select(RequirementVersion)).all()) == 3  # only the first ingest's versions
