"""What every system flow needs from the run it is in."""

from __future__ import annotations

from prefect.context import get_run_context
from prefect.exceptions import MissingContextError


def current_flow_run_id() -> str | None:
    """The id of the Prefect flow run this code runs in (None when called outside one, e.g. from a test)."""
    try:
        context = get_run_context()
    except MissingContextError:  # get_run_context raises outside a run rather than returning None
        return None
    return str(context.flow_run.id) if getattr(context, "flow_run", None) else None


def flow_run_link(flow_run_id: str | None) -> str | None:
    """Where a person opens this flow run in the Prefect UI (``PREFECT_UI_URL``, else the API's host)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    if flow_run_id is None:
        return None
    base = PREFECT_UI_URL.value() or str(PREFECT_API_URL.value() or "http://127.0.0.1:4200/api").removesuffix("/api")
    return f"{str(base).rstrip('/')}/runs/flow-run/{flow_run_id}"
