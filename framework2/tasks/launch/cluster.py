"""PLOS preflight against the cluster: reachable, permitted, which colour is live, and the release lock.

The lock is a ``coordination.k8s.io/v1`` Lease named ``plos-release-<app>``: creating it is atomic in
the API server (a second create answers 409), it names its holder and expires, so two release runs of
one app cannot interleave and a crashed run does not block the app forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, Field, field_validator

from framework2.errors import Framework2Error
from framework2.tasks.launch.kapi import with_retries

COLOURS = ("blue", "green")
COLOUR_LABEL = "framework2.io/colour"

# (verb, API group, resource) PLOS needs in the namespace it releases into; k8s/plos-rbac.yaml grants these.
REQUIRED_PERMISSIONS: tuple[tuple[str, str, str], ...] = (
    ("get", "", "services"),
    ("patch", "", "services"),
    ("list", "", "pods"),
    ("watch", "", "pods"),
    ("get", "apps", "deployments"),
    ("create", "apps", "deployments"),
    ("patch", "apps", "deployments"),
    ("delete", "apps", "deployments"),
    ("get", "coordination.k8s.io", "leases"),
    ("create", "coordination.k8s.io", "leases"),
    ("patch", "coordination.k8s.io", "leases"),
    ("delete", "coordination.k8s.io", "leases"),
    ("get", "autoscaling", "horizontalpodautoscalers"),
    ("create", "autoscaling", "horizontalpodautoscalers"),
    ("patch", "autoscaling", "horizontalpodautoscalers"),
    ("delete", "autoscaling", "horizontalpodautoscalers"),
)


class ClusterError(Framework2Error):
    """The cluster cannot be used for this release as it is (unreachable, forbidden, missing objects)."""


class ReleaseInProgress(ClusterError):
    """Another release of the same app holds the lock."""


class ReleaseTarget(BaseModel):
    """Where a release goes: the app and the two Services of blue-green."""

    namespace: str = Field(..., min_length=1, description="Namespace of the app.")
    app: str = Field(..., min_length=1, description="App name; Deployments are <app>-blue and <app>-green.")
    active_service: str = Field(..., min_length=1, description="Service that carries production traffic.")
    preview_service: str = Field(..., min_length=1, description="Service pointing at the new colour for analysis.")

    @field_validator("namespace", "app", "active_service", "preview_service")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if value != value.lower() or not value.replace("-", "").isalnum() or value.startswith("-"):
            raise ValueError(f"{value!r} is not a valid Kubernetes name (lower-case letters, digits and '-')")
        return value


def _reason(exc: Exception) -> str:
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status} {exc.reason}".strip()
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:200]


def server_version(api: client.ApiClient) -> str:
    """The API server's version; a ClusterError when it cannot be reached."""
    try:
        return str(client.VersionApi(api).get_code(_request_timeout=10).git_version)
    except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise ClusterError(
            f"cannot reach the Kubernetes API at {api.configuration.host}: {_reason(exc)}",
            hint="check the kubernetes-cluster block (address, token, CA) and that the cluster is up",
        ) from exc


def missing_permissions(api: client.ApiClient, namespace: str) -> list[str]:
    """Which of the required verbs PLOS may not use in ``namespace`` (asked with SelfSubjectAccessReview)."""
    auth = client.AuthorizationV1Api(api)
    missing = []
    for verb, group, resource in REQUIRED_PERMISSIONS:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb=verb, group=group, resource=resource
                )
            )
        )
        answer = auth.create_self_subject_access_review(review)
        if not (answer.status and answer.status.allowed):
            missing.append(f"{verb} {resource}{'.' + group if group else ''}")
    return missing


