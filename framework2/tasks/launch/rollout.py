"""PLOS step 3: deploy the new colour and wait until its pods are ready, or say exactly why they are not.

The new colour is the Deployment ``<app>-<colour>``. Its selector is ``app`` + colour only, because a
selector cannot change after creation; the revision is a label of the Deployment and its pod template, so
pods of an older revision of the same colour are told apart by it (and never counted as the new release).

Waiting watches the pods (re-listing after every watch slice, so a missed event cannot wedge it) and
re-reads the Deployment. It fails fast on a pod that cannot start (crash loop, image pull, unschedulable)
instead of waiting out the deadline, and honours the Deployment's own progress deadline.

One HorizontalPodAutoscaler per app, named ``<app>``, follows the live colour: retargeting it is a single
patch, so two HPAs never fight over one Deployment and the old colour keeps its replica count for rollback.
"""

from __future__ import annotations

import contextlib
import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, Field, model_validator

from framework2.tasks.launch.cluster import COLOUR_LABEL, COLOURS, ClusterError, ReleaseTarget
from framework2.tasks.launch.kapi import RETRYABLE_STATUSES, with_retries

REVISION_LABEL = "framework2.io/revision"
DEFAULT_PORT = 8080
# A watch lasts at most this long before the pods are listed again and the Deployment re-read.
WATCH_SLICE_SECONDS = 1.0

# Waiting reasons of a container that will not fix themselves by waiting longer.
FAILING_WAIT_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class InvalidRelease(ClusterError, ValueError):
    """The release asked for cannot be deployed as given; raised before any API call."""


class RolloutFailed(ClusterError):
    """A pod of the new colour cannot become ready: waiting longer will not help."""

    def __init__(self, message: str, hint: str = "", *, reason: str, pod: str | None = None) -> None:
        super().__init__(message, hint)
        self.reason = reason
        self.pod = pod


