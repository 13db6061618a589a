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
