"""PLOS step 3 against the API emulator with a simulated controller: deploy the new colour, wait for it."""

from __future__ import annotations

import time

import kmock
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from framework2.tasks.launch.cluster import COLOUR_LABEL, ClusterError, ReleaseTarget
from framework2.tasks.launch.kapi import with_retries
from framework2.tasks.launch.rollout import (
    REVISION_LABEL,
    HpaSettings,
    RolloutFailed,
    RolloutProgress,
    RolloutTimedOut,
    apply_colour,
    build_deployment,
    delete_hpa,
    pod_problem,
    read_colour,
    read_hpa_target,
    retarget_hpa,
    scale,
    upsert_hpa,
    wait_for_rollout,
)
from tests.k8s_fixtures import UNSCHEDULABLE_MESSAGE, FakeCluster

TARGET = ReleaseTarget(namespace="shop", app="web", active_service="web", preview_service="web-preview")
DEPLOYMENTS = "/apis/apps/v1/namespaces/shop/deployments"
HPA = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers"


@pytest.fixture
def k8s(cluster: FakeCluster) -> FakeCluster:
    """The emulator with the simulated controller running (pods appear, become ready or fail)."""
    cluster.start_controller(ready_delay=0.2)
    return cluster


def pods(api: client.ApiClient, **labels: str) -> list[client.V1Pod]:
    items = client.CoreV1Api(api).list_namespaced_pod("shop").items
    return [p for p in items if all((p.metadata.labels or {}).get(k) == v for k, v in labels.items())]


def eventually(condition, timeout: float = 2.0) -> None:
    until = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < until, "condition not met in time"
        time.sleep(0.05)


def rich_template() -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": "web", COLOUR_LABEL: "blue", REVISION_LABEL: "r1"}),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(
                    name="web",
                    image="shop/web:1",
                    ports=[client.V1ContainerPort(container_port=9090, name="http")],
                    resources=client.V1ResourceRequirements(
                        requests={"cpu": "250m", "memory": "256Mi"}, limits={"memory": "512Mi"}
                    ),
                    readiness_probe=client.V1Probe(
                        http_get=client.V1HTTPGetAction(path="/healthz", port=9090), period_seconds=5
                    ),
                    env=[client.V1EnvVar(name="MODE", value="prod")],
                ),
                client.V1Container(name="sidecar", image="envoy:1.30"),
            ]
        ),
    )


def test_new_colour_rolls_out_and_becomes_ready(k8s: FakeCluster) -> None:
    api = k8s.api()
    seen: list[RolloutProgress] = []
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", replicas=3, progress_deadline_seconds=60)
    result = wait_for_rollout(api, TARGET, "green", "r2", 3, deadline_seconds=5, on_progress=seen.append)
    assert (result.ready, result.desired) == (3, 3) and result.done
    assert result.elapsed_seconds < 0.9  # seen on a watch event, not at the next re-list (every second)
    assert len(k8s.emulator[kmock.action.WATCH]) >= 1
    assert set(result.pods.values()) == {"Ready"} and all(n.startswith("web-green-") for n in result.pods)
    assert seen[0].ready < 3 and seen[-1].ready == 3
    assert [p.ready for p in seen] == sorted({p.ready for p in seen})  # called on changes only, increasing
    state = read_colour(api, TARGET, "green")
    assert state is not None and (state.image, state.revision, state.replicas) == ("shop/web:2", "r2", 3)
    eventually(lambda: read_colour(api, TARGET, "green").ready_replicas == 3)


def test_applying_the_same_release_twice_is_harmless(k8s: FakeCluster) -> None:
    api = k8s.api()
    for _ in range(2):
        apply_colour(api, TARGET, "green", "shop/web:2", "r2", replicas=2, progress_deadline_seconds=60)
    assert wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=5).ready == 2
    assert k8s.requests("post", DEPLOYMENTS) == 1


def test_crashloop_fails_fast_with_pod_reason(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2-crashloop", "r2", replicas=2, progress_deadline_seconds=600)
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as err:
        wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=30)
    assert time.monotonic() - started < 3  # not the 30 s deadline
    assert err.value.reason == "CrashLoopBackOff" and err.value.pod and err.value.pod.startswith("web-green-")
    assert f"pod {err.value.pod}: container web CrashLoopBackOff" in err.value.message
    assert "restart" in err.value.message and "kubectl logs --previous" in err.value.hint


def test_unschedulable_fails_fast_with_scheduler_message(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2-unschedulable", "r2", replicas=2, progress_deadline_seconds=600)
    started = time.monotonic()
    with pytest.raises(RolloutFailed) as err:
        wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=30)
    assert time.monotonic() - started < 3
    assert err.value.reason == "Unschedulable"
    assert f"Unschedulable: {UNSCHEDULABLE_MESSAGE}" in err.value.message and "capacity" in err.value.hint


