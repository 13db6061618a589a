"""Runs that overlap: two workers starting the same pricing run, PPOS health runs overlapping each other, two PSO
runs rolling up health at once. Real concurrency on SQLite and PostgreSQL — threads and processes lined up with
a barrier at the moment they take the lock — not mocks: exactly one run works, the other is recorded as skipped
(or waits its turn), and nothing is stored twice or half."""

from __future__ import annotations

import contextvars
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from framework2.config import get_settings
from framework2.store.engine import dispose_all, make_engine, open_store, session_scope
from framework2.store.locks import Lease, LockHeld, LockLost, acquire, current_holder, try_acquire
from framework2.store.models import (
    AnalysisRun,
    FeedSnapshot,
    MarketPosition,
    PpAllocation,
    PpHealth,
    PpRisk,
    PriceRecommendation,
    QuarantinedRow,
    RunLock,
    SystemHealth,
    utcnow,
)
from framework2.store.runs import finish_run, run_status, start_run

BARRIER_TIMEOUT = 60  # a thread that never reaches the barrier fails the test instead of hanging it


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A fresh, migrated store, configured through the environment so flows and tasks use it too."""
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    monkeypatch.setenv("FRAMEWORK2_STORE__URL", url)
    monkeypatch.setenv("FRAMEWORK2_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield open_store()
    get_settings.cache_clear()
    dispose_all()


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads (each in a copy of this context, so they talk to the test's Prefect
    server); each result, or the exception it raised."""
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 (handed back to the test)
            results[i] = exc

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(run, i)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def lined_up(real: Callable[..., Any], barrier: threading.Barrier) -> Callable[..., Any]:
    """``real``, but every caller first waits at ``barrier``, so all of them take the lock at the same instant."""

    def call(*args: Any, **kwargs: Any) -> Any:
        barrier.wait(timeout=BARRIER_TIMEOUT)
        return real(*args, **kwargs)

    return call


def count(engine: Engine, model: type, *where: Any) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# --- the lock itself --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["free", "stale"])
def test_of_many_takers_at_once_exactly_one_gets_the_lock(store: Engine, state: str) -> None:
    for _ in range(5):  # a few rounds: a race that is lost only sometimes must still never give two holders
        with session_scope(store) as session:
            session.query(RunLock).delete()
            if state == "stale":  # a crashed holder's expired lease: every taker tries the takeover at once
                session.add(RunLock(name="job", holder="crashed", acquired_at=utcnow(), expires_at=utcnow()))
        barrier = threading.Barrier(8, timeout=BARRIER_TIMEOUT)

        def take(i: int, barrier: threading.Barrier = barrier) -> Lease | RunLock:
            barrier.wait()
            return try_acquire(store, "job", holder=f"taker-{i}", ttl=timedelta(minutes=1))

        results = together(8, take)

        assert not [r for r in results if isinstance(r, BaseException)], results
        winners = [r for r in results if isinstance(r, Lease)]
        assert len(winners) == 1, results
        assert all(r.holder == winners[0].holder for r in results if isinstance(r, RunLock))
        assert current_holder(store, "job").holder == winners[0].holder


def _take_in_a_process(url: str, barrier: Any, rounds: int, wins: Any) -> None:
    """A second worker: its own process and engine, taking the lock ``rounds`` times in step with the others."""
    engine = make_engine(url)
    me = str(uuid.uuid4())
    for _ in range(rounds):
        barrier.wait(timeout=BARRIER_TIMEOUT)
        got = try_acquire(engine, "job", holder=me, ttl=timedelta(minutes=1))
        if isinstance(got, Lease):
            wins.put(me)
        barrier.wait(timeout=BARRIER_TIMEOUT)  # everyone has tried
        if isinstance(got, Lease):
            got.release()
        barrier.wait(timeout=BARRIER_TIMEOUT)  # released before the next round
    engine.dispose()


