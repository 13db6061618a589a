"""PPMS Monte Carlo forecasts cut into partitions of projects, in process or on Dask.

Each project's forecast is independent of the others' (other projects' tasks are read for dependencies,
never forecast together), and each draws from its own streams seeded by the project (``forecast_seed``), so
a project gets the same dates in one piece, in partitions or on any Dask worker — and in PCES's change
impact, which forecasts a project with and without a change through ``project_forecast`` so that its
schedule delta is a difference of two forecasts PPMS itself publishes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from framework2.scale import ScaleOut, balanced_partitions, partition_count, run_partitions
from framework2.tasks.planning.flow import Dependence
from framework2.tasks.planning.forecast import project_forecast
from framework2.tasks.planning.montecarlo import Forecast
from framework2.tasks.planning.records import DependencyRecord, PersonRecord, ProjectRecord, TaskRecord
from framework2.tasks.planning.risk import RiskReport, risk_factors


class ProjectForecast(BaseModel):
    """One project's forecast, its milestones', the simulated finish days and the risk report."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    project: str
    overall: Forecast
    milestones: dict[str, Forecast]
    finish: np.ndarray | None
    risk: RiskReport


def run_seed(run_id: str) -> int:
    """A seed from the run id that is the same in every process (``hash()`` of a str is not)."""
    return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:4], "big")


@task(name="ppms-forecast-partition", cache_policy=NO_CACHE)
def forecast_partition(
    projects: Sequence[ProjectRecord],
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    *,
    now: datetime,
    trials: int,
    seed: int | None,
    min_history_items: int,
    dependence: dict[str, Dependence] | None = None,
) -> list[ProjectForecast]:
    """Duration model, Monte Carlo forecast and risk factors for each of ``projects`` (``seed`` None: each
    project's ``forecast_seed``); ``dependence`` per project
    from the latest calibration (estimated here for a project it lacks)."""
    out = []
    for project in projects:
        overall, milestones, finish, model = project_forecast(
            project.key,
            project.target_date,
            tasks,
            dependencies,
            people,
            now=now,
            trials=trials,
            min_history_items=min_history_items,
            dependence=(dependence or {}).get(project.key),
            seed=seed,
        )
        risk = risk_factors(project.key, tasks, dependencies, overall, model, now=now)
        out.append(
            ProjectForecast(project=project.key, overall=overall, milestones=milestones, finish=finish, risk=risk)
        )
    return out


def forecast_projects(
    projects: Sequence[ProjectRecord],
    tasks: Sequence[TaskRecord],
    dependencies: Sequence[DependencyRecord],
    people: Sequence[PersonRecord],
    scale: ScaleOut,
    *,
    now: datetime,
    trials: int,
    seed: int | None = None,
    min_history_items: int,
    dependence: dict[str, Dependence] | None = None,
) -> list[ProjectForecast]:
    """Forecast ``projects`` in ``scale``'s partitions (balanced by open tasks); results in project order."""
    open_tasks = {p.key: 1.0 for p in projects}
    for t in tasks:
        if t.project in open_tasks and t.status != "done":
            open_tasks[t.project] += 1
    groups = balanced_partitions(open_tasks, partition_count(scale, len(projects))) if projects else []
    by_key = {p.key: p for p in projects}
    common = {
        "tasks": tasks,
        "dependencies": dependencies,
        "people": people,
        "now": now,
        "trials": trials,
        "seed": seed,
        "min_history_items": min_history_items,
        "dependence": dependence or {},
    }
    inputs = [{"projects": [by_key[k] for k in group], **common} for group in groups]
    results = {
        f.project: f
        for part in run_partitions("ppms-forecast-partitions", forecast_partition, inputs, scale)
        for f in part
    }
    return [results[p.key] for p in projects]
