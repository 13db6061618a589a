"""PPMS data in: bad rows are quarantined with a reason a person can act on; good rows are stored once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from framework2.store.engine import open_store, session_scope
from framework2.store.models import QuarantinedRow
from framework2.store.planning import load_dependencies, load_tasks, source_cursor, store_batch
from framework2.tasks.planning.records import Batch, DependencyRecord, TaskRecord
from framework2.tasks.planning.validate import find_cycle

T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)


def task(key: str, **fields) -> TaskRecord:  # type: ignore[no-untyped-def]
    return TaskRecord(key=key, project="jira:SHOP", created_at=T0, updated_at=T0, **fields)


def quarantined(engine) -> list[str]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return [r.reason for r in session.scalars(select(QuarantinedRow).where(QuarantinedRow.system == "ppms"))]


def test_cycle_is_reported_with_its_members_and_broken_the_rest_stored(store_url: str) -> None:
    engine = open_store()
    batch = Batch(
        tasks=[task("SHOP-1"), task("SHOP-2"), task("SHOP-3"), task("SHOP-4")],
        dependencies=[
            DependencyRecord(task="SHOP-1", depends_on="SHOP-2"),
            DependencyRecord(task="SHOP-2", depends_on="SHOP-3"),
            DependencyRecord(task="SHOP-3", depends_on="SHOP-1"),
            DependencyRecord(task="SHOP-4", depends_on="SHOP-1"),
        ],
    )
    stored = store_batch(engine, batch, "jira:acme")

    [reason] = quarantined(engine)
    assert "dependency cycle" in reason
    assert all(k in reason for k in ("SHOP-1", "SHOP-2", "SHOP-3")) and "SHOP-4" not in reason.split(";")[0]
    assert (
        len(stored.dependencies) == 3 and find_cycle((d.task, d.depends_on) for d in load_dependencies(engine)) is None
    )
    assert len(load_tasks(engine)) == 4


def test_cycle_through_stored_edges_is_found_when_a_new_edge_closes_it(store_url: str) -> None:
    engine = open_store()
    store_batch(
        engine, Batch(tasks=[task("A"), task("B")], dependencies=[DependencyRecord(task="A", depends_on="B")]), "csv"
    )
    store_batch(engine, Batch(tasks=[task("C")], dependencies=[DependencyRecord(task="C", depends_on="A")]), "csv")
    store_batch(engine, Batch(dependencies=[DependencyRecord(task="B", depends_on="C")]), "csv")
    [reason] = quarantined(engine)
    assert "A → B → C → A" in reason or "B → C → A → B" in reason or "C → A → B → C" in reason


def test_unknown_dependency_negative_estimate_and_done_before_start_are_quarantined(store_url: str) -> None:
    engine = open_store()
    batch = Batch(
        tasks=[
            task("SHOP-1", estimate_days=2),
            task("SHOP-2", estimate_days=-1),
            task("SHOP-3", status="done", started_at=T0 + timedelta(days=3), done_at=T0 + timedelta(days=1)),
        ],
        dependencies=[
            DependencyRecord(task="SHOP-1", depends_on="OTHER-9"),
            DependencyRecord(task="SHOP-1", depends_on="SHOP-1"),
        ],
    )
    store_batch(engine, batch, "jira:acme")

    reasons = quarantined(engine)
    assert any("negative estimate -1 days" in r for r in reasons)
    assert any("done (2026-11-03 09:00) before it started (2026-11-05 09:00)" in r for r in reasons)
    assert any("SHOP-1 depends on OTHER-9, which is not a known task" in r for r in reasons)
    assert any("SHOP-1 depends on itself" in r for r in reasons)
    assert [t.key for t in load_tasks(engine)] == ["SHOP-1"] and load_dependencies(engine) == []


def test_re_read_replaces_a_tasks_dependencies_and_moves_the_cursor(store_url: str) -> None:
    engine = open_store()
    first = Batch(
        tasks=[task("A"), task("B"), task("C")], dependencies=[DependencyRecord(task="A", depends_on="B")], cursor=T0
    )
    store_batch(engine, first, "github:octo/shop")
    later = T0 + timedelta(hours=5)
    again = Batch(
        tasks=[task("A", title="renamed")], dependencies=[DependencyRecord(task="A", depends_on="C")], cursor=later
    )
    store_batch(engine, again, "github:octo/shop")
    store_batch(engine, again, "github:octo/shop")  # idempotent

    assert [(d.task, d.depends_on) for d in load_dependencies(engine)] == [("A", "C")]
    assert {t.key: t.title for t in load_tasks(engine)}["A"] == "renamed"
    assert source_cursor(engine, "github:octo/shop") == later
