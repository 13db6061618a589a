"""PLOS capacity on demand: raise an app's autoscaler floor when its users wait too long.

PUXT emits ``framework2.puxt.response_time.exceeded``; a deployment trigger runs ``plos-scale-up``, which
calls :func:`raise_capacity`. Waiting for CPU to rise is too slow when slowness is the symptom already, so
the floor (``spec.minReplicas``) of the app's HorizontalPodAutoscaler goes up by ``step`` and more pods
run at once; ``spec.maxReplicas`` follows only when the floor would pass it.

Decisions:

- **Ceiling.** Never above ``ceiling``. Its default is twice the HPA's maxReplicas *before PLOS first
  raised it* (kept in an annotation), not twice the current one: doubling the current value after every
  raise would let repeated alerts grow the app without bound. When the HPA's maxReplicas no longer equals
  the value PLOS last wrote (a release reset it, or a person changed it), the current value is the new base.
- **Cooldown.** The time and reason of the last raise are annotations on the HPA itself, so every worker
  sees them and they live as long as the autoscaler. Within ``cooldown`` of the last raise nothing is done
  and the result says when the next raise is allowed: a burst of alerts is one raise, not ten.
- **Which Deployment.** As ``read_hpa_target``: the HPA must scale ``<app>-blue`` or ``<app>-green``
  (anything else predates PLOS; a ClusterError). If the active Service ``<app>-active`` selects the other
  colour, raising the floor would add idle pods and leave users waiting, so that is a ClusterError too;
  without that Service the live colour is unknown and the HPA's own target is scaled.
- **Patch.** One JSON merge patch of only what changes (minReplicas, maxReplicas when raised, the
  annotations), never a replace, so metrics, behaviour and the target stay as they are. It carries the
  HPA's resourceVersion as a precondition: two runs racing on one alert cannot both raise (the loser gets
  409, reads again and finds the cooldown). Values are absolute, so a retried patch is harmless.
- The raised floor stays until a release rewrites the HPA from its settings or a person lowers it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, Field, ValidationError

from framework2.tasks.launch.cluster import COLOURS, ClusterError, ReleaseTarget, active_colour
from framework2.tasks.launch.kapi import with_retries
from framework2.tasks.launch.rollout import deployment_name, hpa_name, read_hpa

LAST_SCALE_UP = "framework2.io/last-scale-up"
SCALE_UP_REASON = "framework2.io/scale-up-reason"
BASE_MAX_REPLICAS = "framework2.io/scale-up-base-max-replicas"
WRITTEN_MAX_REPLICAS = "framework2.io/scale-up-max-replicas"
DEFAULT_COOLDOWN = timedelta(minutes=10)
CEILING_FACTOR = 2
MAX_REASON_CHARS = 500
# A lost race (409) is re-read and decided again; more than this many in a row means something else is wrong.
MAX_CONFLICTS = 3

log = logging.getLogger(__name__)

Action = Literal["scaled", "cooling down", "at ceiling", "no autoscaler"]


class InvalidScaleUp(ClusterError, ValueError):
    """The scale-up asked for cannot be done as given; raised before any API call."""


class ScaleResult(BaseModel):
    """What one scale-up request did to the app's autoscaler, and why."""

    app: str
    namespace: str
    action: Action
    min_before: int | None = None
    min_after: int | None = None
    max_before: int | None = None
    max_after: int | None = None
    ceiling: int | None = Field(None, description="Most pods the floor may be raised to.")
    colour: str | None = Field(None, description="Colour whose Deployment the autoscaler scales.")
    reason: str = Field("", description="Why capacity was asked for (recorded on the HPA when scaled).")
    next_allowed_at: datetime | None = Field(None, description="When cooling down: the earliest next raise.")
    detail: str = Field("", description="One sentence for a person.")


