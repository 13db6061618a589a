"""The registry of systems PSO orchestrates. Adding a system is one ``SystemSpec`` entry here.

Each spec says where the system's flow lives (imported only when it runs), the deployment that runs it on
a worker, what it depends on, and how often it is expected to run (its freshness yardstick).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from framework2.config import Settings


class SystemResult(BaseModel):
    """What every system flow returns, and what PSO reads back from the store for deployed runs."""

    system: str
    run_id: str
    status: Literal["completed", "failed", "skipped"] = "completed"
    summary: str = Field(description="One or two sentences a person reads in the PSO roll-up.")
    quality: float = Field(1.0, ge=0, le=1, description="The system's own signal of how trustworthy this run is.")
    metrics: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class SystemSpec:
    """One operations system as PSO sees it."""

    code: str
    title: str
    flow: str  # "module:function", imported lazily so a broken system cannot break the others' import
    deployment: str  # "<flow name>/<deployment name>" as in prefect.yaml
    expected_interval: Callable[[Settings], timedelta]
    depends_on: tuple[str, ...] = ()
    # How long one run may legitimately take; a "running" run younger than this is in progress, not stuck.
    max_duration: Callable[[Settings], timedelta] = field(default=lambda _s: timedelta(hours=1))
    default_parameters: Callable[[Settings], dict[str, Any]] = field(default=lambda _s: {})

    @property
    def flow_name(self) -> str:
        return self.deployment.split("/", 1)[0]

    def run_limit(self, settings: Settings, parameters: dict[str, Any] | None = None) -> timedelta:
        """How long one run with ``parameters`` may legitimately take (also how long its lease lasts)."""
        limit = self.max_duration(settings)
        waited = (parameters or {}).get("approval_wait_seconds")
        if isinstance(waited, int | float):  # a run started with its own, longer approval wait
            limit = max(limit, timedelta(seconds=waited) + timedelta(minutes=15))
        return limit

    def in_progress(self, run: Any, settings: Settings, now: Any) -> bool:
        """Whether a stored ``running`` run is still legitimately going (not a crash left behind)."""
        if run.status != "running":
            return False
        return now - run.started_at < self.run_limit(settings, run.parameters)

    def load_flow(self) -> Any:
        """Import the system's flow object."""
        module, _, name = self.flow.partition(":")
        return getattr(importlib.import_module(module), name)


SYSTEMS: dict[str, SystemSpec] = {
    spec.code: spec
    for spec in [
        SystemSpec(
            code="ppis",
            title="Pricing intelligence",
            flow="framework2.flows.pricing:hourly_pricing",
            deployment="ppis-hourly-pricing/ppis-hourly-pricing",
            expected_interval=lambda s: s.ppis.market_analysis_interval,
            max_duration=lambda s: s.ppis.approval_wait + timedelta(minutes=15),
        ),
        SystemSpec(
            code="ppms",
            title="Project management",
            flow="framework2.flows.planning:project_management",
            deployment="ppms-project-management/ppms-project-management",
            expected_interval=lambda s: timedelta(days=1),
            max_duration=lambda s: timedelta(minutes=30),
        ),
        SystemSpec(
            code="ppos",
            title="Project operations",
            flow="framework2.flows.portfolio:project_operations",
            deployment="ppos-project-operations/ppos-project-operations",
            # Health alone runs every 15 minutes on its own deployment; the full run re-plans allocation hourly.
            expected_interval=lambda s: timedelta(hours=1),
            depends_on=("ppms",),
            max_duration=lambda s: timedelta(minutes=10),
        ),
        SystemSpec(
            code="pces",
            title="Context evolution",
            flow="framework2.flows.context:ingest",
            deployment="pces-ingest/pces-ingest",
            expected_interval=lambda s: timedelta(hours=1),
            depends_on=("ppms",),
            max_duration=lambda s: timedelta(minutes=20),
        ),
        SystemSpec(
            code="puxt",
            title="User experience",
            flow="framework2.flows.experience:user_experience",
            deployment="puxt-user-experience/puxt-user-experience",
            expected_interval=lambda s: timedelta(hours=1),
            max_duration=lambda s: timedelta(minutes=20),
        ),
        SystemSpec(
            code="plos",
            title="Launch operations",
            flow="framework2.flows.launch:launch_operations",
            deployment="plos-launch-operations/plos-launch-operations",
            expected_interval=lambda s: timedelta(minutes=15),
            max_duration=lambda s: timedelta(minutes=10),
        ),
    ]
}


def get_system(code: str) -> SystemSpec:
    """The spec for ``code``; a clear error lists the known systems otherwise."""
    from framework2.errors import ConfigError

    try:
        return SYSTEMS[code.lower()]
    except KeyError:
        raise ConfigError(f"unknown system {code!r}", hint=f"known systems: {', '.join(sorted(SYSTEMS))}") from None
