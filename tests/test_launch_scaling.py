"""PLOS scale-up on demand against the API emulator: the autoscaler's floor goes up, within a ceiling and a
cooldown, with a patch of only what changes; and the ``plos-scale-up`` flow once on a real Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from prefect.artifacts import Artifact

from framework2.blocks.kubernetes_cluster import KubernetesCluster
from framework2.errors import ConfigError
from framework2.flows.launch import scale_up
from framework2.tasks.launch.cluster import COLOUR_LABEL, ClusterError, ReleaseTarget
from framework2.tasks.launch.rollout import HpaSettings, upsert_hpa
from framework2.tasks.launch.scaling import (
    LAST_SCALE_UP,
    SCALE_UP_REASON,
    InvalidScaleUp,
    raise_capacity,
    scale_target,
)
from tests.k8s_fixtures import FakeCluster

TARGET = scale_target("web", "shop")
HPA = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SLOW = "p95 340 ms > 100 ms on https://shop.example.com/checkout"


@pytest.fixture
def api(cluster: FakeCluster) -> Iterator[client.ApiClient]:
    """The app as PLOS leaves it after a release: traffic on blue, its HPA (3..5 pods at 70 % CPU) on blue."""
    api = cluster.api()
    client.CoreV1Api(api).create_namespaced_service(
        "shop",
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web-active", namespace="shop"),
            spec=client.V1ServiceSpec(selector={"app": "web", COLOUR_LABEL: "blue"}),
        ),
    )
    upsert_hpa(api, TARGET, "blue", HpaSettings(min_replicas=3, max_replicas=5, cpu_utilization_percent=70))
    yield api
    api.close()


def read_hpa(api: client.ApiClient) -> Any:
    return client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("web", "shop")


def set_limits(api: client.ApiClient, min_replicas: int, max_replicas: int) -> None:
    body = {"spec": {"minReplicas": min_replicas, "maxReplicas": max_replicas}}
    client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler("web", "shop", body)


def test_scaling_raises_the_floor_by_the_step_and_keeps_the_rest_of_the_spec(
    api: client.ApiClient, cluster: FakeCluster
) -> None:
    before = read_hpa(api).spec.to_dict()
    result = raise_capacity(api, TARGET, step=1, reason=SLOW, now=T0)
    assert (result.action, result.colour, result.reason) == ("scaled", "blue", SLOW)
    assert (result.min_before, result.min_after, result.max_before, result.max_after) == (3, 4, 5, 5)
    assert result.ceiling == 10 and result.next_allowed_at is None
    after = read_hpa(api).spec.to_dict()
    assert after == before | {"min_replicas": 4}  # metrics, target ref and maxReplicas untouched
    [patch] = list(cluster.emulator[f"patch {HPA}/web"])
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.data["spec"] == {"minReplicas": 4}  # only what changed, never a replace


def test_max_replicas_rises_with_the_floor_when_the_floor_would_pass_it(api: client.ApiClient) -> None:
    set_limits(api, 5, 5)
    result = raise_capacity(api, TARGET, step=2, reason=SLOW, now=T0)
    assert (result.action, result.min_after, result.max_after) == ("scaled", 7, 7)
    spec = read_hpa(api).spec
    assert (spec.min_replicas, spec.max_replicas) == (7, 7)


def test_the_ceiling_stops_it_and_does_not_creep_with_each_raise(api: client.ApiClient, cluster: FakeCluster) -> None:
    set_limits(api, 3, 4)  # default ceiling: 2 × 4 = 8
    first = raise_capacity(api, TARGET, step=10, reason=SLOW, now=T0)
    assert (first.action, first.min_after, first.max_after, first.ceiling) == ("scaled", 8, 8, 8)
    # maxReplicas is 8 now, but the ceiling stays twice the 4 it had before PLOS raised it, not 16.
    later = raise_capacity(api, TARGET, reason=SLOW, now=T0 + timedelta(hours=1))
    assert (later.action, later.min_after, later.ceiling) == ("at ceiling", 8, 8)
    assert "ceiling is 8" in later.detail
    assert cluster.requests("patch", f"{HPA}/web") == 2  # set_limits + the first raise only
    # An explicit ceiling wins; at it, nothing is patched.
    assert raise_capacity(api, TARGET, ceiling=8, now=T0 + timedelta(hours=2)).action == "at ceiling"
    assert (read_hpa(api).spec.min_replicas, read_hpa(api).spec.max_replicas) == (8, 8)


def test_a_release_that_resets_the_limits_sets_a_new_base_for_the_ceiling(api: client.ApiClient) -> None:
    raise_capacity(api, TARGET, step=3, reason=SLOW, now=T0)  # 3..5 → 6..6, base 5
    upsert_hpa(api, TARGET, "blue", HpaSettings(min_replicas=3, max_replicas=7))  # the next release
    result = raise_capacity(api, TARGET, reason=SLOW, now=T0 + timedelta(hours=1))
    assert (result.action, result.min_after, result.max_after, result.ceiling) == ("scaled", 4, 7, 14)


def test_a_second_call_within_the_cooldown_does_nothing_and_says_when_the_next_is_allowed(
    api: client.ApiClient, cluster: FakeCluster
) -> None:
    assert raise_capacity(api, TARGET, reason=SLOW, now=T0).action == "scaled"
    again = raise_capacity(api, TARGET, reason="another alert", now=T0 + timedelta(minutes=3))
    assert again.action == "cooling down"
    assert again.next_allowed_at == T0 + timedelta(minutes=10)
    assert (again.min_before, again.min_after) == (4, 4)
    assert SLOW in again.detail and "09:10:00" in again.detail
    assert read_hpa(api).spec.min_replicas == 4
    assert read_hpa(api).metadata.annotations[SCALE_UP_REASON] == SLOW  # the refused one left no trace
    assert cluster.requests("patch", f"{HPA}/web") == 1


def test_after_the_cooldown_it_scales_again(api: client.ApiClient) -> None:
    raise_capacity(api, TARGET, reason=SLOW, now=T0)
    short = timedelta(minutes=2)
    result = raise_capacity(api, TARGET, reason="still slow", cooldown=short, now=T0 + short)
    assert (result.action, result.min_before, result.min_after) == ("scaled", 4, 5)
    assert read_hpa(api).metadata.annotations[LAST_SCALE_UP] == (T0 + short).isoformat(timespec="microseconds")


def test_the_annotations_hold_the_time_and_the_reason(api: client.ApiClient) -> None:
    raise_capacity(api, TARGET, reason=f"  {SLOW}\n", now=T0)
    annotations = read_hpa(api).metadata.annotations
    assert annotations[SCALE_UP_REASON] == SLOW
    assert datetime.fromisoformat(annotations[LAST_SCALE_UP]) == T0
    raise_capacity(api, TARGET, now=T0 + timedelta(hours=1))
    assert read_hpa(api).metadata.annotations[SCALE_UP_REASON] == "no reason given"


def test_an_app_without_an_autoscaler_is_told_how_to_get_one(cluster: FakeCluster) -> None:
    api = cluster.api()
    result = raise_capacity(api, scale_target("shop-api", "shop"), reason=SLOW, now=T0)
    api.close()
    assert result.action == "no autoscaler" and result.min_before is None
    assert "no autoscaler" in result.detail and "plos-blue-green-release" in result.detail


def test_an_autoscaler_on_the_idle_colour_or_not_made_by_plos_is_refused(api: client.ApiClient) -> None:
    upsert_hpa(api, TARGET, "green", HpaSettings(min_replicas=3, max_replicas=5))  # traffic is on blue
    with pytest.raises(ClusterError, match="scales web-green, but traffic is on blue") as idle:
        raise_capacity(api, TARGET, reason=SLOW, now=T0)
    assert "plos-release-status" in idle.value.hint
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web-legacy"}
    client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler(
        "web", "shop", {"spec": {"scaleTargetRef": ref}}
    )
    with pytest.raises(ClusterError, match="predates PLOS|web-legacy"):
        raise_capacity(api, TARGET, reason=SLOW, now=T0)
    assert read_hpa(api).spec.min_replicas == 3


def test_without_the_active_service_the_autoscalers_own_target_is_scaled(cluster: FakeCluster) -> None:
    api = cluster.api()
    target = ReleaseTarget(namespace="shop", app="web", active_service="web-live", preview_service="web-preview")
    upsert_hpa(api, target, "green", HpaSettings(min_replicas=2, max_replicas=4))
    result = raise_capacity(api, target, reason=SLOW, now=T0)
    api.close()
    assert (result.action, result.colour, result.min_after) == ("scaled", "green", 3)


def test_a_lost_answer_to_the_patch_does_not_raise_twice(api: client.ApiClient, cluster: FakeCluster) -> None:
    # The emulator applies the patch, then answers as if it lost a race: reading again shows our own write.
    cluster.fail_next("patch", f"{HPA}/web", status=409)
    result = raise_capacity(api, TARGET, reason=SLOW, now=T0)
    assert (result.action, result.min_after) == ("scaled", 4)
    assert cluster.requests("get", f"{HPA}/web") == 2  # read, 409, read again: our stamp, so done
    assert read_hpa(api).spec.min_replicas == 4


def test_the_patch_is_conditional_on_the_autoscaler_being_as_read(api: client.ApiClient, cluster: FakeCluster) -> None:
    # The emulator keeps no resourceVersion; a real API server does, and answers 409 when it moved on.
    body = {"metadata": {"resourceVersion": "41"}}
    client.AutoscalingV2Api(api).patch_namespaced_horizontal_pod_autoscaler("web", "shop", body)
    raise_capacity(api, TARGET, reason=SLOW, now=T0)
    patch = list(cluster.emulator[f"patch {HPA}/web"])[-1]
    assert patch.data["metadata"]["resourceVersion"] == "41"
    assert set(patch.data["metadata"]["annotations"]) >= {LAST_SCALE_UP, SCALE_UP_REASON}


def test_transient_api_errors_on_the_patch_are_retried(api: client.ApiClient, cluster: FakeCluster) -> None:
    cluster.fail_next("patch", f"{HPA}/web", status=503, times=2)
    assert raise_capacity(api, TARGET, reason=SLOW, now=T0).min_after == 4
    assert read_hpa(api).spec.min_replicas == 4  # absolute values: the repeated patch did not add more


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda api: raise_capacity(api, TARGET, step=0), "step must be at least 1"),
        (lambda api: raise_capacity(api, TARGET, ceiling=0), "ceiling must be at least 1"),
        (lambda api: raise_capacity(api, TARGET, cooldown=timedelta(seconds=-1)), "cooldown must not be negative"),
        (lambda api: raise_capacity(api, TARGET, now=datetime(2026, 1, 1)), "no time zone"),  # noqa: DTZ001
        (lambda api: scale_target("Web_App", "shop"), "cannot scale app 'Web_App'"),
    ],
)
def test_bad_requests_are_refused_before_any_api_call(call: Any, expected: str, cluster: FakeCluster) -> None:
    api = cluster.api()
    with pytest.raises(InvalidScaleUp, match=expected) as refused:
        call(api)
    api.close()
    assert refused.value.hint
    assert cluster.requests("get", f"{HPA}/web") == 0


@pytest.mark.integration
def test_scale_up_flow_raises_capacity_and_publishes_the_artifact(prefect_server: str, api: client.ApiClient) -> None:
    KubernetesCluster(api_server=api.configuration.host, verify_tls=False).save("plos-scaling-test", overwrite=True)
    result = scale_up(app="web", namespace="shop", reason=SLOW, step=2, cluster_block="plos-scaling-test")
    assert (result.action, result.min_after) == ("scaled", 5)
    assert read_hpa(api).spec.min_replicas == 5
    artifact = Artifact.get("plos-scale-web")
    assert artifact is not None and "# web: scaled" in str(artifact.data) and SLOW in str(artifact.data)
    again = scale_up(app="web", namespace="shop", reason=SLOW, cluster_block="plos-scaling-test")
    assert again.action == "cooling down" and again.next_allowed_at is not None
    with pytest.raises(ConfigError, match="no cluster configured"):
        scale_up(app="web", namespace="shop", cluster_block="")