def test_progress_deadline_exceeded_times_out(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2-stuck", "r2", replicas=2, progress_deadline_seconds=1)
    started = time.monotonic()
    with pytest.raises(RolloutTimedOut) as err:  # the Deployment's own deadline, long before ours
        wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=30)
    assert time.monotonic() - started < 3
    assert "progress deadline was exceeded" in err.value.message and "0 of 2 pods" in err.value.message
    assert "ContainerCreating" in err.value.message


def test_own_deadline_times_out_and_says_how_many_became_ready(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2-stuck", "r2", replicas=2, progress_deadline_seconds=600)
    started = time.monotonic()
    with pytest.raises(RolloutTimedOut, match=r"not ready within 0.8s; 0 of 2 pods became ready"):
        wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=0.8)
    assert 0.8 <= time.monotonic() - started < 2.5


def test_old_revision_pods_do_not_count(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:1", "r1", replicas=2, progress_deadline_seconds=600)
    wait_for_rollout(api, TARGET, "green", "r1", 2, deadline_seconds=5)
    apply_colour(api, TARGET, "green", "shop/web:2-stuck", "r2", replicas=2, progress_deadline_seconds=600)
    seen: list[RolloutProgress] = []
    with pytest.raises(RolloutTimedOut, match="0 of 2 pods became ready"):
        wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=0.8, on_progress=seen.append)
    assert [p.ready for p in seen] == [0]
    old = pods(api, **{REVISION_LABEL: "r1"})
    assert len(old) == 2 and all(  # the r1 pods were Ready all along (kept until r2 is ready)
        any(c.type == "Ready" and c.status == "True" for c in p.status.conditions) for p in old
    )


def test_a_fixed_release_of_a_crashed_colour_rolls_out(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2-crashloop", "r2", replicas=2, progress_deadline_seconds=600)
    with pytest.raises(RolloutFailed):
        wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=5)
    apply_colour(api, TARGET, "green", "shop/web:3", "r3", replicas=2, progress_deadline_seconds=600)
    assert wait_for_rollout(api, TARGET, "green", "r3", 2, deadline_seconds=5).ready == 2
    eventually(lambda: not pods(api, **{REVISION_LABEL: "r2"}))  # the crashing pods are replaced


def test_template_copied_from_live_colour_keeps_ports_and_resources(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "blue", "shop/web:1", "r1", 2, 600, template=rich_template())
    live = read_colour(api, TARGET, "blue")
    assert live is not None and live.image == "shop/web:1"
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 2, 600, template=live.template)
    green = client.AppsV1Api(api).read_namespaced_deployment("web-green", "shop")
    web, sidecar = green.spec.template.spec.containers
    assert (web.image, sidecar.image) == ("shop/web:2", "envoy:1.30")
    assert web.ports[0].container_port == 9090 and web.resources.requests == {"cpu": "250m", "memory": "256Mi"}
    assert web.readiness_probe.http_get.path == "/healthz" and web.env[0].value == "prod"
    assert green.spec.template.metadata.labels == {"app": "web", COLOUR_LABEL: "green", REVISION_LABEL: "r2"}
    assert read_colour(api, TARGET, "blue").image == "shop/web:1"  # the live colour is untouched
    # Re-deploying green later without a template keeps green's own ports and resources.
    apply_colour(api, TARGET, "green", "shop/web:3", "r3", 2, 600)
    green = client.AppsV1Api(api).read_namespaced_deployment("web-green", "shop")
    assert green.spec.template.spec.containers[0].ports[0].container_port == 9090
    assert green.spec.template.spec.containers[0].image == "shop/web:3"
    assert wait_for_rollout(api, TARGET, "green", "r3", 2, deadline_seconds=5).ready == 2


def test_copied_template_drops_what_the_live_colour_no_longer_has(cluster: FakeCluster) -> None:
    api = cluster.api()
    old = rich_template()
    old.spec.containers[0].env.append(client.V1EnvVar(name="DEBUG", value="1"))
    old.spec.node_selector = {"pool": "old"}
    apply_colour(api, TARGET, "green", "shop/web:1", "r1", 2, 600, template=old)
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 2, 600, template=rich_template())
    green = client.AppsV1Api(api).read_namespaced_deployment("web-green", "shop").spec.template.spec
    assert [e.name for e in green.containers[0].env] == ["MODE"] and green.node_selector is None
    assert green.containers[0].image == "shop/web:2"