def read_service(api: client.ApiClient, target: ReleaseTarget, name: str) -> Any:
    """A Service of the release; a ClusterError saying what to do when it does not exist."""
    try:
        return with_retries(client.CoreV1Api(api).read_namespaced_service, name, target.namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise ClusterError(
                f"service {name!r} does not exist in namespace {target.namespace!r}",
                hint="create the active and preview Services first (see k8s/example-app.yaml) or fix the names",
            ) from exc
        raise


def active_colour(api: client.ApiClient, target: ReleaseTarget) -> str | None:
    """The colour the active Service selects now (None on a first release with no colour yet)."""
    service = read_service(api, target, target.active_service)
    colour = (service.spec.selector or {}).get(COLOUR_LABEL)
    if colour is not None and colour not in COLOURS:
        raise ClusterError(
            f"service {target.active_service!r} selects {COLOUR_LABEL}={colour!r}, not blue or green",
            hint=f"set its selector to {COLOUR_LABEL}: blue (or green) before the first PLOS release",
        )
    return colour


def other_colour(colour: str | None) -> str:
    """The colour the next release deploys to."""
    return "green" if colour == "blue" else "blue"


@dataclass(frozen=True)
class ReleaseLock:
    namespace: str
    name: str
    holder: str
    expires_at: datetime


def lock_name(app: str) -> str:
    return f"plos-release-{app}"


def micro_time(moment: datetime) -> str:
    """A Lease time as the API server parses it (MicroTime: always six fractional digits, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_now() -> datetime:
    """Now, never on a whole second: the client writes datetimes with isoformat(), which drops the fraction
    when the microseconds are zero, and the API server refuses a Lease time without its six digits."""
    now = datetime.now(UTC)
    return now if now.microsecond else now.replace(microsecond=1)


def _lease_expiry(lease: Any) -> datetime:
    spec = lease.spec
    start = spec.renew_time or spec.acquire_time or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return start + timedelta(seconds=spec.lease_duration_seconds or 0)


def acquire_release_lock(
    api: client.ApiClient,
    target: ReleaseTarget,
    holder: str,
    ttl: timedelta,
    *,
    holder_alive: Callable[[str], bool | None] | None = None,
) -> ReleaseLock:
    """Take the app's release lock, or raise ReleaseInProgress naming who holds it and until when.

    An expired lock (its holder stopped renewing it) is taken over once; the same holder may take its own
    lock again, so a re-run of a crashed release resumes instead of locking itself out. ``holder_alive``
    may say sooner that a holder is gone (False: its flow run ended), so the lock need not run out first.
    """
    leases = client.CoordinationV1Api(api)
    name = lock_name(target.app)
    for _attempt in range(2):
        now = lease_now()
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=name, namespace=target.namespace, labels={"app": target.app}),
            spec=client.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=int(ttl.total_seconds()),
                acquire_time=now,
                renew_time=now,
            ),
        )
        try:
            with_retries(leases.create_namespaced_lease, target.namespace, body)
            return ReleaseLock(target.namespace, name, holder, now + ttl)
        except ApiException as exc:
            if exc.status != 409:
                raise
        try:
            current = with_retries(leases.read_namespaced_lease, name, target.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            continue  # released between our create and our read: create it again
        expires = _lease_expiry(current)
        if current.spec.holder_identity == holder:
            return ReleaseLock(target.namespace, name, holder, expires)
        alive = holder_alive(current.spec.holder_identity or "") if holder_alive else None
        if expires > datetime.now(UTC) and alive is not False:
            raise ReleaseInProgress(
                f"another release of {target.app!r} is in progress: held by {current.spec.holder_identity!r} "
                f"until {expires:%Y-%m-%d %H:%M:%S} UTC",
                hint="wait for it to finish, or run plos-rollback / plos-release-status for that release",
            )
        try:  # expired or its holder's run ended: take it over — only that very lock, not a newer one
            preconditions = client.V1Preconditions(
                uid=current.metadata.uid, resource_version=current.metadata.resource_version
            )
            leases.delete_namespaced_lease(
                name, target.namespace, body=client.V1DeleteOptions(preconditions=preconditions)
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or someone else took it over first: try again
                raise
    raise ReleaseInProgress(f"could not take the release lock of {target.app!r}", hint="try again")


def renew_release_lock(api: client.ApiClient, lock: ReleaseLock) -> bool:
    """Move the lock's renew time to now; False if someone else holds it now (we lost it)."""
    leases = client.CoordinationV1Api(api)
    current = leases.read_namespaced_lease(lock.name, lock.namespace)
    if current.spec.holder_identity != lock.holder:
        return False
    leases.patch_namespaced_lease(lock.name, lock.namespace, {"spec": {"renewTime": micro_time(datetime.now(UTC))}})
    return True


class LockKeeper:
    """Renews a release lock in the background while a release runs (also while it is paused).

    When the process dies the renewals stop and the lock runs out after its TTL, so a re-run or
    ``plos-rollback`` can take over without anyone deleting the lock by hand.
    """

    def __init__(self, api: client.ApiClient, lock: ReleaseLock, ttl: timedelta) -> None:
        self.api, self.lock, self.ttl = api, lock, ttl.total_seconds()
        self.period = max(1.0, self.ttl / 3)
        self.lost = False
        self._renewed = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lock-{lock.name}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                if not renew_release_lock(self.api, self.lock):
                    self.lost = True
                    return
                self._renewed = time.monotonic()
            except Exception:  # a blip of the API server: try again next period, the TTL has slack
                if time.monotonic() - self._renewed > self.ttl:
                    self.lost = True  # it may have run out and been taken over meanwhile

    def check(self) -> None:
        """Raise if the lock may no longer be ours, before a change another release could be making too."""
        if self.lost:
            raise ReleaseInProgress(
                f"lost the release lock {self.lock.name} (not renewed within its TTL, or taken over)",
                hint="another run may be releasing this app now; see plos-release-status before acting",
            )

    def __enter__(self) -> LockKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def release_lock(api: client.ApiClient, lock: ReleaseLock) -> None:
    """Give the lock back, only if we still hold it."""
    leases = client.CoordinationV1Api(api)
    try:
        current = leases.read_namespaced_lease(lock.name, lock.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return
        raise
    if current.spec.holder_identity == lock.holder:
        with_retries(leases.delete_namespaced_lease, lock.name, lock.namespace)


@dataclass(frozen=True)
class Preflight:
    server_version: str
    active_colour: str | None
    next_colour: str
    lock: ReleaseLock | None


def preflight(
    api: client.ApiClient,
    target: ReleaseTarget,
    holder: str,
    ttl: timedelta,
    *,
    holder_alive: Callable[[str], bool | None] | None = None,
    take_lock: bool = True,
) -> Preflight:
    """Everything checked before a release changes anything; the lock is taken last (not on a dry run)."""
    version = server_version(api)
    missing = missing_permissions(api, target.namespace)
    if missing:
        raise ClusterError(
            f"PLOS may not {', '.join(missing)} in namespace {target.namespace!r}",
            hint="apply k8s/plos-rbac.yaml for this namespace (or grant these verbs to the PLOS service account)",
        )
    colour = active_colour(api, target)
    read_service(api, target, target.preview_service)
    lock = acquire_release_lock(api, target, holder, ttl, holder_alive=holder_alive) if take_lock else None
    return Preflight(version, colour, other_colour(colour), lock)
