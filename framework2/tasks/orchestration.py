"""Running systems in dependency order, concurrently where independent, with failures contained.

Plain async code: PSO's flow passes in how one system is run (subflow or deployment), so the ordering and
containment are tested without a Prefect server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from graphlib import CycleError, TopologicalSorter
from typing import Any, Literal

from pydantic import BaseModel, Field

from framework2.errors import ConfigError
from framework2.systems import SYSTEMS, SystemSpec


class SystemOutcome(BaseModel):
    """How one system's run went, as PSO reports it."""

    system: str
    status: Literal["completed", "failed", "skipped"]
    flow_run_id: str | None = None
    run_id: str | None = None
    seconds: float = 0.0
    summary: str = ""
    quality: float | None = None
    error: str | None = None
    upstream_failed: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)


def select_systems(codes: Iterable[str] | None, registry: dict[str, SystemSpec] = SYSTEMS) -> list[SystemSpec]:
    """The specs to run: all, or the named ones; unknown names are a ConfigError listing the known ones."""
    if codes is None:
        return list(registry.values())
    wanted = [c.lower() for c in codes]
    unknown = sorted(set(wanted) - set(registry))
    if unknown:
        raise ConfigError(f"unknown system(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(registry))}")
    return [registry[c] for c in dict.fromkeys(wanted)]


def dependency_order(specs: list[SystemSpec]) -> TopologicalSorter[str]:
    """A prepared sorter over ``specs``; dependencies outside the selection are ignored (they ran elsewhere)."""
    selected = {s.code for s in specs}
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for spec in specs:
        sorter.add(spec.code, *[d for d in spec.depends_on if d in selected])
    try:
        sorter.prepare()
    except CycleError as exc:
        raise ConfigError(
            f"systems depend on each other in a cycle: {' -> '.join(exc.args[1])}",
            hint="fix depends_on in framework2/systems.py",
        ) from exc
    return sorter


async def run_in_dependency_order(
    specs: list[SystemSpec],
    run_one: Callable[[SystemSpec, list[str]], Awaitable[SystemOutcome]],
    *,
    max_parallel: int = 4,
) -> list[SystemOutcome]:
    """Run every spec once its dependencies finished; independent ones run concurrently.

    A failing system is reported and contained: its dependents still run and are told which upstream
    systems failed (they fall back to their last good data).
    """
    by_code = {s.code: s for s in specs}
    sorter = dependency_order(specs)
    limit = asyncio.Semaphore(max_parallel)
    outcomes: dict[str, SystemOutcome] = {}
    pending: dict[asyncio.Task[SystemOutcome], str] = {}

    async def guarded(spec: SystemSpec) -> SystemOutcome:
        upstream_failed = [d for d in spec.depends_on if d in outcomes and outcomes[d].status == "failed"]
        async with limit:
            started = time.perf_counter()
            try:
                outcome = await run_one(spec, upstream_failed)
            except Exception as exc:  # containment: one system's crash is its own outcome
                outcome = SystemOutcome(system=spec.code, status="failed", error=f"{type(exc).__name__}: {exc}")
            outcome.seconds = outcome.seconds or round(time.perf_counter() - started, 3)
            outcome.upstream_failed = upstream_failed
            return outcome

    while sorter.is_active():
        for code in sorter.get_ready():
            pending[asyncio.create_task(guarded(by_code[code]))] = code
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            code = pending.pop(task)
            outcomes[code] = task.result()
            sorter.done(code)
    return [outcomes[s.code] for s in specs]