def test_a_deadline_condition_left_by_the_previous_rollout_is_ignored(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2-stuck", "r2", replicas=1, progress_deadline_seconds=1)
    with pytest.raises(RolloutTimedOut, match="progress deadline"):
        wait_for_rollout(api, TARGET, "green", "r2", 1, deadline_seconds=5)
    apply_colour(api, TARGET, "green", "shop/web:3", "r3", replicas=1, progress_deadline_seconds=1)
    # Right after the patch the Deployment still says ProgressDeadlineExceeded (for r2); generation tells.
    conditions = client.AppsV1Api(api).read_namespaced_deployment("web-green", "shop").status.conditions
    assert any(c.reason == "ProgressDeadlineExceeded" for c in conditions)
    assert wait_for_rollout(api, TARGET, "green", "r3", 1, deadline_seconds=5).ready == 1


def test_selector_excludes_revision(cluster: FakeCluster) -> None:
    built = build_deployment(TARGET, "green", "shop/web:2", "r2", 3, 600)
    assert built.spec.selector.match_labels == {"app": "web", COLOUR_LABEL: "green"}
    assert built.spec.template.metadata.labels[REVISION_LABEL] == "r2" == built.metadata.labels[REVISION_LABEL]
    assert built.spec.template.spec.containers[0].ports[0].container_port == 8080
    api = cluster.api()
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 3, 600)
    apply_colour(api, TARGET, "green", "shop/web:3", "r3", 3, 600)
    live = client.AppsV1Api(api).read_namespaced_deployment("web-green", "shop")
    assert live.spec.selector.match_labels == {"app": "web", COLOUR_LABEL: "green"}
    assert live.metadata.labels[REVISION_LABEL] == "r3" and live.spec.progress_deadline_seconds == 600


def test_a_foreign_selector_is_refused_with_a_hint(cluster: FakeCluster) -> None:
    api = cluster.api()
    foreign = build_deployment(TARGET, "green", "shop/web:1", "r1", 1, 600)
    foreign.spec.selector.match_labels = {"app": "web"}
    client.AppsV1Api(api).create_namespaced_deployment("shop", foreign)
    with pytest.raises(ClusterError, match="selects") as err:
        apply_colour(api, TARGET, "green", "shop/web:2", "r2", 1, 600)
    assert "cannot be changed" in err.value.hint


def test_hpa_created_then_retargeted_with_one_object(cluster: FakeCluster) -> None:
    api = cluster.api()
    assert read_hpa_target(api, TARGET) is None
    upsert_hpa(api, TARGET, "blue", HpaSettings())
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("web", "shop")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 20)
    assert hpa.spec.metrics[0].resource.name == "cpu"
    assert hpa.spec.metrics[0].resource.target.average_utilization == 70
    assert hpa.spec.scale_target_ref.to_dict() == {"api_version": "apps/v1", "kind": "Deployment", "name": "web-blue"}
    assert read_hpa_target(api, TARGET) == "blue"
    upsert_hpa(api, TARGET, "green", HpaSettings(min_replicas=2, max_replicas=8, cpu_utilization_percent=60))
    assert read_hpa_target(api, TARGET) == "green"
    hpas = client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler("shop").items
    assert [h.metadata.name for h in hpas] == ["web"]
    assert (hpas[0].spec.min_replicas, hpas[0].spec.metrics[0].resource.target.average_utilization) == (2, 60)
    assert cluster.requests("patch", f"{HPA}/web") == 1
    assert retarget_hpa(api, TARGET, "blue") is True  # rollback: same object, its own limits kept
    assert read_hpa_target(api, TARGET) == "blue"
    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("web", "shop")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (2, 8)
    delete_hpa(api, TARGET)
    delete_hpa(api, TARGET)  # already gone: fine
    assert read_hpa_target(api, TARGET) is None
    assert retarget_hpa(api, TARGET, "green") is False


def test_hpa_settings_reject_min_above_max() -> None:
    with pytest.raises(ValidationError, match="must not be above max_replicas"):
        HpaSettings(min_replicas=5, max_replicas=4)
    with pytest.raises(ValidationError):
        HpaSettings(cpu_utilization_percent=101)
    with pytest.raises(ValidationError):
        HpaSettings(min_replicas=0)
    schema = HpaSettings.model_json_schema()["properties"]
    assert all(field["description"] for field in schema.values())


def test_transient_500_on_patch_is_retried(cluster: FakeCluster) -> None:
    api = cluster.api()
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 3, 600)
    cluster.fail_next("patch", f"{DEPLOYMENTS}/web-green", status=500, times=2)
    scale(api, TARGET, "green", 5)
    assert cluster.requests("patch", f"{DEPLOYMENTS}/web-green") == 3
    assert read_colour(api, TARGET, "green").replicas == 5


