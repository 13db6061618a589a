"""Prefect events named ``framework2.<system>.<event>`` about the resource ``framework2.system.<system>``,
or — for events about one project (PPOS project health) — about ``framework2.project.<key>`` with the system
as a related resource, so a project's health event and PSO's event about the PPOS system itself never match
the same automation.

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


def emit_about_project(system: str, event: str, project: str, name: str, payload: dict[str, Any] | None = None) -> None:
    """Emit ``framework2.<system>.<event>`` about the project ``framework2.project.<project>``."""
    emit_event(
        event=event_name(system, event),
        resource={"prefect.resource.id": f"framework2.project.{project}", "prefect.resource.name": name},
        related=[{**system_resource(system), "prefect.resource.role": "system"}],
        payload=jsonable(payload or {}),
    )
