"""One run lifecycle for every system flow, so a flow body reads as its pipeline and a new system cannot get the
bookkeeping wrong.

``run_recorded`` records the analysis run (linked to its Prefect flow run), takes the system's store lease when
it needs one (or records the run as skipped, naming the holder), runs the body, and ends the record exactly once:

- completed with the body's outcome — or, when the body already ended it inside its results' transaction
  (``SystemRun.complete_in``), left as the body wrote it, so results and "completed" commit together;
- failed with the error's type and message when the body raises (then re-raised, so Prefect fails too);
- the lease given back as soon as the body ends, however it ends.

A lease whose holder's Prefect flow run has ended (a worker killed mid-run: Prefect marks the run Crashed) is
taken over at once rather than when it expires, and the holder's record is marked failed with that state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from framework2.flows.common import current_flow_run_id
from framework2.store.engine import open_store, store_unreachable
from framework2.store.locks import Lease, LockHeld, acquire
from framework2.store.runs import finish_in, finish_run, jsonable, run_status, start_run

log = logging.getLogger("framework2.runs")


@dataclass(frozen=True)
class Exclusive:
    """The store lease a system's runs take so only one runs at a time, across workers.

    ``ttl`` bounds how long a holder that vanished without Prefect noticing blocks the next runs; ``wait`` is how
    long a run waits for the holder before it records itself as skipped."""

    name: str
    ttl: timedelta
    label: str
    wait: timedelta = timedelta(0)
    called: str = ""  # what people call the lock in messages ("the pricing lock"); default its name


@dataclass(frozen=True)
class Finish:
    """How a body ended when it is not simply "completed with this outcome"."""

    outcome: Mapping[str, Any]
    status: str = "completed"
    value: Any = None  # what the flow hands back, when it is not the stored outcome


@dataclass
class SystemRun:
    """The run a body works in: its record's id, its store, its lease, and what it has learnt about its inputs
    (stored with the record however the run ends)."""

    engine: Engine
    system: str
    id: str
    flow_run_id: str | None
    lease: Lease | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    lock_called: str = ""

    def complete_in(self, session: Any, outcome: Mapping[str, Any], *, status: str = "completed") -> None:
        """End the record inside the caller's transaction (the one that stores the results)."""
        finish_in(session, self.id, status=status, inputs=self.inputs, outcome=outcome)


@dataclass
class RunEnd:
    """How a recorded run ended, and what its body returned (None when skipped)."""

    run_id: str
    status: str
    outcome: dict[str, Any]
    value: Any = None
    held_by: LockHeld | None = None

    @property
    def summary(self) -> str:
        return str(self.outcome.get("summary", ""))


def flow_run_final_state(flow_run_id: str | None) -> str | None:
    """The name of the final state Prefect holds for ``flow_run_id`` (Completed, Failed, Crashed, Cancelled), None
    while it runs or when Prefect cannot tell (no id, no server, unknown run)."""
    from prefect.client.orchestration import get_client

    if not flow_run_id:
        return None
    try:
        run = UUID(flow_run_id)
        with get_client(sync_client=True) as prefect:
            state = prefect.read_flow_run(run).state
    except Exception:  # noqa: BLE001 (cannot tell is an answer: the lease then waits for its expiry)
        return None
    return state.name if state is not None and state.is_final() else None


def skipped_summary(held: LockHeld, wait: timedelta) -> str:
    waited = f" after waiting {wait.total_seconds():g} s" if wait > timedelta(0) else ""
    return (
        f"skipped: {held.label} (started {held.acquired_at:%H:%M} UTC) is still in progress{waited}; "
        f"it holds the {held.name} lock until {held.expires_at:%H:%M} UTC"
    )


def run_recorded(
    system: str,
    body: Callable[[SystemRun], Any],
    *,
    parameters: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    model_version: str = "",
    exclusive: Exclusive | None = None,
    logger: Any = None,
) -> RunEnd:
    """Run ``body`` as one recorded run of ``system`` (see the module docstring).

    The body returns its outcome (a mapping: completed with it), a ``Finish`` (another status, or a value to hand
    back apart from the outcome), or anything else (completed; use ``complete_in`` to store an outcome). What it
    returned comes back in ``RunEnd.value``."""
    engine = engine or open_store()
    logger = logger or log
    flow_run_id = current_flow_run_id()
    run = SystemRun(
        engine,
        system,
        start_run(
            engine,
            system,
            parameters=jsonable(dict(parameters or {})),
            flow_run_id=flow_run_id,
            model_version=model_version,
        ),
        flow_run_id,
    )
    if exclusive is not None:
        run.lock_called = exclusive.called or exclusive.name
        try:
            run.lease = acquire(
                engine,
                exclusive.name,
                holder=run.id,
                ttl=exclusive.ttl,
                label=f"{exclusive.label} {run.id}",
                wait=exclusive.wait,
                holder_ended=flow_run_final_state,
            )
        except LockHeld as held:
            outcome = {"summary": skipped_summary(held, exclusive.wait), "lock_holder": held.holder}
            finish_run(engine, run.id, status="skipped", outcome=outcome)
            logger.warning(outcome["summary"])
            return RunEnd(run.id, "skipped", outcome, held_by=held)
    try:
        value = body(run)
    except BaseException as exc:
        _record_failure(run, exc, logger)
        raise
    finally:
        if run.lease is not None:
            run.lease.release()  # logs, never raises, when the store is down: the lease then runs out on its own
    finish = value if isinstance(value, Finish) else Finish(value if isinstance(value, Mapping) else {}, value=value)
    if run_status(engine, run.id) == "running":
        finish_run(engine, run.id, status=finish.status, inputs=run.inputs, outcome=jsonable(dict(finish.outcome)))
        return RunEnd(run.id, finish.status, jsonable(dict(finish.outcome)), finish.value)
    stored = _stored_end(engine, run.id)
    return RunEnd(run.id, stored[0], stored[1], finish.value)


def _stored_end(engine: Engine, run_id: str) -> tuple[str, dict[str, Any]]:
    from framework2.store.engine import session_scope
    from framework2.store.models import AnalysisRun

    with session_scope(engine) as session:
        row = session.get(AnalysisRun, run_id)
        return (row.status, dict(row.outcome or {})) if row is not None else ("completed", {})


def _record_failure(run: SystemRun, exc: BaseException, logger: Any) -> None:
    try:
        if run_status(run.engine, run.id) == "running":
            error = f"{type(exc).__name__}: {exc}"[:2000]
            finish_run(run.engine, run.id, status="failed", inputs=run.inputs, error=error)
    except SQLAlchemyError as store_down:  # the run's own error is the one to report, not this one
        held = f", and holds the {run.lock_called} lock until {run.lease.expires_at:%H:%M} UTC" if run.lease else ""
        logger.error(
            "could not mark run %s failed (%s); it shows as running%s",
            run.id,
            store_unreachable(run.engine, store_down).message,
            held,
        )
