"""Where a heavy computation runs: in the flow's own process, or split into partitions over a Dask cluster.

The heavy flows (PPIS pricing over many SKUs, PPMS Monte Carlo forecasts, PUXT experiment analysis) cut
their work into independent partitions: categories of SKUs (elasticities are pooled within a category),
projects, experiments. Each partition is one Prefect task. In process, the partitions run one after the
other in the flow run, exactly as before; on Dask they run in a sub-flow whose task runner is prefect-dask's
``DaskTaskRunner`` connected to the given scheduler, so the Prefect UI shows where each partition ran.

Partitions never touch the store, Prefect artifacts or events: they take plain data and return plain data,
so a Dask worker needs framework2 installed and the Prefect API URL, nothing else, and the results do not
depend on how the work was split.
"""

from __future__ import annotations

import heapq
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, ValidationError, field_validator

from framework2.config import ScaleSettings
from framework2.errors import Framework2Error

Runner = Literal["in-process", "dask"]
MAX_PARTITIONS = 1024
CONNECT_TIMEOUT = 5.0  # seconds to reach the scheduler before the run is refused
DASK_HINT = 'start one with `dask scheduler` and `dask worker <address>`, or set runner = "in-process"'


class ScaleOut(BaseModel):
    """Where a heavy flow's partitions run; unset fields come from framework2.toml ``[scale]``."""

    runner: Runner | None = Field(
        None, description="in-process (default): in the flow run's process; dask: on the Dask cluster at dask_address."
    )
    dask_address: str | None = Field(
        None, description="Scheduler of the Dask cluster, e.g. tcp://dask-scheduler:8786 (runner dask only)."
    )
    partitions: int | None = Field(
        None,
        ge=0,
        le=MAX_PARTITIONS,
        description="How many pieces to cut the work into; 0 or unset: 1 in process, twice the Dask threads.",
    )

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if not value:
            return None
        parsed = urlparse(value if "://" in value else f"tcp://{value}")
        if parsed.scheme not in ("tcp", "tls") or not parsed.hostname or not parsed.port:
            raise ValueError(f"dask_address {value!r} must look like tcp://host:8786 (a Dask scheduler)")
        return f"{parsed.scheme}://{parsed.hostname}:{parsed.port}"


def resolve_scale(requested: ScaleOut | None, configured: ScaleSettings) -> ScaleOut:
    """The run's choice over framework2.toml ``[scale]``, field by field; checked for consistency."""
    fields = configured.model_dump() | (requested.model_dump(exclude_none=True) if requested else {})
    try:
        chosen = ScaleOut.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise Framework2Error(f"[scale] is invalid: {problems}", "fix [scale] in framework2.toml") from exc
    if chosen.runner == "dask" and not chosen.dask_address:
        raise Framework2Error(
            "runner 'dask' needs a scheduler address",
            'set [scale] daskAddress = "tcp://host:8786" or pass scale.dask_address with the run',
        )
    return chosen


def balanced_partitions(weights: Mapping[str, float], count: int) -> list[list[str]]:
    """Split keys into at most ``count`` groups of similar total weight (largest first, each to the lightest).

    Deterministic for the same weights; keys keep their original order inside a group, and empty groups are
    dropped.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    order = {key: i for i, key in enumerate(weights)}
    heap = [(0.0, i) for i in range(min(count, len(weights)))]
    groups: list[list[str]] = [[] for _ in heap]
    for key in sorted(weights, key=lambda k: (-weights[k], order[k])):
        load, i = heapq.heappop(heap)
        groups[i].append(key)
        heapq.heappush(heap, (load + max(float(weights[key]), 0.0), i))
    return [sorted(group, key=order.__getitem__) for group in groups if group]


def _check_scheduler(address: str) -> None:
    parsed = urlparse(address)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise Framework2Error(f"the Dask scheduler at {address} is unreachable ({exc})", DASK_HINT) from exc


def dask_threads(address: str) -> int:
    """Total worker threads of the Dask cluster at ``address`` (0 when it has no workers yet)."""
    from distributed import Client

    _check_scheduler(address)
    with Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False) as client:
        return int(sum(client.nthreads().values()))


def partition_count(scale: ScaleOut, units: int) -> int:
    """How many partitions to cut ``units`` pieces of independent work into for this runner."""
    if units <= 1:
        return 1
    if scale.partitions:
        return min(scale.partitions, units)
    if scale.runner != "dask":
        return 1
    threads = dask_threads(scale.dask_address or "")
    if threads == 0:
        raise Framework2Error(f"the Dask cluster at {scale.dask_address} has no workers", DASK_HINT)
    return min(2 * threads, units, MAX_PARTITIONS)


def run_partitions(name: str, task: Any, inputs: Sequence[dict[str, Any]], scale: ScaleOut) -> list[Any]:
    """Run the Prefect ``task`` once per keyword set in ``inputs``; results in the order of ``inputs``.

    In process the task runs inline; on Dask a sub-flow named ``name`` submits every partition to the
    cluster and waits for all of them (a failed partition fails the sub-flow and the caller).
    """
    if scale.runner != "dask":
        return [task(**kwargs) for kwargs in inputs]
    address = scale.dask_address or ""
    _check_scheduler(address)
    return _run_on_dask(name, task, inputs, address)


def _run_on_dask(name: str, task: Any, inputs: Sequence[dict[str, Any]], address: str) -> list[Any]:
    from prefect import flow
    from prefect_dask import DaskTaskRunner  # imported here: distributed is slow to import and rarely needed

    # The inputs stay in the closure: as flow parameters Prefect would send whole DataFrames to its API. The two
    # parameters are there for the UI: how many partitions, and on which cluster.
    def fan_out(partitions: int, dask_address: str) -> list[Any]:
        futures = [task.submit(**kwargs) for kwargs in inputs]
        return [future.result() for future in futures]

    sub = flow(
        fan_out,
        name=name,
        description=f"{name}: the partitions of one computation on a Dask cluster",
        task_runner=DaskTaskRunner(address=address),
        validate_parameters=False,
    )
    return sub(len(inputs), address)