class RolloutAborted(ClusterError):
    """Someone asked the release to stop while its new colour was rolling out."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, hint="the release rolls back; see plos-release-status")
        self.reason = reason


class RolloutTimedOut(ClusterError):
    """The new colour did not become ready within its progress deadline."""


def deployment_name(app: str, colour: str) -> str:
    return f"{app}-{colour}"


def _selector(target: ReleaseTarget, colour: str) -> dict[str, str]:
    return {"app": target.app, COLOUR_LABEL: colour}


def _labels(target: ReleaseTarget, colour: str, revision: str) -> dict[str, str]:
    return _selector(target, colour) | {REVISION_LABEL: revision}


def _check_release(colour: str, image: str, revision: str, replicas: int, progress_deadline_seconds: int) -> str:
    image = image.strip() if isinstance(image, str) else ""
    if not image or any(c.isspace() for c in image):
        raise InvalidRelease(
            f"image {image!r} contains whitespace" if image else "the image to deploy is empty",
            hint="pass the full image reference, e.g. registry.example.com/shop/web:1.4.2",
        )
    if colour not in COLOURS:
        raise InvalidRelease(f"colour {colour!r} is not one of {', '.join(COLOURS)}", hint="use blue or green")
    if not _LABEL_VALUE.match(revision or ""):
        raise InvalidRelease(
            f"revision {revision!r} is not a valid label value",
            hint="use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
    if replicas < 0:
        raise InvalidRelease(f"replicas must be 0 or more, not {replicas}", hint="pass the number of pods to run")
    if progress_deadline_seconds < 1:
        raise InvalidRelease(
            f"progress deadline must be at least 1 second, not {progress_deadline_seconds}",
            hint="allow the time the app needs to pull its image and pass its readiness probe",
        )
    return image


def build_deployment(
    target: ReleaseTarget,
    colour: str,
    image: str,
    revision: str,
    replicas: int,
    progress_deadline_seconds: int,
    template: client.V1PodTemplateSpec | None = None,
) -> client.V1Deployment:
    """The Deployment of one colour at one revision.

    With ``template`` (copied from the live colour) the pods keep everything the live ones have — ports,
    resources, probes, env — and only the first container's image and the labels change. ``template`` is
    not modified.
    """
    image = _check_release(colour, image, revision, replicas, progress_deadline_seconds)
    labels = _labels(target, colour, revision)
    if template is not None:
        pod_template = copy.deepcopy(template)
        pod_template.metadata = pod_template.metadata or client.V1ObjectMeta()
        pod_template.metadata.labels = dict(pod_template.metadata.labels or {}) | labels
        if pod_template.spec is None or not pod_template.spec.containers:
            raise InvalidRelease(
                "the pod template to copy has no containers",
                hint="copy the template of a Deployment that runs the app (read_colour of the live colour)",
            )
        pod_template.spec.containers[0].image = image
    else:
        pod_template = client.V1PodTemplateSpec(
            metadata=client.V1ObjectMeta(labels=labels),
            spec=client.V1PodSpec(
                containers=[
                    client.V1Container(
                        name=target.app, image=image, ports=[client.V1ContainerPort(container_port=DEFAULT_PORT)]
                    )
                ]
            ),
        )
    return client.V1Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=client.V1ObjectMeta(
            name=deployment_name(target.app, colour), namespace=target.namespace, labels=dict(labels)
        ),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            # Selectors are immutable: app + colour only, so a new revision is a template change, not a new object.
            selector=client.V1LabelSelector(match_labels=_selector(target, colour)),
            progress_deadline_seconds=progress_deadline_seconds,
            template=pod_template,
        ),
    )


@dataclass(frozen=True)
class ColourState:
    name: str
    image: str | None
    revision: str | None
    replicas: int
    ready_replicas: int
    template: client.V1PodTemplateSpec


def _read_deployment(api: client.ApiClient, target: ReleaseTarget, colour: str) -> client.V1Deployment | None:
    apps = client.AppsV1Api(api)
    try:
        return with_retries(apps.read_namespaced_deployment, deployment_name(target.app, colour), target.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_colour(api: client.ApiClient, target: ReleaseTarget, colour: str) -> ColourState | None:
    """What one colour runs now; None when its Deployment does not exist."""
    deployment = _read_deployment(api, target, colour)
    if deployment is None:
        return None
    template = deployment.spec.template
    containers = template.spec.containers if template.spec else []
    labels = (template.metadata.labels if template.metadata else None) or {}
    return ColourState(
        name=deployment.metadata.name,
        image=containers[0].image if containers else None,
        revision=labels.get(REVISION_LABEL) or (deployment.metadata.labels or {}).get(REVISION_LABEL),
        replicas=deployment.spec.replicas if deployment.spec.replicas is not None else 1,
        ready_replicas=(deployment.status.ready_replicas if deployment.status else None) or 0,
        template=template,
    )


def apply_colour(
    api: client.ApiClient,
    target: ReleaseTarget,
    colour: str,
    image: str,
    revision: str,
    replicas: int,
    progress_deadline_seconds: int,
    template: client.V1PodTemplateSpec | None = None,
) -> None:
    """Create the colour's Deployment at ``revision``, or patch the existing one to it. Idempotent.

    Patching an existing Deployment without ``template`` keeps its own pod template (ports, resources,
    probes) and changes only the first container's image and the labels.
    """
    desired = build_deployment(target, colour, image, revision, replicas, progress_deadline_seconds, template)
    apps = client.AppsV1Api(api)
    existing = _read_deployment(api, target, colour)
    if existing is None:
        try:
            with_retries(apps.create_namespaced_deployment, target.namespace, desired)
            return
        except ApiException as exc:
            if exc.status != 409:  # 409: created meanwhile (or by our own retried create): patch it instead
                raise
        existing = _read_deployment(api, target, colour)
        if existing is None:
            raise ClusterError(
                f"deployment {desired.metadata.name!r} was deleted while it was being created",
                hint="something else manages this Deployment; stop it, then run the release again",
            )
    if template is None:
        desired = build_deployment(
            target, colour, image, revision, replicas, progress_deadline_seconds, existing.spec.template
        )
    live_selector = (existing.spec.selector.match_labels if existing.spec.selector else None) or {}
    if live_selector != _selector(target, colour):
        raise ClusterError(
            f"deployment {desired.metadata.name!r} selects {live_selector}, not {_selector(target, colour)}",
            hint="a selector cannot be changed; delete that Deployment (it is not serving traffic) and release again",
        )
    # A JSON merge patch of exactly the template's differences (removed keys as null, lists whole): a
    # strategic merge would keep env vars, ports or volumes the copied template no longer has.
    body = {
        "metadata": {"labels": desired.metadata.labels},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline_seconds,
            "template": _merge_patch(
                api.sanitize_for_serialization(existing.spec.template),
                api.sanitize_for_serialization(desired.spec.template),
            ),
        },
    }
    with_retries(
        apps.patch_namespaced_deployment,
        desired.metadata.name,
        target.namespace,
        body,
        _content_type="application/merge-patch+json",
    )


def _merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``: changed keys, None for removed ones."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = _merge_patch(old[key], value)
    return patch


def scale(api: client.ApiClient, target: ReleaseTarget, colour: str, replicas: int) -> None:
    """Set the colour's replica count; scaling a colour that does not exist to 0 is a no-op."""
    if replicas < 0:
        raise InvalidRelease(f"replicas must be 0 or more, not {replicas}", hint="pass the number of pods to run")
    name = deployment_name(target.app, colour)
    try:
        with_retries(
            client.AppsV1Api(api).patch_namespaced_deployment, name, target.namespace, {"spec": {"replicas": replicas}}
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
        if replicas:
            raise ClusterError(
                f"deployment {name!r} does not exist in namespace {target.namespace!r}",
                hint="deploy the colour first (apply_colour), or check the app name and namespace",
            ) from exc


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _problem(pod: client.V1Pod) -> tuple[str, str] | None:
    status = pod.status
    if status is None:
        return None
    for container in (status.init_container_statuses or []) + (status.container_statuses or []):
        state = container.state
        restarts = container.restart_count or 0
        suffix = f", {restarts} restart{'s' if restarts != 1 else ''}" if restarts else ""
        waiting = state.waiting if state else None
        if waiting and waiting.reason in FAILING_WAIT_REASONS:
            message = f" ({_short(waiting.message)})" if waiting.message else ""
            return waiting.reason, f"container {container.name} {waiting.reason}{message}{suffix}"
        terminated = state.terminated if state else None
        # Exited non-zero after a restart already: the same crash loop, caught between two back-offs.
        if terminated and terminated.exit_code and restarts:
            reason = terminated.reason or "Error"
            return "CrashLoopBackOff", (
                f"container {container.name} exited with code {terminated.exit_code} ({reason}){suffix}"
            )
    for condition in status.conditions or []:
        if condition.type == "PodScheduled" and condition.status == "False" and condition.reason == "Unschedulable":
            return "Unschedulable", f"Unschedulable: {_short(condition.message or 'no node fits the pod')}"
    return None


def pod_problem(pod: client.V1Pod) -> str | None:
    """Why this pod will not become ready by waiting (crash loop, image pull, unschedulable), or None."""
    found = _problem(pod)
    return found[1] if found else None


_HINTS = {
    "CrashLoopBackOff": "the app exits at start: read its log (kubectl logs --previous) and fix the image or config",
    "ImagePullBackOff": "check the image name and tag, and that the cluster may pull from that registry",
    "ErrImagePull": "check the image name and tag, and that the cluster may pull from that registry",
    "InvalidImageName": "fix the image reference",
    "CreateContainerConfigError": "a Secret or ConfigMap the pod uses is missing or lacks a key",
    "CreateContainerError": "the container cannot be created: read the pod's events (kubectl describe pod)",
    "RunContainerError": "the container cannot start: read the pod's events (kubectl describe pod)",
    "Unschedulable": "free or add capacity (or lower the pod's requests), or fix its node selector/affinity",
}


class RolloutProgress(BaseModel):
    """Where a rollout stands: ready pods of the new revision out of the desired number."""

    ready: int
    desired: int
    elapsed_seconds: float
    pods: dict[str, str] = Field(default_factory=dict, description="Pod name → short state, new revision only.")

    @property
    def done(self) -> bool:
        return self.ready >= self.desired


def _is_ready(pod: client.V1Pod) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _pod_state(pod: client.V1Pod) -> str:
    if _is_ready(pod):
        return "Ready"
    problem = _problem(pod)
    if problem:
        return problem[0]
    status = pod.status
    for container in (status.container_statuses if status else None) or []:
        if container.state and container.state.waiting and container.state.waiting.reason:
            return container.state.waiting.reason
    return (status.phase if status else None) or "Pending"


def _deadline_exceeded(deployment: client.V1Deployment) -> bool:
    # Trust the condition only once the controller has seen the current spec (what `kubectl rollout
    # status` does): right after a patch, it may still describe the previous rollout of this colour.
    generation = deployment.metadata.generation
    status = deployment.status
    observed = status.observed_generation if status else None
    if generation is None or observed is None or observed < generation:
        return False
    return any(
        c.type == "Progressing" and c.status == "False" and c.reason == "ProgressDeadlineExceeded"
        for c in (status.conditions or [])
    )


def _live(pods: dict[str, client.V1Pod]) -> dict[str, client.V1Pod]:
    """The pods not being deleted, by name: a terminating pod neither counts nor fails the rollout."""
    return {n: p for n, p in sorted(pods.items()) if not (p.metadata and p.metadata.deletion_timestamp)}


def _progress(pods: dict[str, client.V1Pod], replicas: int, elapsed: float) -> RolloutProgress:
    live = _live(pods)
    return RolloutProgress(
        ready=sum(1 for pod in live.values() if _is_ready(pod)),
        desired=replicas,
        elapsed_seconds=round(elapsed, 3),
        pods={name: _pod_state(pod) for name, pod in live.items()},
    )


def wait_for_rollout(
    api: client.ApiClient,
    target: ReleaseTarget,
    colour: str,
    revision: str,
    replicas: int,
    deadline_seconds: float,
    *,
    on_progress: Callable[[RolloutProgress], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop_reason: Callable[[], str | None] | None = None,
) -> RolloutProgress:
    """Wait until ``replicas`` pods of ``revision`` are Ready; fail fast on a pod that cannot start.

    ``on_progress`` is called with the first count and whenever the ready count changes. Raises
    RolloutFailed (a pod's reason), RolloutTimedOut (``deadline_seconds`` passed, or the Deployment's own
    progress deadline was exceeded) or ClusterError (the Deployment vanished or runs another revision).
    ``stop_reason`` is asked about once a second; a reason ends the wait with RolloutAborted.
    """
    core = client.CoreV1Api(api)
    name = deployment_name(target.app, colour)
    wanted = _labels(target, colour, revision)
    # A real API server filters by this selector; the labels are checked here again in any case.
    selector = ",".join(f"{key}={value}" for key, value in wanted.items())
    started = clock()
    deadline = started + deadline_seconds
    reported: list[int] = []

    def ours(pod: client.V1Pod) -> bool:
        labels = (pod.metadata.labels if pod.metadata else None) or {}
        return all(labels.get(key) == value for key, value in wanted.items())

    def settle(pods: dict[str, client.V1Pod]) -> RolloutProgress:
        for pod_name, pod in _live(pods).items():
            problem = _problem(pod)
            if problem:
                reason, detail = problem
                raise RolloutFailed(
                    f"{name} revision {revision}: pod {pod_name}: {detail}",
                    hint=_HINTS.get(reason, "read the pod's events (kubectl describe pod)"),
                    reason=reason,
                    pod=pod_name,
                )
        progress = _progress(pods, replicas, clock() - started)
        if not reported or reported[-1] != progress.ready:
            reported.append(progress.ready)
            if on_progress is not None:
                on_progress(progress)
        return progress

    def timed_out(progress: RolloutProgress, why: str) -> RolloutTimedOut:
        shown = [f"{pod} {state}" for pod, state in progress.pods.items()]
        states = ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "") or "none"
        return RolloutTimedOut(
            f"{name} revision {revision}: {why}; {progress.ready} of {replicas} pods became ready (pods: {states})",
            hint=f"kubectl -n {target.namespace} describe pods -l {selector} — a slow image pull, a readiness "
            "probe that never passes or too little capacity; raise the progress deadline if the app starts slowly",
        )

    while True:
        # Each round starts from a fresh list, so an event lost with a broken watch cannot wedge the wait.
        listed = with_retries(core.list_namespaced_pod, target.namespace, label_selector=selector)
        pods = {pod.metadata.name: pod for pod in listed.items if ours(pod)}
        progress = settle(pods)
        if progress.done:
            return progress
        deployment = _read_deployment(api, target, colour)
        if deployment is None:
            raise ClusterError(
                f"deployment {name!r} disappeared while rolling out",
                hint="something else deleted it; run the release again (it re-creates the colour)",
            )
        template_meta = deployment.spec.template.metadata
        live_revision = ((template_meta.labels if template_meta else None) or {}).get(REVISION_LABEL)
        if live_revision != revision:
            raise ClusterError(
                f"deployment {name!r} now runs revision {live_revision!r}, not {revision!r}",
                hint="another release or a person changed it; check who holds the release lock",
            )
        if _deadline_exceeded(deployment):
            raise timed_out(progress, "the Deployment's progress deadline was exceeded")
        reason = stop_reason() if stop_reason is not None else None
        if reason:
            raise RolloutAborted(f"{name} revision {revision}: rollout stopped on request: {reason}", reason=reason)
        remaining = deadline - clock()
        if remaining <= 0:
            raise timed_out(progress, f"not ready within {deadline_seconds:g}s")

        slice_end = clock() + min(remaining, WATCH_SLICE_SECONDS)
        stream = watch.Watch().stream(
            core.list_namespaced_pod,
            target.namespace,
            label_selector=selector,
            resource_version=listed.metadata.resource_version if listed.metadata else None,
            # A read timeout ends a quiet watch at the end of the slice; a busy one is stopped below.
            _request_timeout=max(0.05, slice_end - clock()),
        )
        try:
            with contextlib.closing(stream):
                for event in stream:
                    pod = event["object"]
                    if event["type"] == "DELETED" or not ours(pod):
                        pods.pop(pod.metadata.name, None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        pods[pod.metadata.name] = pod
                    progress = settle(pods)
                    if progress.done:
                        return progress
                    if clock() >= slice_end:
                        break
        except (urllib3.exceptions.HTTPError, ConnectionError):
            pass  # the slice ended on a quiet watch (read timeout) or the stream broke: list again
        except ApiException as exc:
            if exc.status != 410 and exc.status not in RETRYABLE_STATUSES:  # 410: the watch expired
                raise


class HpaSettings(BaseModel):
    """How the live colour autoscales (one HorizontalPodAutoscaler per app, autoscaling/v2, on CPU)."""

    min_replicas: int = Field(3, ge=1, description="Fewest pods the live colour runs, even with no load.")
    max_replicas: int = Field(20, ge=1, description="Most pods the live colour may scale out to.")
    cpu_utilization_percent: int = Field(
        70, ge=1, le=100, description="Average CPU use, in % of the pods' CPU requests, the autoscaler aims for."
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> HpaSettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must not be above max_replicas ({self.max_replicas})")
        return self


def hpa_name(app: str) -> str:
    return app


def upsert_hpa(api: client.ApiClient, target: ReleaseTarget, colour: str, settings: HpaSettings) -> None:
    """Create the app's HPA for ``colour``, or retarget the existing one to it in one patch."""
    if colour not in COLOURS:
        raise InvalidRelease(f"colour {colour!r} is not one of {', '.join(COLOURS)}", hint="use blue or green")
    autoscaling = client.AutoscalingV2Api(api)
    body = client.V2HorizontalPodAutoscaler(
        api_version="autoscaling/v2",
        kind="HorizontalPodAutoscaler",
        metadata=client.V1ObjectMeta(name=hpa_name(target.app), namespace=target.namespace, labels={"app": target.app}),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name=deployment_name(target.app, colour)
            ),
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            metrics=[
                client.V2MetricSpec(
                    type="Resource",
                    resource=client.V2ResourceMetricSource(
                        name="cpu",
                        target=client.V2MetricTarget(
                            type="Utilization", average_utilization=settings.cpu_utilization_percent
                        ),
                    ),
                )
            ],
        ),
    )
    try:
        with_retries(autoscaling.create_namespaced_horizontal_pod_autoscaler, target.namespace, body)
        return
    except ApiException as exc:
        if exc.status != 409:
            raise
    patch = {"metadata": {"labels": body.metadata.labels}, "spec": api.sanitize_for_serialization(body.spec)}
    with_retries(autoscaling.patch_namespaced_horizontal_pod_autoscaler, hpa_name(target.app), target.namespace, patch)


def retarget_hpa(api: client.ApiClient, target: ReleaseTarget, colour: str) -> bool:
    """Point the existing HPA at ``colour``, keeping its limits and metrics; False when there is no HPA.

    For undo and rollback, where the settings to restore are the HPA's own, not a new HpaSettings.
    """
    if colour not in COLOURS:
        raise InvalidRelease(f"colour {colour!r} is not one of {', '.join(COLOURS)}", hint="use blue or green")
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(target.app, colour)}
    try:
        with_retries(
            client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler,
            hpa_name(target.app),
            target.namespace,
            {"spec": {"scaleTargetRef": ref}},
        )
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def read_hpa(api: client.ApiClient, target: ReleaseTarget) -> Any | None:
    """The app's HorizontalPodAutoscaler (autoscaling/v2), or None when it has none."""
    try:
        return with_retries(
            client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler,
            hpa_name(target.app),
            target.namespace,
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def read_hpa_target(api: client.ApiClient, target: ReleaseTarget) -> str | None:
    """The colour the app's HPA scales, or None when there is no HPA."""
    hpa = read_hpa(api, target)
    if hpa is None:
        return None
    ref = hpa.spec.scale_target_ref
    for colour in COLOURS:
        if ref.kind == "Deployment" and ref.name == deployment_name(target.app, colour):
            return colour
    raise ClusterError(
        f"HPA {hpa_name(target.app)!r} scales {ref.kind} {ref.name!r}, not {target.app}-blue or {target.app}-green",
        hint="it predates PLOS: delete it (PLOS creates its own) or rename it",
    )


def delete_hpa(api: client.ApiClient, target: ReleaseTarget) -> None:
    """Remove the app's HPA (undo of a first release's create); a missing HPA is fine."""
    try:
        with_retries(
            client.AutoscalingV2Api(api).delete_namespaced_horizontal_pod_autoscaler,
            hpa_name(target.app),
            target.namespace,
        )
    except ApiException as exc:
        if exc.status != 404:
            raise
