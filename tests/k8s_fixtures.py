"""A stateful Kubernetes API server on loopback (kmock's emulator) for the official, synchronous client.

The emulator is an aiohttp app; it runs on its own event loop in a background thread so the blocking
``kubernetes`` client can talk to it over real HTTP from the test's thread. It keeps objects (create,
patch, delete, 409 on a duplicate create). What it does not compute, a real API server would:
``/version/`` and SelfSubjectAccessReview answers are added here, with permissions a test can deny.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import kmock
import pytest
from kubernetes import client

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


@dataclass
class FakeCluster:
    emulator: kmock.KubernetesEmulator
    url: str
    denied: set[tuple[str, str]] = field(default_factory=set)  # (verb, resource)

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


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    ready = threading.Event()
    box: dict = {}

    async def serve() -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
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
    assert ready.wait(15), "the Kubernetes API emulator did not start"
    fake = FakeCluster(box["emulator"], box["url"])
    for resource in RESOURCES:
        fake.emulator.resources[resource] = {}
    fake.emulator["get /version/"] << VERSION
    fake.emulator["post /apis/authorization.k8s.io/v1/selfsubjectaccessreviews"] << fake.access_review
    yield fake
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(timeout=10)
