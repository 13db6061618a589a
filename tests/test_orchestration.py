"""PSO ordering: dependencies first, independent systems concurrently, failures contained."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from framework2.errors import ConfigError
from framework2.systems import SYSTEMS, SystemSpec, get_system
from framework2.tasks.orchestration import SystemOutcome, run_in_dependency_order, select_systems


def spec(code: str, *deps: str) -> SystemSpec:
    return SystemSpec(
        code=code,
        title=code,
        flow="x:y",
        deployment=f"{code}/{code}",
        expected_interval=lambda _s: timedelta(hours=1),
        depends_on=deps,
    )


def test_dependencies_run_first_and_independent_systems_overlap() -> None:
    specs = [spec("ppms"), spec("ppos", "ppms"), spec("ppis"), spec("pces", "ppms")]
    events: list[tuple[str, str]] = []
    running: set[str] = set()
    overlaps: list[set[str]] = []

    async def run_one(s: SystemSpec, upstream_failed: list[str]) -> SystemOutcome:
        events.append(("start", s.code))
        running.add(s.code)
        overlaps.append(set(running))
        await asyncio.sleep(0.05)
        running.discard(s.code)
        events.append(("end", s.code))
        return SystemOutcome(system=s.code, status="completed")

    outcomes = asyncio.run(run_in_dependency_order(specs, run_one))
    assert [o.system for o in outcomes] == ["ppms", "ppos", "ppis", "pces"]
    assert events.index(("end", "ppms")) < events.index(("start", "ppos"))
    assert events.index(("end", "ppms")) < events.index(("start", "pces"))
    assert any({"ppms", "ppis"} <= group for group in overlaps), "independent systems should run concurrently"
    assert any({"ppos", "pces"} <= group for group in overlaps)


def test_a_crashing_system_is_contained_and_dependents_are_told() -> None:
    specs = [spec("ppms"), spec("ppos", "ppms"), spec("ppis")]

    async def run_one(s: SystemSpec, upstream_failed: list[str]) -> SystemOutcome:
        if s.code == "ppms":
            raise RuntimeError("database on fire")
        return SystemOutcome(system=s.code, status="completed")

    outcomes = {o.system: o for o in asyncio.run(run_in_dependency_order(specs, run_one))}
    assert outcomes["ppms"].status == "failed"
    assert outcomes["ppms"].error == "RuntimeError: database on fire"
    assert outcomes["ppos"].status == "completed" and outcomes["ppos"].upstream_failed == ["ppms"]
    assert outcomes["ppis"].status == "completed" and outcomes["ppis"].upstream_failed == []


def test_parallelism_is_bounded() -> None:
    specs = [spec(f"s{i}") for i in range(6)]
    peak = 0
    running = 0

    async def run_one(s: SystemSpec, upstream_failed: list[str]) -> SystemOutcome:
        nonlocal peak, running
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return SystemOutcome(system=s.code, status="completed")

    asyncio.run(run_in_dependency_order(specs, run_one, max_parallel=2))
    assert peak == 2


def test_dependency_cycle_is_reported_with_its_members() -> None:
    with pytest.raises(ConfigError, match="cycle"):
        asyncio.run(run_in_dependency_order([spec("a", "b"), spec("b", "a")], None))  # type: ignore[arg-type]


def test_unknown_system_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError) as err:
        select_systems(["ppis", "nope"])
    assert "nope" in err.value.message and "ppis" in err.value.hint
    with pytest.raises(ConfigError):
        get_system("nope")


def test_every_registered_system_has_a_loadable_flow_named_for_its_deployment() -> None:
    for code, s in SYSTEMS.items():
        flow = s.load_flow()
        assert flow.name == s.flow_name
        assert flow.name.startswith(code)
