"""The plan of a release, rendered without touching a cluster: steps and the manifests that would be applied.

This is what ``framework2 run plos`` and the demo show when no cluster is configured, and what a dry run
shows with one (then knowing the live colour).
"""

from __future__ import annotations

from typing import Any

from kubernetes.client import ApiClient
from pydantic import BaseModel, Field

from framework2.tasks.launch.cluster import COLOUR_LABEL, other_colour
from framework2.tasks.launch.release import ReleaseRequest
from framework2.tasks.launch.rollout import build_deployment, deployment_name


class ReleasePlan(BaseModel):
    """Steps, manifests and the notes a person should read before the release."""

    live_colour: str | None = Field(None, description="Colour serving traffic now (None: unknown or first release).")
    new_colour: str
    steps: list[str]
    manifests: list[dict[str, Any]]
    notes: list[str] = Field(default_factory=list)


def hpa_manifest(request: ReleaseRequest, colour: str) -> dict[str, Any] | None:
    if request.hpa is None:
        return None
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": request.app, "namespace": request.namespace, "labels": {"app": request.app}},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(request.app, colour),
            },
            "minReplicas": request.hpa.min_replicas,
            "maxReplicas": request.hpa.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": request.hpa.cpu_utilization_percent},
                    },
                }
            ],
        },
    }


def release_plan(
    request: ReleaseRequest, live_colour: str | None = None, notes: list[str] | None = None
) -> ReleasePlan:
    """What a release of ``request`` would do, step by step, with the manifests."""
    new = other_colour(live_colour)
    a = request.analysis
    deployment = build_deployment(
        request.target, new, request.image, request.revision or "", request.replicas, request.progress_deadline_seconds
    )
    manifests: list[dict[str, Any]] = [ApiClient().sanitize_for_serialization(deployment)]
    for service in (request.preview_service, request.active_service):
        manifests.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": request.namespace},
                "spec": {"selector": {"app": request.app, COLOUR_LABEL: new}},
            }
        )
    hpa = hpa_manifest(request, new)
    if hpa:
        manifests.append(hpa)
    metrics = (
        ", ".join(
            f"{m.name} ({m.conditions_text()}, {m.count or '∞'}× every {m.interval_seconds:g} s)"
            for m in a.pre_promotion
        )
        or "none"
    )
    promotion = (
        "promote automatically"
        if request.auto_promotion
        else f"wait for a person to promote{f' (or promote after {request.auto_promotion_seconds} s)' if request.auto_promotion_seconds else ''}"  # noqa: E501
    )
    steps = [
        f"Preflight: API reachable, permissions, live colour ({live_colour or 'none yet'}), take release lock "
        f"plos-release-{request.app} (renewed every {request.lock_ttl_seconds / 3:.0f} s).",
        f"Predict launch success; below {request.success_threshold:.0%} pause for approval"
        + (" (forced: no pause)." if request.force else "."),
        f"Deploy {deployment_name(request.app, new)} with {request.image} (revision {request.revision}), "
        f"{request.replicas} replicas; wait for ready pods within {request.progress_deadline_seconds} s, failing fast "
        "on CrashLoopBackOff, image pull errors or Unschedulable.",
        f"Point {request.preview_service} at {new}; pre-promotion analysis: {metrics}.",
        f"On success {promotion}: switch {request.active_service} to {new} in one patch.",
        f"Post-promotion: error rate ≤ {a.rollback_threshold:g} over {a.post_promotion_intervals} × "
        f"{a.post_promotion_interval_seconds:g} s, else instant switch back to "
        f"{live_colour or 'the previous selector'}.",
        (
            f"Autoscaler {request.app} → {new}: {request.hpa.min_replicas}–{request.hpa.max_replicas} replicas at "
            f"{request.hpa.cpu_utilization_percent} % CPU."
            if request.hpa
            else "No autoscaler (hpa empty)."
        ),
        f"After {request.scale_down_delay_seconds:g} s scale {live_colour or 'the old colour'} to 0; until then "
        "a rollback is an instant selector switch.",
    ]
    return ReleasePlan(live_colour=live_colour, new_colour=new, steps=steps, manifests=manifests, notes=notes or [])
