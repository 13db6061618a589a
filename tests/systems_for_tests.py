"""A system that always fails, registered into PSO by tests to prove failures are contained."""

from __future__ import annotations

from prefect import flow


@flow(name="broken-system")
def broken_flow() -> None:
    raise RuntimeError("the broken system's data source is gone")