def test_two_worker_processes_at_once_get_the_lock_once(store: Engine) -> None:
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as a second worker machine would be
    barrier, wins, rounds = spawn.Barrier(2), spawn.Queue(), 10
    workers = [
        spawn.Process(target=_take_in_a_process, args=(store.url.render_as_string(False), barrier, rounds, wins))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    winners = [wins.get(timeout=5) for _ in range(rounds)]
    assert len(winners) == rounds and wins.empty()  # exactly one winner per round, never two


def _hold_and_hang(url: str, ttl_seconds: float, ready: Any) -> None:
    engine = make_engine(url)
    acquire(engine, "job", holder="crashed-worker", ttl=timedelta(seconds=ttl_seconds), label="a crashed worker")
    ready.set()
    time.sleep(600)  # killed long before this ends: it never releases the lock


def test_a_crashed_holders_lock_expires_and_is_taken_over(store: Engine) -> None:
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    worker = spawn.Process(target=_hold_and_hang, args=(store.url.render_as_string(False), 2.0, ready))
    worker.start()
    try:
        assert ready.wait(timeout=60)
    finally:
        worker.kill()  # SIGKILL: no finally, no release — a worker machine lost mid-run
        worker.join(timeout=30)

    with pytest.raises(LockHeld, match="a crashed worker holds the job lock"):
        acquire(store, "job", holder="next-run", ttl=timedelta(minutes=1))
    lease = acquire(store, "job", holder="next-run", ttl=timedelta(minutes=1), wait=timedelta(seconds=10), poll=0.1)
    assert current_holder(store, "job").holder == "next-run"
    assert lease.release() and current_holder(store, "job") is None


def test_a_lease_whose_holder_run_has_ended_is_taken_over_at_once(store: Engine) -> None:
    crashed = start_run(store, "ppis")
    acquire(store, "ppis", holder=crashed, ttl=timedelta(hours=1))
    with pytest.raises(LockHeld):
        acquire(store, "ppis", holder="next", ttl=timedelta(hours=1))

    finish_run(store, crashed, status="failed", error="Crashed: worker lost")  # as PSO records a dead run

    assert isinstance(acquire(store, "ppis", holder="next", ttl=timedelta(hours=1)), Lease)


def test_a_holder_that_outlived_its_lease_can_neither_store_nor_release_the_successors_lock(store: Engine) -> None:
    from framework2.store.pricing import save_results

    late = start_run(store, "ppis")
    stale = acquire(store, "ppis", holder=late, ttl=timedelta(milliseconds=1))
    time.sleep(0.01)
    successor = acquire(store, "ppis", holder="successor", ttl=timedelta(hours=1))

    with pytest.raises(LockLost, match="passed to successor"):
        save_results(
            store,
            late,
            positions=pd.DataFrame(),
            our_prices=pd.Series(dtype=float),
            recommendations=pd.DataFrame(),
            apply=True,
            completion=lambda _applied, _superseded: {"status": "completed"},
            lease=stale,
        )
    stale.release()

    assert run_status(store, late) == "running"  # its "completed" was not stored
    assert current_holder(store, "ppis").holder == successor.holder


# --- PPIS: two pricing runs at once -----------------------------------------------------------------------------


def test_two_pricing_runs_at_once_one_prices_the_other_skips(
    store: Engine, prefect_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.pricing as pricing
    from framework2.flows import lifecycle
    from framework2.sample.world import sample_market, seed_store

    seed_store(store, sample_market(n_skus=30, seed=4))
    # Both runs reach the lease at the same moment (the one run lifecycle takes it for every system).
    monkeypatch.setattr(lifecycle, "acquire", lined_up(lifecycle.acquire, threading.Barrier(2)))

    results = together(2, lambda _i: pricing.hourly_pricing(feeds=[], approval_wait_seconds=0))

    assert not [r for r in results if isinstance(r, BaseException)], results
    [done] = [r for r in results if r.status == "completed"]
    [skipped] = [r for r in results if r.status == "skipped"]
    assert f"pricing run {done.run_id}" in skipped.summary and "still in progress" in skipped.summary
    assert run_status(store, done.run_id) == "completed" and run_status(store, skipped.run_id) == "skipped"
    assert count(store, AnalysisRun, AnalysisRun.system == "ppis") == 2
    # The completed run's results are whole; the skipped one left nothing.
    skus = done.metrics["skus"]
    assert skus > 0
    assert count(store, PriceRecommendation) == count(
        store, PriceRecommendation, PriceRecommendation.run_id == done.run_id
    )
    assert count(store, PriceRecommendation, PriceRecommendation.run_id == done.run_id) == skus
    assert count(store, MarketPosition, MarketPosition.run_id == done.run_id) == skus
    for model in (PriceRecommendation, MarketPosition, QuarantinedRow, FeedSnapshot):
        assert count(store, model, model.run_id == skipped.run_id) == 0
    assert current_holder(store, "ppis") is None  # released at the end


# --- PPOS: health runs overlapping each other ----------------------------------------------------------------------


@pytest.fixture
def ppos(store: Engine, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The sample projects in the store; PPOS's events recorded instead of sent, its artifact left out."""
    import framework2.flows.portfolio as portfolio
    from framework2.flows import lifecycle
    from framework2.sample.world import seed_projects

    seed_projects(store)
    events: list[tuple[str, str]] = []
    monkeypatch.setattr(
        portfolio, "emit_about_project", lambda _s, event, project, _n, _p: events.append((event, project))
    )
    monkeypatch.setattr(portfolio, "create_markdown_artifact", lambda **_kw: None)
    monkeypatch.setattr(lifecycle, "acquire", lined_up(lifecycle.acquire, threading.Barrier(2)))
    return events


def test_two_health_runs_at_once_one_scores_the_other_skips(store: Engine, ppos: list[tuple[str, str]]) -> None:
    from framework2.flows.portfolio import run_exclusive

    results = together(
        2, lambda _i: run_exclusive(store, get_settings(), "health", allocation=False, wait=timedelta(0))
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    [done] = [r for r in results if r.status == "completed"]
    [skipped] = [r for r in results if r.status == "skipped"]
    assert f"PPOS health run {done.run_id}" in skipped.summary and "still in progress" in skipped.summary
    assert run_status(store, skipped.run_id) == "skipped"
    with session_scope(store) as session:
        rows = session.execute(select(PpHealth.run_id, PpHealth.project, PpHealth.score)).all()
    # One point per project (and the portfolio), all of the run that scored; none twice.
    assert sorted((r, p) for r, p, _s in rows) == sorted(
        (done.run_id, p) for p in [*done.metrics["projects"], "portfolio"]
    )
    assert count(store, PpRisk, PpRisk.run_id == skipped.run_id) == 0
    below = [p for _r, p, score in rows if score < get_settings().alerts.health_score_below]
    assert below and sorted(ppos) == sorted(("health.degraded", p) for p in below)  # each crossing announced once


def test_overlapping_health_and_operations_runs_take_turns_and_alert_once(
    store: Engine, ppos: list[tuple[str, str]]
) -> None:
    from framework2.flows.portfolio import run_exclusive

    settings = get_settings()
    steps = [("health", False), ("operations", True)]  # the 15-minute health run and PSO's hourly run, same minute
    results = together(2, lambda i: run_exclusive(store, settings, steps[i][0], allocation=steps[i][1]))

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert [r.status for r in results] == ["completed", "completed"]  # the second waited for the lock, then ran
    with session_scope(store) as session:
        runs = {r.id: r for r in session.scalars(select(AnalysisRun).where(AnalysisRun.system == "ppos")).all()}
        points = session.execute(select(PpHealth.run_id, PpHealth.project, PpHealth.created_at)).all()
    first, second = sorted(runs.values(), key=lambda r: r.finished_at)
    # One after the other: the second scored after the first had stored, so each moment has one point per project.
    assert all(at >= first.finished_at for run_id, _p, at in points if run_id == second.id)
    for run in (first, second):
        assert sorted(p for run_id, p, _at in points if run_id == run.id) == sorted(
            [*run.outcome["projects"], "portfolio"]
        )
    assert second.outcome["events"] == []  # the crossings were the first run's to announce
    assert len(ppos) == len(set(ppos)) and ppos, "each crossing announced once"
    operations = next(r for r in results if "allocation" in r.metrics)
    assert count(store, PpAllocation) == count(store, PpAllocation, PpAllocation.run_id == operations.run_id) > 0


def test_a_ppos_run_that_fails_before_its_commit_stores_nothing(
    store: Engine, ppos: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.portfolio as portfolio
    from framework2.flows import lifecycle

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("disk full")  # after the health rows were added to the transaction

    monkeypatch.setattr(lifecycle, "acquire", acquire)  # one run: nothing to line up
    monkeypatch.setattr(portfolio, "add_risk", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        portfolio.run_exclusive(store, get_settings(), "health", allocation=False)

    [run] = _runs(store, "ppos")
    assert run.status == "failed" and "disk full" in run.error
    assert count(store, PpHealth) == count(store, PpRisk) == 0  # not half a run
    assert ppos == []  # nothing announced for a run that stored nothing
    assert current_holder(store, "ppos") is None


def _runs(engine: Engine, system: str) -> list[AnalysisRun]:
    with session_scope(engine) as session:
        return list(session.scalars(select(AnalysisRun).where(AnalysisRun.system == system)).all())


# --- PSO: two roll-ups of system health at once --------------------------------------------------------------------


def test_two_pso_roll_ups_at_once_store_in_turn_and_announce_a_crossing_once(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.orchestrator as orchestrator
    from framework2.tasks.orchestration import SystemOutcome

    for _ in range(3):  # PPIS keeps failing: its health is far below the threshold
        finish_run(store, start_run(store, "ppis"), status="failed", error="feed down")
    outcomes = [SystemOutcome(system="ppis", status="failed", flow_run_id=str(uuid.uuid4()), error="feed down")]
    monkeypatch.setattr(orchestrator, "held", lined_up(orchestrator.held, threading.Barrier(2)))
    settings = get_settings()

    results = together(
        2,
        lambda i: orchestrator.roll_up_health(
            store, settings, outcomes, f"pso-run-{i}", score=orchestrator.score_system.fn
        ),
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(crossed.get("ppis", "") for _scores, crossed in results) == ["", "health.degraded"]
    with session_scope(store) as session:
        rows = session.scalars(select(SystemHealth).order_by(SystemHealth.measured_at)).all()
    assert [r.system for r in rows] == ["ppis", "ppis"]  # one point per roll-up, stored one after the other
    assert {r.orchestration_run_id for r in rows} == {"pso-run-0", "pso-run-1"}
    assert current_holder(store, "pso-health") is None


# --- the schema -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_a_filled_store_to_the_lock_table_keeps_every_row(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from sqlalchemy import inspect

    from framework2.store.migrate import current_revision, head_revision, upgrade
    from framework2.store.portfolio import save_health
    from framework2.store.runs import save_health as save_system_health
    from framework2.tasks.health import score_health as score_system_health
    from framework2.tasks.portfolio.health import HealthScore

    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine, "0008_webhooks")  # the schema before the locks
    run_id = start_run(engine, "ppos")
    save_health(engine, run_id, [HealthScore(project="shop", score=80.0, components=[])], utcnow())
    finish_run(engine, run_id, status="completed")
    weights = get_settings().coordination.health_weights
    system_score = score_system_health("ppos", [], now=utcnow(), expected_interval=timedelta(hours=1), weights=weights)
    save_system_health(engine, system_score)

    upgrade(engine)

    assert current_revision(engine) == head_revision() and "run_lock" in inspect(engine).get_table_names()
    assert run_status(engine, run_id) == "completed"
    assert count(engine, PpHealth) == count(engine, SystemHealth) == 1
    assert isinstance(acquire(engine, "ppos", holder="after-upgrade", ttl=timedelta(minutes=1)), Lease)
