"""Where a person opens things in the Prefect UI: one rule for the CLI, the dashboard and the messages."""

from __future__ import annotations

DEFAULT_API = "http://127.0.0.1:4200/api"


def ui_url() -> str:
    """The Prefect UI URL (``PREFECT_UI_URL``, else the configured API's host, else the local default)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    configured = PREFECT_UI_URL.value()
    if configured:
        return str(configured).rstrip("/")
    return str(PREFECT_API_URL.value() or DEFAULT_API).removesuffix("/api").rstrip("/")


def flow_run_link(flow_run_id: str | None) -> str | None:
    """The UI page of one flow run, or None without a run."""
    if flow_run_id is None:
        return None
    return f"{ui_url()}/runs/flow-run/{flow_run_id}"
