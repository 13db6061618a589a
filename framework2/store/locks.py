"""Leases in the store: one holder at a time per name, across threads, processes and machines, on SQLite and
PostgreSQL alike.

A lease is a ``run_lock`` row keyed by its name. Taking it is one atomic step the database arbitrates: an
INSERT on the primary key (of two at once exactly one succeeds, the other gets a unique-key conflict), or —
when the row is stale — a compare-and-swap UPDATE on the old holder (of two takeovers exactly one matches).
Nothing relies on the isolation level or on clocks agreeing about who came first, which is what made the
old "look for an earlier run in progress" check racy.

A lease is stale when it has expired (its holder crashed without releasing it), when its holder is an
analysis run that has ended (completed, failed, skipped: recorded by the run itself or by PSO), or — when the
caller can ask Prefect (``holder_ended``) — when the holder's flow run has ended (Crashed after its worker
died), so a crashed run blocks at most until its expiry, or not at all once Prefect knows, and a finished one
not at all. The holder releases it in a
``finally``. Before committing results, the holder calls ``Lease.verify`` inside the results' transaction:
a run that outlived its lease and lost it to another run stores nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from framework2.store.engine import session_scope
from framework2.store.models import AnalysisRun, RunLock, utcnow
from framework2.store.runs import as_utc

log = logging.getLogger(__name__)

# The row can change between a failed insert and the read that follows (released, taken over); each round is
# one atomic attempt, and a few rounds settle any realistic interleaving.
_ROUNDS = 5


def _hhmm(value: datetime | None) -> str:
    return as_utc(value).strftime("%H:%M UTC") if value else "?"


class LockHeld(Exception):  # noqa: N818 (a normal outcome the caller reports, not an error)
    """Another holder has the lease (and it is not stale)."""

    def __init__(self, name: str, holder: str, label: str, acquired_at: datetime, expires_at: datetime) -> None:
        self.name, self.holder, self.label = name, holder, label or holder
        self.acquired_at, self.expires_at = as_utc(acquired_at), as_utc(expires_at)
        super().__init__(
            f"{self.label} holds the {name} lock (since {_hhmm(self.acquired_at)}, until {_hhmm(self.expires_at)})"
        )


class LockLost(RuntimeError):
    """The lease passed to another holder before the results were committed (this run outlived its lease)."""


@dataclass
class Lease:
    """A lease held by ``holder`` until ``expires_at`` or ``release``."""

    engine: Engine
    name: str
    holder: str
    expires_at: datetime

    def verify(self, session: Any) -> None:
        """Raise ``LockLost`` unless this lease is still ours; call it inside the transaction that stores results.

        It is a write (an UPDATE that matches our row), so from here to the commit the row stays ours: on
        PostgreSQL a takeover waits for our row lock, on SQLite for the database write lock.
        """
        matched = session.execute(
            update(RunLock).where(RunLock.name == self.name, RunLock.holder == self.holder).values(holder=self.holder)
        ).rowcount
        if matched != 1:
            now = session.get(RunLock, self.name)
            who = f"{now.label or now.holder}" if now is not None else "nobody (it was released)"
            raise LockLost(
                f"the {self.name} lock passed to {who} after this run's lease expired at {_hhmm(self.expires_at)}; "
                "nothing of this run was stored"
            )

    def release(self) -> bool:
        """Give the lease up (only if still ours); best effort, since it expires anyway. True if released."""
        try:
            with session_scope(self.engine) as session:
                session.execute(delete(RunLock).where(RunLock.name == self.name, RunLock.holder == self.holder))
        except SQLAlchemyError as exc:
            log.warning("could not release the %s lock (it expires at %s): %s", self.name, _hhmm(self.expires_at), exc)
            return False
        return True


def current_holder(engine: Engine, name: str) -> RunLock | None:
    """The lease row of ``name`` as stored (expired or not), or None."""
    with session_scope(engine) as session:
        return session.get(RunLock, name)


# Asked for the final state of a holder run's Prefect flow run (None: still running, or cannot tell).
HolderEnded = Callable[[str | None], str | None]


def _stale(engine: Engine, lock: RunLock, now: datetime, holder_ended: HolderEnded | None = None) -> str | None:
    """Why ``lock`` may be taken over (expired, its holder run has ended, or the holder's Prefect flow run has
    ended without the run saying so), or None if it is live."""
    if as_utc(lock.expires_at) <= now:  # type: ignore[operator]
        return f"it expired at {_hhmm(lock.expires_at)}"
    with session_scope(engine) as session:
        row = session.execute(
            select(AnalysisRun.status, AnalysisRun.flow_run_id).where(AnalysisRun.id == lock.holder)
        ).first()
    if row is None:
        return None
    status, flow_run_id = row
    if status != "running":
        return f"its holder's run is {status}"
    if holder_ended is not None and flow_run_id:
        state = holder_ended(flow_run_id)
        if state is not None:
            # The worker died before the run could record its end (Prefect marks such a run Crashed): say so on
            # the record, which would otherwise show "running" for ever.
            with session_scope(engine) as session:
                session.execute(
                    update(AnalysisRun)
                    .where(AnalysisRun.id == lock.holder, AnalysisRun.status == "running")
                    .values(
                        status="failed",
                        finished_at=now,
                        error=f"its Prefect flow run ended {state} before the run recorded its end",
                    )
                )
            return f"its holder's flow run is {state}"
    return None


def try_acquire(
    engine: Engine,
    name: str,
    *,
    holder: str,
    ttl: timedelta,
    label: str = "",
    holder_ended: HolderEnded | None = None,
) -> Lease | RunLock:
    """One attempt to take ``name`` for ``holder`` for ``ttl``: the ``Lease``, or the live lease in the way."""
    current: RunLock | None = None
    for _ in range(_ROUNDS):
        now = utcnow()
        values = {"holder": holder, "label": label[:200], "acquired_at": now, "expires_at": now + ttl}
        try:
            with session_scope(engine) as session:
                session.execute(insert(RunLock).values(name=name, **values))
            return Lease(engine, name, holder, now + ttl)
        except IntegrityError:
            pass  # someone holds it (or held it): look at the row
        current = current_holder(engine, name)
        if current is None:
            continue  # released in between: insert again
        why = "renewed by its holder" if current.holder == holder else _stale(engine, current, now, holder_ended)
        if why is None:
            return current
        # Compare-and-swap on the holder we saw: of two runs taking over the same stale lease, one matches.
        with session_scope(engine) as session:
            taken = session.execute(
                update(RunLock).where(RunLock.name == name, RunLock.holder == current.holder).values(**values)
            ).rowcount
        if taken == 1:
            if current.holder != holder:
                log.warning("took over the %s lock from %s: %s", name, current.label or current.holder, why)
            return Lease(engine, name, holder, now + ttl)
    assert current is not None  # _ROUNDS rounds each found a row or inserted one
    return current


def acquire(
    engine: Engine,
    name: str,
    *,
    holder: str,
    ttl: timedelta,
    label: str = "",
    wait: timedelta = timedelta(0),
    poll: float = 0.25,
    holder_ended: HolderEnded | None = None,
) -> Lease:
    """Take the lease ``name`` for ``holder``, waiting up to ``wait`` for a live holder to finish.

    ``holder_ended`` (the holder's flow run id → its final Prefect state, or None) frees a lease whose holder's
    worker died at once instead of at its expiry. Raises ``LockHeld`` (naming the holder) when it is still held
    after ``wait``.
    """
    deadline = time.monotonic() + wait.total_seconds()
    while True:
        got = try_acquire(engine, name, holder=holder, ttl=ttl, label=label, holder_ended=holder_ended)
        if isinstance(got, Lease):
            return got
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LockHeld(name, got.holder, got.label, got.acquired_at, got.expires_at)
        time.sleep(min(poll, remaining))


@contextmanager
def held(
    engine: Engine,
    name: str,
    *,
    holder: str,
    ttl: timedelta,
    label: str = "",
    wait: timedelta = timedelta(0),
) -> Iterator[Lease]:
    """``acquire`` for the block, released when it ends however it ends."""
    lease = acquire(engine, name, holder=holder, ttl=ttl, label=label, wait=wait)
    try:
        yield lease
    finally:
        lease.release()
