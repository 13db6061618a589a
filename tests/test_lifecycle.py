"""The one run lifecycle every system flow uses: recorded, leased, skipped, failed, completed, freed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from framework2.flows import lifecycle
from framework2.flows.lifecycle import Exclusive, Finish, SystemRun, run_recorded
from framework2.store.engine import open_store, session_scope
from framework2.store.locks import current_holder
from framework2.store.models import AnalysisRun, RunLock
from framework2.store.runs import run_status, start_run

LONG = Exclusive("ppis", ttl=timedelta(hours=1), label="pricing run")


@pytest.fixture
def engine(store_url: str) -> Engine:
    return open_store()


def _record(engine: Engine, run_id: str) -> AnalysisRun:
    with session_scope(engine) as session:
        run = session.get(AnalysisRun, run_id)
        assert run is not None
        session.expunge(run)
        return run


def test_a_body_that_returns_its_outcome_is_recorded_completed_with_it(engine: Engine) -> None:
    end = run_recorded("ppms", lambda run: {"ranked": 3}, parameters={"step": "prioritise"}, engine=engine)

    stored = _record(engine, end.run_id)
    assert (end.status, stored.status, stored.outcome) == ("completed", "completed", {"ranked": 3})
    assert stored.parameters == {"step": "prioritise"} and stored.finished_at is not None
    assert end.value == {"ranked": 3}


def test_a_finish_sets_the_status_and_hands_back_a_value_apart_from_the_outcome(engine: Engine) -> None:
    end = run_recorded("pces", lambda run: Finish({"failed": ["src"]}, status="failed", value=42), engine=engine)

    assert (end.status, end.value, _record(engine, end.run_id).status) == ("failed", 42, "failed")


def test_a_body_that_raises_is_recorded_failed_with_the_error_and_what_it_knew_of_its_inputs(engine: Engine) -> None:
    seen: list[str] = []

    def body(run: SystemRun) -> None:
        seen.append(run.id)
        run.inputs["skus"] = 12
        raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        run_recorded("ppos", body, engine=engine)

    stored = _record(engine, seen[0])
    assert stored.status == "failed" and stored.error == "ZeroDivisionError: division by zero"
    assert stored.inputs == {"skus": 12}


def test_a_failed_run_whose_error_quotes_unstorable_text_is_still_recorded_failed(engine: Engine) -> None:
    seen: list[str] = []

    def body(run: SystemRun) -> None:
        seen.append(run.id)
        raise ValueError("feed said \ud800 and \x00")

    with pytest.raises(ValueError):
        run_recorded("ppis", body, engine=engine)
    stored = _record(engine, seen[0])
    assert stored.status == "failed" and stored.error is not None and "\\ud800" in stored.error


def test_results_and_completed_commit_together_when_the_body_ends_the_run_itself(engine: Engine) -> None:
    def body(run: SystemRun) -> str:
        with session_scope(run.engine) as session:
            run.complete_in(session, {"summary": "stored with the results"})
        return "value"

    end = run_recorded("ppos", body, engine=engine)

    assert (end.status, end.summary, end.value) == ("completed", "stored with the results", "value")
    assert _record(engine, end.run_id).outcome == {"summary": "stored with the results"}


def test_an_exclusive_run_holds_the_lease_while_it_works_and_frees_it_when_it_ends(engine: Engine) -> None:
    holders: list[str | None] = []

    def body(run: SystemRun) -> dict[str, int]:
        lock = current_holder(engine, "ppis")
        holders.append(lock.holder if lock else None)
        return {}

    end = run_recorded("ppis", body, engine=engine, exclusive=LONG)

    assert holders == [end.run_id] and current_holder(engine, "ppis") is None


def test_a_second_run_while_the_first_holds_the_lease_is_skipped_naming_the_holder(engine: Engine) -> None:
    inner: list = []

    def outer(run: SystemRun) -> dict[str, int]:
        inner.append(
            run_recorded("ppis", lambda _: pytest.fail("a skipped run must not work"), engine=engine, exclusive=LONG)
        )
        return {}

    first = run_recorded("ppis", outer, engine=engine, exclusive=LONG)

    [skipped] = inner
    assert skipped.status == "skipped" and skipped.value is None and skipped.held_by.holder == first.run_id
    assert f"pricing run {first.run_id}" in skipped.summary and "still in progress" in skipped.summary
    assert _record(engine, skipped.run_id).status == "skipped"


def test_the_lease_is_freed_when_the_body_fails(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        run_recorded("ppis", lambda run: (_ for _ in ()).throw(RuntimeError("boom")), engine=engine, exclusive=LONG)
    assert current_holder(engine, "ppis") is None


def _crashed_holder(engine: Engine, flow_run_id: str) -> str:
    """A run that took the ppis lease for an hour and whose worker died: its record still says running."""
    from framework2.store.locks import acquire

    run_id = start_run(engine, "ppis", flow_run_id=flow_run_id)
    acquire(engine, "ppis", holder=run_id, ttl=timedelta(hours=1), label=f"pricing run {run_id}")
    return run_id


def test_a_lease_whose_holders_flow_run_crashed_is_taken_over_at_once_and_the_holder_marked_failed(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed = _crashed_holder(engine, "00000000-0000-0000-0000-00000000c0de")
    asked: list[str | None] = []
    monkeypatch.setattr(lifecycle, "flow_run_final_state", lambda fid: asked.append(fid) or "Crashed")

    end = run_recorded("ppis", lambda run: {"summary": "priced"}, engine=engine, exclusive=LONG)

    assert end.status == "completed" and asked == ["00000000-0000-0000-0000-00000000c0de"]
    holder = _record(engine, crashed)
    assert holder.status == "failed" and "ended Crashed" in (holder.error or "")


def test_a_lease_whose_holders_flow_run_prefect_cannot_see_waits_for_its_expiry(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed = _crashed_holder(engine, "00000000-0000-0000-0000-00000000c0de")
    monkeypatch.setattr(lifecycle, "flow_run_final_state", lambda fid: None)  # running, or Prefect unreachable

    end = run_recorded("ppis", lambda run: pytest.fail("must not run"), engine=engine, exclusive=LONG)

    assert end.status == "skipped" and run_status(engine, crashed) == "running"
    with session_scope(engine) as session:
        assert session.scalars(select(RunLock.holder)).one() == crashed


def test_flow_run_final_state_is_none_when_it_cannot_tell() -> None:
    assert lifecycle.flow_run_final_state(None) is None
    assert lifecycle.flow_run_final_state("not-a-uuid") is None
