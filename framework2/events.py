"""Prefect events named ``framework2.<system>.<event>`` about the resource ``framework2.system.<system>``.

Automations and deployment triggers match on these names (see ``deployments/automations.py``).
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event

from framework2.store.runs import jsonable


def system_resource(system: str) -> dict[str, str]:
    """The Prefect resource that stands for one system."""
    return {"prefect.resource.id": f"framework2.system.{system}", "prefect.resource.name": system.upper()}


def event_name(system: str, event: str) -> str:
    return f"framework2.{system}.{event}"


def emit(system: str, event: str, payload: dict[str, Any] | None = None) -> None:
    """Emit ``framework2.<system>.<event>`` with a JSON-safe payload (no secrets belong here)."""
    emit_event(event=event_name(system, event), resource=system_resource(system), payload=jsonable(payload or {}))
