"""What every system flow needs from the run it is in."""

from __future__ import annotations

from prefect.context import get_run_context
from prefect.exceptions import MissingContextError

from framework2.links import flow_run_link

__all__ = ["current_flow_run_id", "flow_run_link", "paused_for_input"]


def current_flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in (None when called outside one, e.g. from a test)."""
    try:
        context = get_run_context()
    except MissingContextError:  # get_run_context raises outside a run rather than returning None
        return None
    return str(context.flow_run.id) if getattr(context, "flow_run", None) else None


async def paused_for_input(flow_name: str, timeout: float = 60, poll: float = 0.5) -> str:
    """The id of the newest run of ``flow_name`` that is paused with its input form saved, so it can be resumed.

    Prefect moves a run to Paused before it saves the form's schema: a resume that only waited for the state
    could arrive in between and be refused. Filtered by flow, because other flows may be paused too."""
    import asyncio
    import time

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout
    async with get_client() as client:
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Paused"]))),
                sort=FlowRunSort.START_TIME_DESC,
            )
            for run in runs:
                keyset = (run.state.state_details.run_input_keyset or {}) if run.state else {}
                if "schema" not in keyset:
                    continue
                try:
                    await client.read_flow_run_input(run.id, keyset["schema"])
                except httpx.HTTPStatusError as error:
                    if error.response.status_code == 404:  # the form is saved just after the state
                        continue
                    raise
                return str(run.id)
            await asyncio.sleep(poll)
        recent = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), sort=FlowRunSort.START_TIME_DESC, limit=5
        )
    seen = ", ".join(f"{r.name} {r.state.name if r.state else '?'}" for r in recent) or "no runs at all"
    raise TimeoutError(f"no {flow_name} run paused for input with its form saved within {timeout:.0f} s ({seen})")
