"""A stateful Kubernetes API server on loopback (kmock's emulator) for the official, synchronous client.

The emulator is an aiohttp app; it runs on its own event loop in a background thread so the blocking
``kubernetes`` client can talk to it over real HTTP from the test's thread. It keeps objects (create,
patch, delete, 409 on a duplicate create). What it does not compute, a real API server would:
``/version/`` and SelfSubjectAccessReview answers are added here, with permissions a test can deny, and
``metadata.generation`` is bumped on spec changes (see :class:`Emulator`).

Deployments do nothing by themselves in an API server. ``cluster.start_controller()`` starts a simulated
kube-controller-manager + scheduler + kubelet (:class:`FakeController`): another client of the emulator,
over HTTP, that turns Deployments into Pods and reports their status. What the pods do is chosen by the
image: ``crashloop``, ``unschedulable`` or ``stuck`` in the image name; anything else becomes Ready.

``cluster.fail_next(method, path, status=..., times=...)`` makes the next requests of the code under test
to one path answer with an error, for retry tests. ``running_cluster()`` is the ``cluster`` fixture as a
context manager, for use without pytest (the benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kmock
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-kmock",
    "buildDate": "2026-01-01T00:00:00Z",
    "compiler": "gc",
    "gitCommit": "0",
    "gitTreeState": "clean",
    "goVersion": "go1.23",
    "platform": "linux/amd64",
}
RESOURCES = [
    "v1/services",
    "v1/pods",
    "apps/v1/deployments",
    "coordination.k8s.io/v1/leases",
    "autoscaling/v2/horizontalpodautoscalers",
]
CONTROLLER_AGENT = "kube-controller-manager/v1.31.0-fake"
UNSCHEDULABLE_MESSAGE = "0/3 nodes are available: 3 Insufficient cpu."
_POD_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for generated name suffixes
_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}

log = logging.getLogger(__name__)
ReadyHook = Callable[[str, str, dict[str, str]], None]


def _merged(old: Any, patch: Any) -> Any:
    """A JSON merge patch (dicts merge, None deletes, anything else replaces), as the emulator applies it."""
    if not isinstance(old, dict) or not isinstance(patch, dict):
        return patch
    result = dict(old)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merged(old.get(key), value)
    return result


class Emulator(kmock.KubernetesEmulator):
    """kmock's emulator plus ``metadata.generation``, which a real API server bumps on every spec change.

    Without it a client cannot tell whether a Deployment's status describes its current spec (status
    ``observedGeneration`` >= ``generation``), which is how ``kubectl rollout status`` avoids reading the
    conditions of the previous rollout. Requests of the simulated controller are dropped from the request
    log once answered: kmock scans the whole log on every request, so its polling would slow every test
    down, and assertions on ``emulator[...]`` should see the code under test only.
    """

    async def _handle(self, request: kmock.Request) -> Any:
        self._set_generation(request)
        try:
            return await super()._handle(request)
        finally:
            if request.headers.get("User-Agent") == CONTROLLER_AGENT:
                with contextlib.suppress(ValueError):
                    self._requests.remove(request)

    def _set_generation(self, request: kmock.Request) -> None:
        data = request.data
        if request.resource is None or request.subresource is not None or not isinstance(data, dict):
            return
        if request.action == kmock.action.CREATE:
            data.setdefault("metadata", {})["generation"] = 1
        elif request.action == kmock.action.UPDATE and request.name and isinstance(data.get("spec"), dict):
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                return
            current = self.objects[key].raw
            old_spec = current.get("spec") or {}
            if _merged(old_spec, data["spec"]) != old_spec:
                generation = (current.get("metadata") or {}).get("generation") or 1
                data.setdefault("metadata", {})["generation"] = generation + 1


@dataclass
class _Rollout:
    """What the controller remembers of one Deployment's current rollout."""

    fingerprint: tuple[str, str, int]
    last_progress: float
    best_ready: int = 0
    announced: bool = False