def test_lost_answer_to_a_create_is_retried_into_a_patch(cluster: FakeCluster) -> None:
    api = cluster.api()
    cluster.fail_next("post", DEPLOYMENTS, status=503)  # the emulator keeps the object: the answer was lost
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 3, 600)
    assert cluster.requests("post", DEPLOYMENTS) == 2  # the retry got 409 and patched instead
    assert cluster.requests("patch", f"{DEPLOYMENTS}/web-green") == 1
    assert read_colour(api, TARGET, "green").revision == "r2"


def test_retries_give_up_after_the_last_attempt(cluster: FakeCluster) -> None:
    api = cluster.api()
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 3, 600)
    cluster.fail_next("patch", f"{DEPLOYMENTS}/web-green", status=503, times=10)
    with pytest.raises(ApiException) as err:
        with_retries(
            client.AppsV1Api(api).patch_namespaced_deployment,
            "web-green",
            "shop",
            {"spec": {"replicas": 1}},
            attempts=3,
            first_delay=0.01,
        )
    assert err.value.status == 503 and cluster.requests("patch", f"{DEPLOYMENTS}/web-green") == 3


def test_404_is_not_retried(cluster: FakeCluster) -> None:
    api = cluster.api()
    started = time.monotonic()
    with pytest.raises(ApiException) as err:
        with_retries(client.AppsV1Api(api).read_namespaced_deployment, "web-green", "shop")
    assert err.value.status == 404 and time.monotonic() - started < 0.2
    assert cluster.requests("get", f"{DEPLOYMENTS}/web-green") == 1
    with pytest.raises(ClusterError, match="'web-green' does not exist"):
        scale(api, TARGET, "green", 3)
    assert cluster.requests("patch", f"{DEPLOYMENTS}/web-green") == 1


def test_connection_errors_are_retried_then_raised() -> None:
    config = client.Configuration()
    config.host = "http://127.0.0.1:1"
    config.retries = False  # urllib3's own retries off: count ours
    calls: list[int] = []
    version = client.VersionApi(client.ApiClient(config))

    def get_code(**kwargs: object) -> object:
        calls.append(1)
        return version.get_code(**kwargs)

    with pytest.raises(Exception) as err:
        with_retries(get_code, attempts=3, first_delay=0.01)
    assert len(calls) == 3 and not isinstance(err.value, ApiException)


def test_empty_image_rejected_before_any_call(cluster: FakeCluster) -> None:
    api = cluster.api()
    for image, problem in (("", "the image to deploy is empty"), ("   ", "empty"), ("shop/web 2", "whitespace")):
        with pytest.raises(ValueError, match=problem) as err:
            apply_colour(api, TARGET, "green", image, "r2", 3, 600)
        assert isinstance(err.value, ClusterError) and "full image reference" in err.value.hint
    with pytest.raises(ValueError, match="not a valid label value"):
        apply_colour(api, TARGET, "green", "shop/web:2", "r2/bad", 3, 600)
    assert len(list(cluster.emulator)) == 0  # no request reached the API server


def test_scale_to_zero_removes_pods(k8s: FakeCluster) -> None:
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 2, 600)
    wait_for_rollout(api, TARGET, "green", "r2", 2, deadline_seconds=5)
    scale(api, TARGET, "green", 0)
    eventually(lambda: not pods(api, app="web"))
    assert read_colour(api, TARGET, "green").replicas == 0
    scale(api, TARGET, "blue", 0)  # a colour that never existed: nothing to do


def test_pod_problem_reads_waiting_terminated_and_scheduling() -> None:
    def pod(**status: object) -> client.V1Pod:
        return client.V1Pod(metadata=client.V1ObjectMeta(name="p"), status=client.V1PodStatus(**status))

    def container(state: client.V1ContainerState, restarts: int = 0) -> client.V1ContainerStatus:
        return client.V1ContainerStatus(
            name="web", image="i", image_id="", ready=False, restart_count=restarts, state=state
        )

    pull = container(client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason="ImagePullBackOff")))
    assert pod_problem(pod(container_statuses=[pull])) == "container web ImagePullBackOff"
    crashed = container(client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=2)), 1)
    assert pod_problem(pod(container_statuses=[crashed])) == "container web exited with code 2 (Error), 1 restart"
    first_exit = container(client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=2)))
    creating = container(client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason="ContainerCreating")))
    assert pod_problem(pod(container_statuses=[first_exit, creating], phase="Pending")) is None


def test_on_ready_hooks_hear_of_each_ready_rollout(k8s: FakeCluster) -> None:
    heard: list[tuple[str, str, str]] = []
    k8s.on_ready.append(lambda name, image, labels: heard.append((name, image, labels[REVISION_LABEL])))
    api = k8s.api()
    apply_colour(api, TARGET, "green", "shop/web:2", "r2", 1, 600)
    wait_for_rollout(api, TARGET, "green", "r2", 1, deadline_seconds=5)
    eventually(lambda: heard == [("web-green", "shop/web:2", "r2")])