def scale_target(app: str, namespace: str = "default") -> ReleaseTarget:
    """The app as PLOS names its objects; app and namespace must be Kubernetes names (DNS labels)."""
    try:
        return ReleaseTarget(
            namespace=namespace, app=app, active_service=f"{app}-active", preview_service=f"{app}-preview"
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidScaleUp(
            f"cannot scale app {app!r} in namespace {namespace!r}: {first['msg']}",
            hint="pass the app and namespace as PLOS released them: lower-case letters, digits and '-'",
        ) from exc


def _check(step: int, ceiling: int | None, cooldown: timedelta, now: datetime | None) -> datetime:
    if step < 1:
        raise InvalidScaleUp(f"step must be at least 1, not {step}", hint="pass how many pods to add to the floor")
    if ceiling is not None and ceiling < 1:
        raise InvalidScaleUp(f"ceiling must be at least 1, not {ceiling}", hint="pass the most pods the app may run")
    if cooldown < timedelta(0):
        raise InvalidScaleUp(f"cooldown must not be negative, not {cooldown}", hint="pass e.g. 10 minutes")
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise InvalidScaleUp(f"now ({now}) has no time zone", hint="pass an aware datetime, e.g. in UTC")
    return now.astimezone(UTC)


def _scaled_colour(hpa: Any, target: ReleaseTarget) -> str:
    """The colour the HPA scales, with ``read_hpa_target``'s rule: one of the app's two Deployments."""
    ref = hpa.spec.scale_target_ref
    for colour in COLOURS:
        if ref.kind == "Deployment" and ref.name == deployment_name(target.app, colour):
            return colour
    raise ClusterError(
        f"HPA {hpa_name(target.app)!r} scales {ref.kind} {ref.name!r}, not {target.app}-blue or {target.app}-green",
        hint="it predates PLOS: delete it (PLOS creates its own on the next release) or rename it",
    )


def _live_colour(api: client.ApiClient, target: ReleaseTarget) -> str | None:
    """The colour the active Service selects; None when there is no such Service (live colour unknown)."""
    try:
        return active_colour(api, target)
    except ClusterError as exc:
        if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 404:
            return None
        raise


def _parse_time(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        # Hand-edited: better one raise too many than an app stuck without capacity.
        log.warning("annotation %s=%r is not an ISO time; ignoring it", LAST_SCALE_UP, raw)
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _base_max(annotations: dict[str, str], max_before: int) -> int:
    """maxReplicas before PLOS raised it, while the HPA still has the maxReplicas PLOS last wrote."""
    base, written = _int(annotations.get(BASE_MAX_REPLICAS)), _int(annotations.get(WRITTEN_MAX_REPLICAS))
    return base if base is not None and written == max_before else max_before


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")


def raise_capacity(
    api: client.ApiClient,
    target: ReleaseTarget,
    *,
    step: int = 1,
    ceiling: int | None = None,
    cooldown: timedelta = DEFAULT_COOLDOWN,
    reason: str = "",
    now: datetime | None = None,
) -> ScaleResult:
    """Raise the app's HPA floor by ``step`` pods (and its maxReplicas when the floor would pass it).

    ``ceiling``: the most pods the floor may reach; default twice the HPA's maxReplicas before PLOS first
    raised it. Refusals are results, not errors: ``no autoscaler``, ``at ceiling`` and ``cooling down``
    (within ``cooldown`` of the last raise, with ``next_allowed_at``). ``now`` is for tests.
    """
    moment = _check(step, ceiling, cooldown, now)
    why = " ".join(reason.split())[:MAX_REASON_CHARS] or "no reason given"
    for _ in range(MAX_CONFLICTS):
        hpa = read_hpa(api, target)
        if hpa is None:
            return ScaleResult(
                app=target.app,
                namespace=target.namespace,
                action="no autoscaler",
                reason=why,
                detail=(
                    f"{target.app} has no autoscaler (HPA {hpa_name(target.app)!r} in {target.namespace!r}); "
                    "PLOS creates it on the app's first blue-green release — release the app with "
                    "plos-blue-green-release (HPA settings in the form), then scaling up works"
                ),
            )
        result = _decide(api, target, hpa, step, ceiling, cooldown, why, moment)
        if result.action != "scaled":
            return result
        try:
            _patch(api, target, hpa, result, moment)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # Another run changed the HPA since it was read — or a retried patch of ours already landed
            # and the retry lost the precondition. Our own stamp tells the two apart.
            again = read_hpa(api, target)
            mine = (again.metadata.annotations or {}).get(LAST_SCALE_UP) if again is not None else None
            if mine == _stamp(moment) and again.spec.min_replicas == result.min_after:
                return result
            continue
        return result
    raise ClusterError(
        f"HPA {hpa_name(target.app)!r} kept changing while PLOS raised it ({MAX_CONFLICTS} conflicts in a row)",
        hint="something else edits it continuously (another controller or GitOps sync); stop that or retry later",
    )


def _decide(
    api: client.ApiClient,
    target: ReleaseTarget,
    hpa: Any,
    step: int,
    ceiling: int | None,
    cooldown: timedelta,
    why: str,
    moment: datetime,
) -> ScaleResult:
    """What to do with this HPA as read: the result to return, with ``scaled`` meaning "patch it so"."""
    colour = _scaled_colour(hpa, target)
    live = _live_colour(api, target)
    if live is not None and live != colour:
        raise ClusterError(
            f"the autoscaler of {target.app} scales {deployment_name(target.app, colour)}, but traffic is on {live}: "
            "raising it would add idle pods",
            hint="a release may be switching colours — retry in a minute; otherwise run plos-release-status",
        )
    annotations = dict(hpa.metadata.annotations or {})
    min_before = hpa.spec.min_replicas or 1  # the API server's default when unset
    max_before = hpa.spec.max_replicas
    limit = ceiling if ceiling is not None else CEILING_FACTOR * _base_max(annotations, max_before)
    base = dict(
        app=target.app,
        namespace=target.namespace,
        min_before=min_before,
        min_after=min_before,
        max_before=max_before,
        max_after=max_before,
        ceiling=limit,
        colour=colour,
        reason=why,
    )
    if min_before >= limit:
        return ScaleResult(
            **base,
            action="at ceiling",
            detail=f"{target.app} already runs at least {min_before} pods, the ceiling is {limit}: not raised",
        )
    last = _parse_time(annotations.get(LAST_SCALE_UP))
    if last is not None and moment < last + cooldown:
        return ScaleResult(
            **base,
            action="cooling down",
            next_allowed_at=last + cooldown,
            detail=(
                f"{target.app} was raised at {last:%Y-%m-%d %H:%M:%S} UTC "
                f"({annotations.get(SCALE_UP_REASON, 'no reason recorded')}); next raise allowed from "
                f"{last + cooldown:%H:%M:%S} UTC"
            ),
        )
    min_after = min(min_before + step, limit)
    max_after = max(max_before, min_after)
    grew = f", max {max_before} → {max_after}" if max_after != max_before else ""
    return ScaleResult(
        **(base | {"min_after": min_after, "max_after": max_after}),
        action="scaled",
        detail=f"{target.app}-{colour}: min {min_before} → {min_after}{grew} (ceiling {limit}) because {why}",
    )


def _patch(api: client.ApiClient, target: ReleaseTarget, hpa: Any, result: ScaleResult, moment: datetime) -> None:
    """One merge patch of only the changed fields, conditional on the HPA being as it was read."""
    annotations = hpa.metadata.annotations or {}
    base_max = _base_max(annotations, result.max_before or 0)
    wanted = {
        LAST_SCALE_UP: _stamp(moment),
        SCALE_UP_REASON: result.reason,
        BASE_MAX_REPLICAS: str(base_max),
        WRITTEN_MAX_REPLICAS: str(result.max_after),
    }
    metadata: dict[str, Any] = {"annotations": {k: v for k, v in wanted.items() if annotations.get(k) != v}}
    if hpa.metadata.resource_version:
        metadata["resourceVersion"] = hpa.metadata.resource_version  # precondition: 409 if changed meanwhile
    spec: dict[str, Any] = {"minReplicas": result.min_after}
    if result.max_after != result.max_before:
        spec["maxReplicas"] = result.max_after
    with_retries(
        client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler,
        hpa_name(target.app),
        target.namespace,
        {"metadata": metadata, "spec": spec},
        _content_type="application/merge-patch+json",
    )