class FakeController:
    """What kube-controller-manager, the scheduler and the kubelet would do for Deployments, simplified.

    Every ``interval`` seconds it lists Deployments and Pods and, per Deployment: creates Pods
    (``<deployment>-<5 chars>``, the template's labels and spec, no owner) until ``spec.replicas`` pods
    match the template's labels and image; deletes surplus ones; deletes pods of an older template once
    all new pods are Ready (a rolling update with 100 % surge) or at once when scaled to 0; writes pod
    statuses by image (see the module docstring; Ready after ``ready_delay``); and writes the Deployment's
    status (replicas, updated/ready/available replicas, observedGeneration, Available and Progressing
    conditions, with ProgressDeadlineExceeded after ``progressDeadlineSeconds`` without progress).
    ``on_ready`` hooks get (deployment name, image, template labels) once per rollout that became ready.
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        ready_delay: float = 0.2,
        interval: float = 0.05,
        on_ready: list[ReadyHook] | None = None,
    ) -> None:
        api.user_agent = CONTROLLER_AGENT
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.ready_delay = ready_delay
        self.interval = interval
        self.on_ready = on_ready if on_ready is not None else []
        self.errors: list[BaseException] = []
        self._born: dict[tuple[str, str], float] = {}  # pod (namespace, name) -> when it was created
        self._written: dict[tuple[str, str, str], Any] = {}  # (kind, namespace, name) -> last status written
        self._rollouts: dict[tuple[str, str], _Rollout] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-kube-controller", daemon=True)

    def start(self) -> FakeController:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._thread.is_alive():
            raise RuntimeError("the simulated controller did not stop within 10 s")
        if self.errors:
            raise RuntimeError(f"the simulated controller failed: {self.errors[0]!r}") from self.errors[0]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except ApiException as exc:
                if exc.status not in (404, 409):  # an object deleted or re-created meanwhile: next tick
                    self._fail(exc)
            except Exception as exc:  # reported at stop(), so the test sees it
                self._fail(exc)
            self._stop.wait(self.interval)

    def _fail(self, exc: BaseException) -> None:
        log.exception("simulated controller: %r", exc)
        if len(self.errors) < 10:
            self.errors.append(exc)

    def _items(self, response: Any) -> list[dict[str, Any]]:
        return json.loads(response.data)["items"]

    def reconcile(self) -> None:
        """One pass over all Deployments (public so a test can step the controller by hand)."""
        deployments = self._items(self.apps.list_deployment_for_all_namespaces(_preload_content=False))
        pods = self._items(self.core.list_pod_for_all_namespaces(_preload_content=False))
        for deployment in deployments:
            namespace = deployment["metadata"].get("namespace")
            self._sync(deployment, [pod for pod in pods if pod["metadata"].get("namespace") == namespace])
        alive = {(pod["metadata"].get("namespace"), pod["metadata"]["name"]) for pod in pods}
        self._born = {key: born for key, born in self._born.items() if key in alive}

    def _sync(self, deployment: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        meta, spec = deployment["metadata"], deployment.get("spec") or {}
        namespace, name = meta.get("namespace"), meta["name"]
        replicas = spec.get("replicas", 1)
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        containers = (template.get("spec") or {}).get("containers") or [{}]
        image = containers[0].get("image", "")

        if not selector:  # the API server refuses such a Deployment; nothing to do
            return
        mine = [pod for pod in pods if _has_labels(pod, selector) and not pod["metadata"].get("deletionTimestamp")]
        current = [pod for pod in mine if _pod_labels(pod) == labels and _pod_image(pod) == image]
        old = [pod for pod in mine if pod not in current]

        # ReplicaSet: as many pods of the current template as desired, surplus ones (not ready first) go.
        current.sort(key=lambda pod: (self._is_ready_now(pod, image), pod["metadata"]["name"]), reverse=True)
        for pod in current[replicas:]:
            self._delete_pod(namespace, pod["metadata"]["name"])
        current = current[:replicas]
        for _ in range(replicas - len(current)):
            current.append(self._create_pod(namespace, name, labels, template.get("spec") or {}))

        # Scheduler + kubelet: each pod's status follows from its image and age.
        ready_current = 0
        for pod in current:
            status, ready = self._pod_status(pod, image, now)
            ready_current += ready
            key = ("pod", namespace, pod["metadata"]["name"])
            if self._written.get(key) != status:
                self.core.patch_namespaced_pod_status(
                    pod["metadata"]["name"], namespace, {"status": status}, _preload_content=False
                )
                self._written[key] = status

        # The old template's pods go once the new ones are all Ready (or at once when scaling to 0).
        if old and ready_current >= replicas:
            for pod in old:
                self._delete_pod(namespace, pod["metadata"]["name"])
            old = []

        fingerprint = (json.dumps(labels, sort_keys=True), image, replicas)
        rollout = self._rollouts.get((namespace, name))
        if rollout is None or rollout.fingerprint != fingerprint:
            rollout = self._rollouts[(namespace, name)] = _Rollout(fingerprint, last_progress=now)
        if ready_current > rollout.best_ready:
            rollout.best_ready, rollout.last_progress = ready_current, now
        complete = ready_current >= replicas and not old
        deadline = spec.get("progressDeadlineSeconds", 600)
        if complete:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.')
        elif now - rollout.last_progress > deadline:
            progressing = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{name}" has timed out progressing.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
        ready_all = ready_current + sum(1 for pod in old if _is_ready(pod))
        available = ready_all >= replicas
        status = {
            "observedGeneration": meta.get("generation"),
            "replicas": len(current) + len(old),
            "updatedReplicas": len(current),
            "readyReplicas": ready_all,
            "availableReplicas": ready_all,
            "unavailableReplicas": max(replicas - ready_all, 0),
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                },
                {"type": "Progressing", "status": progressing[0], "reason": progressing[1], "message": progressing[2]},
            ],
        }
        key = ("deployment", namespace, name)
        if self._written.get(key) != status:
            stamped = json.loads(json.dumps(status))
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for condition in stamped["conditions"]:
                condition["lastUpdateTime"] = condition["lastTransitionTime"] = stamp
            self.apps.patch_namespaced_deployment_status(name, namespace, {"status": stamped}, _preload_content=False)
            self._written[key] = status

        if complete and replicas and not rollout.announced:
            rollout.announced = True
            for hook in list(self.on_ready):
                hook(name, image, dict(labels))

    def _create_pod(
        self, namespace: str, deployment: str, labels: dict[str, str], spec: dict[str, Any]
    ) -> dict[str, Any]:
        name = f"{deployment}-{''.join(random.choices(_POD_NAME_CHARS, k=5))}"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": json.loads(json.dumps(spec)),
        }
        self.core.create_namespaced_pod(namespace, body, _preload_content=False)
        self._born[(namespace, name)] = time.monotonic()
        return body

    def _delete_pod(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status != 404:
                raise
        self._born.pop((namespace, name), None)
        self._written.pop(("pod", namespace, name), None)

    def _age(self, pod: dict[str, Any], now: float) -> float:
        key = (pod["metadata"].get("namespace"), pod["metadata"]["name"])
        return now - self._born.setdefault(key, now)  # a pod made by someone else is adopted as new

    def _is_ready_now(self, pod: dict[str, Any], image: str) -> bool:
        return self._pod_status(pod, image, time.monotonic())[1]

    def _pod_status(self, pod: dict[str, Any], image: str, now: float) -> tuple[dict[str, Any], bool]:
        age = self._age(pod, now)
        name = pod["metadata"]["name"]
        container = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "app")
        scheduled = {"type": "PodScheduled", "status": "True"}
        if "unschedulable" in image:
            condition = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": UNSCHEDULABLE_MESSAGE,
            }
            return {"phase": "Pending", "conditions": [condition], "containerStatuses": None}, False
        not_ready = {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}
        if "stuck" in image or age < self.ready_delay:
            waiting = {"reason": "ContainerCreating"}
            statuses = [_container(container, image, False, 0, {"waiting": waiting})]
            return {"phase": "Pending", "conditions": [scheduled, not_ready], "containerStatuses": statuses}, False
        if "crashloop" in image:
            restarts = 1 + int(age - self.ready_delay)  # one more restart every second
            waiting = {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 10s restarting failed container={container} pod={name}",
            }
            status = _container(container, image, False, restarts, {"waiting": waiting})
            status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error"}}
            return {"phase": "Running", "conditions": [scheduled, not_ready], "containerStatuses": [status]}, False
        ready = {"type": "Ready", "status": "True"}
        statuses = [_container(container, image, True, 0, {"running": {}})]
        return {"phase": "Running", "conditions": [scheduled, ready], "containerStatuses": statuses}, True


def _container(name: str, image: str, ready: bool, restarts: int, state: dict[str, Any]) -> dict[str, Any]:
    # imageID is required by the client's models; the kubelet leaves it empty until the image is pulled.
    image_id = f"docker.io/{image}@sha256:{'0' * 64}" if "running" in state else ""
    return {
        "name": name,
        "image": image,
        "imageID": image_id,
        "ready": ready,
        "started": "running" in state,
        "restartCount": restarts,
        "state": state,
    }


def _pod_labels(pod: dict[str, Any]) -> dict[str, str]:
    return pod["metadata"].get("labels") or {}


def _has_labels(pod: dict[str, Any], wanted: dict[str, str]) -> bool:
    labels = _pod_labels(pod)
    return all(labels.get(key) == value for key, value in wanted.items())


def _pod_image(pod: dict[str, Any]) -> str:
    return (((pod.get("spec") or {}).get("containers") or [{}])[0]).get("image", "")


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


@dataclass
class FakeCluster:
    emulator: kmock.KubernetesEmulator
    url: str
    denied: set[tuple[str, str]] = field(default_factory=set)  # (verb, resource)
    on_ready: list[ReadyHook] = field(default_factory=list)  # see FakeController
    controller: FakeController | None = None

    def api(self) -> client.ApiClient:
        config = client.Configuration()
        config.host = self.url
        return client.ApiClient(config)

    def access_review(self, request: kmock.Request) -> dict:
        body = request.data
        attrs = body.get("spec", {}).get("resourceAttributes", {})
        allowed = (attrs.get("verb"), attrs.get("resource")) not in self.denied
        # A real API server answers a review without keeping it; the emulator stored it (with no name),
        # which would make the next review a 409 — forget it, as the real server does.
        for key in [k for k in self.emulator.objects if "selfsubjectaccessreviews" in str(k)]:
            del self.emulator.objects[key]
        return body | {"status": {"allowed": allowed, "reason": "" if allowed else "denied by the test"}}

    def start_controller(self, ready_delay: float = 0.2, interval: float = 0.05) -> FakeController:
        """Start the simulated controller; it stops at the end of the test (or with stop_controller)."""
        if self.controller is None:
            self.controller = FakeController(
                self.api(), ready_delay=ready_delay, interval=interval, on_ready=self.on_ready
            ).start()
        return self.controller

    def stop_controller(self) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.stop()

    def fail_next(self, method: str, path: str, status: int = 500, times: int = 1) -> None:
        """Answer the next ``times`` requests ``method path`` (exact path) with ``status``, then behave again.

        A kmock reaction whose payload is a callable: it answers with a Kubernetes Status error while its
        budget lasts, then returns StopIteration, which makes kmock retire the reaction and fall through to
        the emulator. The simulated controller's requests are never failed. Beware: the emulator records a
        create/patch/delete *before* any reaction answers, so a failed write was still applied — as when
        a real API server applied a change but the answer was lost (a retried create then gets 409).
        """
        budget = [times]

        def answer(request: kmock.Request) -> object:
            if budget[0] <= 0:
                return StopIteration()
            budget[0] -= 1
            return kmock.KubernetesError(
                status=status,
                reason=_REASONS.get(status, "Injected"),
                message=f"injected by the test: {method.upper()} {path} answers {status}",
                details={"injected": True},
            )

        not_controller = self.emulator[f"{method.lower()} {path}"][
            lambda request: request.headers.get("User-Agent") != CONTROLLER_AGENT
        ]
        not_controller << answer

    def requests(self, method: str, path: str) -> int:
        """How many ``method path`` requests the code under test made (the controller's are not logged)."""
        return len(self.emulator[f"{method.lower()} {path}"])


@contextlib.contextmanager
def running_cluster() -> Iterator[FakeCluster]:
    """The API emulator on a loopback port, served from a background thread, until the block ends.

    What the ``cluster`` fixture yields, usable without pytest (the benchmarks use it).
    """
    ready = threading.Event()
    box: dict = {}

    async def serve() -> None:
        async with Emulator() as emulator, kmock.Server(emulator) as server:
            box.update(
                emulator=emulator,
                url=str(server.url).rstrip("/"),
                loop=asyncio.get_running_loop(),
                stop=asyncio.Event(),
            )
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the Kubernetes API emulator did not start")
    fake = FakeCluster(box["emulator"], box["url"])
    for resource in RESOURCES:
        fake.emulator.resources[resource] = {}
    fake.emulator["get /version/"] << VERSION
    fake.emulator["post /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"] << fake.access_review
    try:
        yield fake
    finally:
        try:
            fake.stop_controller()  # before the server goes, or its last requests fail
        finally:
            box["loop"].call_soon_threadsafe(box["stop"].set)
            thread.join(timeout=10)


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    with running_cluster() as fake:
        yield fake
