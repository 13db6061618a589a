"""Release state kept in the cluster: one annotation on the active Service is the source of truth.

Why the active Service: the traffic switch is a change of that Service's selector, so the selector and
the release state change in one PATCH of one object and can never disagree — if the selector points at
the new colour, the annotation says the release was promoted, and the other way round. A re-run after a
crash (or the worker dying) reads the annotation and resumes or rolls back from there.

The annotation carries a compensation log: every side effect is recorded with its undo *before* it is
made (write-ahead), so a crash between the two leaves an undo that is harmless to run (every undo is
idempotent: scale to a number, select a colour, point the HPA at a colour). Rolling back runs the undos
that have not run yet, newest first, and writes the state after each one, so a crash during a rollback
resumes it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes import client
from pydantic import BaseModel, Field, ValidationError

from framework2.tasks.launch.cluster import COLOUR_LABEL, ClusterError, ReleaseTarget, read_service
from framework2.tasks.launch.kapi import with_retries

RELEASE_ANNOTATION = "framework2.io/release"
ABORT_ANNOTATION = "framework2.io/abort-requested"

Phase = Literal[
    "deploying",  # new colour being created and rolled out; traffic on the old colour
    "analysing",  # preview points at the new colour; pre-promotion analysis running
    "promoted",  # active selector on the new colour; post-promotion analysis running
    "completed",  # kept; the old colour may still be up until its scale-down delay passes
    "rolling_back",  # undoing, newest step first
    "rolled_back",  # traffic back on the old colour, new colour scaled to zero
]
IN_FLIGHT: frozenset[str] = frozenset({"deploying", "analysing", "promoted", "rolling_back"})

UndoOp = Literal["scale", "select", "preview_select", "hpa_target", "hpa_delete"]


class Undo(BaseModel):
    """How to take one side effect back. Every undo is idempotent."""

    op: UndoOp
    colour: str | None = None
    replicas: int | None = None


class Step(BaseModel):
    """One side effect of a release, recorded before it was made, with its undo."""

    action: str
    at: datetime
    undo: Undo | None = None
    undone_at: datetime | None = None
    closed_at: datetime | None = Field(
        None, description="When the undo stopped applying (the old colour was scaled down: nothing to go back to)."
    )


class TimelineEntry(BaseModel):
    """One line of the release timeline a person reads."""

    at: datetime
    step: str
    detail: str
    traffic: str | None = Field(None, description="Colour carrying production traffic after this step.")


class ReleaseState(BaseModel):
    """What the cluster says about the app's latest release."""

    release_id: str
    holder: str = Field(..., description="Flow run (or other owner) driving the release.")
    app: str
    image: str
    revision: str
    from_colour: str | None
    to_colour: str
    previous_image: str | None = None
    previous_revision: str | None = None
    phase: Phase = "deploying"
    reason: str = ""
    steps: list[Step] = Field(default_factory=list)
    promoted_at: datetime | None = None
    completed_at: datetime | None = None
    old_scaled_down_at: datetime | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def in_flight(self) -> bool:
        return self.phase in IN_FLIGHT

    def pending_undos(self) -> list[Step]:
        """Steps not yet undone, newest first (the order a rollback takes them back in)."""
        return [s for s in reversed(self.steps) if s.undo is not None and s.undone_at is None and s.closed_at is None]

    def close_log(self, at: datetime) -> None:
        """The release is kept for good: its undos no longer apply (rollback is a redeploy from now on)."""
        for step in self.pending_undos():
            step.closed_at = at


def _service(api: client.ApiClient, target: ReleaseTarget) -> Any:
    return read_service(api, target, target.active_service)


def read_state(api: client.ApiClient, target: ReleaseTarget) -> tuple[ReleaseState | None, str | None]:
    """The release state annotation and the colour the active Service selects now."""
    service = _service(api, target)
    selected = (service.spec.selector or {}).get(COLOUR_LABEL)
    raw = (service.metadata.annotations or {}).get(RELEASE_ANNOTATION)
    if not raw:
        return None, selected
    try:
        return ReleaseState.model_validate(json.loads(raw)), selected
    except (ValueError, ValidationError) as exc:
        raise ClusterError(
            f"annotation {RELEASE_ANNOTATION} on service {target.active_service!r} is not a PLOS release state: "
            f"{str(exc).splitlines()[0]}",
            hint=f"someone edited it by hand; remove it (kubectl annotate svc {target.active_service} "
            f"{RELEASE_ANNOTATION}-) after checking which colour should be live",
        ) from exc


def write_state(
    api: client.ApiClient,
    target: ReleaseTarget,
    state: ReleaseState,
    *,
    selector: dict[str, str | None] | None = None,
) -> None:
    """Store the state; a ``selector`` patch (None removes a key) goes into the same PATCH, atomically."""
    state.updated_at = datetime.now(UTC)
    body: dict[str, Any] = {"metadata": {"annotations": {RELEASE_ANNOTATION: state.model_dump_json()}}}
    if selector is not None:
        body["spec"] = {"selector": selector}
    with_retries(client.CoreV1Api(api).patch_namespaced_service, target.active_service, target.namespace, body)


def select_preview(api: client.ApiClient, target: ReleaseTarget, colour: str) -> None:
    """Point the preview Service at ``colour``."""
    body = {"spec": {"selector": {COLOUR_LABEL: colour}}}
    with_retries(client.CoreV1Api(api).patch_namespaced_service, target.preview_service, target.namespace, body)


def record_step(
    api: client.ApiClient, target: ReleaseTarget, state: ReleaseState, action: str, undo: Undo | None
) -> Step:
    """Write a step and its undo to the cluster before the step is made."""
    step = Step(action=action, at=datetime.now(UTC), undo=undo)
    state.steps.append(step)
    write_state(api, target, state)
    return step


def abort_requested(api: client.ApiClient, target: ReleaseTarget, release_id: str, holder: str) -> str | None:
    """The reason someone asked this release (or the run holding the lock) to stop, or None.

    ``plos-rollback`` names the lock's holder, since it cannot know the id of a release that has not written
    its state yet (one paused for approval, say); a request for an earlier release or run is ignored.
    """
    annotations = _service(api, target).metadata.annotations or {}
    raw = annotations.get(ABORT_ANNOTATION)
    if not raw:
        return None
    try:
        request = json.loads(raw)
    except ValueError:
        return f"abort requested ({raw})"
    if request.get("release_id") != release_id and request.get("holder") != holder:
        return None  # a stale request for an earlier release
    return str(request.get("reason") or "abort requested")


def request_abort(
    api: client.ApiClient, target: ReleaseTarget, reason: str, *, release_id: str | None, holder: str | None
) -> None:
    """Ask the release (or the run holding the release lock) to roll back at its next check."""
    body = {
        "metadata": {
            "annotations": {
                ABORT_ANNOTATION: json.dumps(
                    {"release_id": release_id, "holder": holder, "reason": reason, "at": datetime.now(UTC).isoformat()}
                )
            }
        }
    }
    with_retries(client.CoreV1Api(api).patch_namespaced_service, target.active_service, target.namespace, body)


def clear_abort(api: client.ApiClient, target: ReleaseTarget) -> None:
    body = {"metadata": {"annotations": {ABORT_ANNOTATION: None}}}
    with_retries(client.CoreV1Api(api).patch_namespaced_service, target.active_service, target.namespace, body)
