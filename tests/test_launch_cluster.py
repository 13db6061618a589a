"""PLOS preflight against a stateful Kubernetes API server on loopback, with the official client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client

from framework2.tasks.launch.cluster import (
    COLOUR_LABEL,
    ClusterError,
    ReleaseInProgress,
    ReleaseTarget,
    acquire_release_lock,
    lock_name,
    preflight,
    release_lock,
)
from tests.k8s_fixtures import FakeCluster

TARGET = ReleaseTarget(namespace="shop", app="web", active_service="web", preview_service="web-preview")
HOUR = timedelta(hours=1)


def services(api: client.ApiClient, colour: str | None = "blue") -> None:
    core = client.CoreV1Api(api)
    for name in ("web", "web-preview"):
        selector = {"app": "web"} | ({COLOUR_LABEL: colour} if colour else {})
        core.create_namespaced_service(
            "shop",
            client.V1Service(
                metadata=client.V1ObjectMeta(name=name, namespace="shop"), spec=client.V1ServiceSpec(selector=selector)
            ),
        )


def test_preflight_reads_the_live_colour_and_takes_the_lock(cluster: FakeCluster) -> None:
    api = cluster.api()
    services(api, "blue")
    result = preflight(api, TARGET, holder="flow-run-1", ttl=HOUR)
    assert result.server_version == "v1.31.0-kmock"
    assert (result.active_colour, result.next_colour) == ("blue", "green")
    lease = client.CoordinationV1Api(api).read_namespaced_lease(lock_name("web"), "shop")
    assert lease.spec.holder_identity == "flow-run-1"


def test_first_release_without_a_colour_goes_blue(cluster: FakeCluster) -> None:
    api = cluster.api()
    services(api, None)
    assert preflight(api, TARGET, holder="r", ttl=HOUR).next_colour == "blue"


def test_second_concurrent_release_refuses_and_names_the_holder(cluster: FakeCluster) -> None:
    api = cluster.api()
    services(api)
    preflight(api, TARGET, holder="flow-run-1", ttl=HOUR)
    with pytest.raises(ReleaseInProgress) as err:
        preflight(api, TARGET, holder="flow-run-2", ttl=HOUR)
    assert "'flow-run-1'" in err.value.message and "plos-rollback" in err.value.hint


def test_the_same_run_resumes_with_its_own_lock(cluster: FakeCluster) -> None:
    api = cluster.api()
    first = acquire_release_lock(api, TARGET, "flow-run-1", HOUR)
    again = acquire_release_lock(api, TARGET, "flow-run-1", HOUR)
    assert again.holder == first.holder == "flow-run-1"


def test_an_expired_lock_of_a_crashed_run_is_taken_over(cluster: FakeCluster) -> None:
    api = cluster.api()
    stale = datetime.now(UTC) - timedelta(hours=2)
    client.CoordinationV1Api(api).create_namespaced_lease(
        "shop",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name=lock_name("web"), namespace="shop"),
            spec=client.V1LeaseSpec(
                holder_identity="crashed-run", lease_duration_seconds=60, acquire_time=stale, renew_time=stale
            ),
        ),
    )
    lock = acquire_release_lock(api, TARGET, "flow-run-2", HOUR)
    assert lock.holder == "flow-run-2"
    release_lock(api, lock)
    with pytest.raises(client.ApiException):
        client.CoordinationV1Api(api).read_namespaced_lease(lock_name("web"), "shop")


def test_a_lock_released_between_our_create_and_our_read_is_taken(
    cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cluster.api()
    held = acquire_release_lock(api, TARGET, "flow-run-1", HOUR)
    read = client.CoordinationV1Api.read_namespaced_lease

    def holder_lets_go_first(self: client.CoordinationV1Api, name: str, namespace: str, **kwargs: object) -> object:
        # The running release ends (and frees its lock) just after our create was refused with 409.
        monkeypatch.setattr(client.CoordinationV1Api, "read_namespaced_lease", read)
        release_lock(api, held)
        return read(self, name, namespace, **kwargs)

    monkeypatch.setattr(client.CoordinationV1Api, "read_namespaced_lease", holder_lets_go_first)
    lock = acquire_release_lock(api, TARGET, "flow-run-2", HOUR)
    assert lock.holder == "flow-run-2"
    assert client.CoordinationV1Api(api).read_namespaced_lease(lock_name("web"), "shop").spec.holder_identity == (
        "flow-run-2"
    )


def test_release_lock_leaves_someone_elses_lock_alone(cluster: FakeCluster) -> None:
    api = cluster.api()
    mine = acquire_release_lock(api, TARGET, "flow-run-1", HOUR)
    release_lock(api, mine)
    theirs = acquire_release_lock(api, TARGET, "flow-run-2", HOUR)
    release_lock(api, mine)  # a late cleanup of the first run must not free the second run's lock
    lease = client.CoordinationV1Api(api).read_namespaced_lease(lock_name("web"), "shop")
    assert lease.spec.holder_identity == theirs.holder


def test_missing_permissions_are_listed_before_anything_changes(cluster: FakeCluster) -> None:
    api = cluster.api()
    services(api)
    cluster.denied = {("patch", "services"), ("create", "deployments")}
    with pytest.raises(ClusterError) as err:
        preflight(api, TARGET, holder="r", ttl=HOUR)
    assert "patch services" in err.value.message and "create deployments.apps" in err.value.message
    assert "plos-rbac.yaml" in err.value.hint
    with pytest.raises(client.ApiException):  # no lock was taken
        client.CoordinationV1Api(api).read_namespaced_lease(lock_name("web"), "shop")


def test_missing_service_is_a_clear_error(cluster: FakeCluster) -> None:
    with pytest.raises(ClusterError, match="service 'web' does not exist in namespace 'shop'"):
        preflight(cluster.api(), TARGET, holder="r", ttl=HOUR)


def test_unreachable_cluster_is_a_clear_error() -> None:
    config = client.Configuration()
    config.host = "http://127.0.0.1:1"
    with pytest.raises(ClusterError, match="cannot reach the Kubernetes API at http://127.0.0.1:1"):
        preflight(client.ApiClient(config), TARGET, holder="r", ttl=HOUR)


def test_bad_names_are_refused_before_any_call() -> None:
    with pytest.raises(ValueError, match="not a valid Kubernetes name"):
        ReleaseTarget(namespace="Shop", app="web", active_service="web", preview_service="web-preview")


def test_cluster_block_builds_a_client_that_sends_the_token(cluster: FakeCluster) -> None:
    from framework2.blocks.kubernetes_cluster import KubernetesCluster

    block = KubernetesCluster(api_server=cluster.url, token="s3cr3t-token", verify_tls=False)
    assert "s3cr3t-token" not in repr(block)
    api = block.api_client()
    assert client.VersionApi(api).get_code().git_version == "v1.31.0-kmock"
    request = cluster.emulator["get /version/"][-1]  # what the server received
    assert request.headers["Authorization"] == "Bearer s3cr3t-token"
    with pytest.raises(ValueError, match="must start with https://"):
        KubernetesCluster(api_server="k8s.example.com:6443")
