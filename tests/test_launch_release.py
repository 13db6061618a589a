"""PLOS release scenarios end to end: the real flows on a real Prefect server, the real `kubernetes` client
against the API emulator with the simulated controller, and a real Prometheus scraping the demo app whose
behaviour follows the image each colour runs."""

from __future__ import annotations

import contextvars
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client
from prefect.artifacts import Artifact

from framework2.blocks.kubernetes_cluster import KubernetesCluster
from framework2.errors import Framework2Error
from framework2.flows.launch import RollbackRequest, blue_green_release, release_status, rollback
from framework2.store.engine import open_store
from framework2.store.releases import recent_releases
from framework2.tasks.launch.analysis import MetricSpec
from framework2.tasks.launch.cluster import COLOUR_LABEL, ReleaseInProgress, ReleaseTarget, lock_name
from framework2.tasks.launch.release import AnalysisSettings, JudgeSpec, ReleaseRequest
from framework2.tasks.launch.rollout import apply_colour, read_colour, read_hpa_target, wait_for_rollout
from framework2.tasks.launch.state import read_state
from tests.k8s_fixtures import FakeCluster

pytestmark = pytest.mark.integration

TARGET = ReleaseTarget(namespace="shop", app="web", active_service="web-active", preview_service="web-preview")
V1 = "registry.example.com/web:1.0.0"
SUCCESS_RATE = (
    'sum(rate(demo_http_requests_total{colour="{{colour}}",code!~"5.."}[3s]))'
    ' / sum(rate(demo_http_requests_total{colour="{{colour}}"}[3s]))'
)
ERROR_RATE = (
    'sum(rate(demo_http_requests_total{colour="{{colour}}",code=~"5.."}[3s]))'
    ' / sum(rate(demo_http_requests_total{colour="{{colour}}"}[3s]))'
)


@dataclass
class World:
    cluster: FakeCluster
    api: client.ApiClient
    demo: object
    prometheus: object

    def selected(self) -> str | None:
        return read_state(self.api, TARGET)[1]

    def request(self, image: str, **changes: object) -> ReleaseRequest:
        analysis = AnalysisSettings(
            prometheus_url=self.prometheus.url,  # type: ignore[attr-defined]
            preview_url=self.demo.url + "/{{colour}}",  # type: ignore[attr-defined]
            pre_promotion=[
                MetricSpec(name="smoke", kind="http", query="/healthz", success_condition="result == 1", count=2,
                           interval_seconds=0.5),
                MetricSpec(name="success-rate", query=SUCCESS_RATE, success_condition="result >= 0.99",
                           failure_condition="result < 0.95", count=2, interval_seconds=1),
            ],
            error_rate_query=ERROR_RATE,
            rollback_threshold=0.1,
            post_promotion_intervals=3,
            post_promotion_interval_seconds=1,
        )  # fmt: skip
        fields = dict(namespace="shop", app="web", image=image, replicas=2, progress_deadline_seconds=10,
                      analysis=analysis, scale_down_delay_seconds=0.5, abort_teardown_delay_seconds=0,
                      lock_ttl_seconds=6, approval_timeout_seconds=2)  # fmt: skip
        return ReleaseRequest(**(fields | changes))

    def wait_healthy(self, colour: str) -> None:
        self.prometheus.wait_for(  # type: ignore[attr-defined]
            SUCCESS_RATE.replace("{{colour}}", colour), lambda v: v is not None and v >= 0.999, timeout=20
        )


def _service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, namespace="shop"),
        spec=client.V1ServiceSpec(
            selector={"app": "web", COLOUR_LABEL: "blue"}, ports=[client.V1ServicePort(port=80, target_port=8080)]
        ),
    )


@pytest.fixture
def world(prefect_server, store_url, cluster: FakeCluster, demo_app, prometheus) -> Iterator[World]:  # type: ignore[no-untyped-def]
    cluster.start_controller(ready_delay=0.2)
    # The demo app stands in for both colours' pods: each colour behaves as the image it now runs.
    cluster.on_ready.append(lambda _name, image, labels: demo_app.set_image(labels[COLOUR_LABEL], image))
    api = cluster.api()
    core = client.CoreV1Api(api)
    for name in (TARGET.active_service, TARGET.preview_service):
        core.create_namespaced_service("shop", _service(name))
    apply_colour(api, TARGET, "blue", V1, "1.0.0", 2, 30)
    wait_for_rollout(api, TARGET, "blue", "1.0.0", 2, 10)
    KubernetesCluster(api_server=cluster.url, verify_tls=False).save("plos", overwrite=True)
    w = World(cluster, api, demo_app, prometheus)
    w.wait_healthy("green")
    yield w
    api.close()


def when_traffic_moves_to(world: World, colour: str, action: Callable[[], None]) -> threading.Thread:
    """Run ``action`` as soon as the active Service selects ``colour`` (traffic arriving on it)."""

    def watch() -> None:
        api = world.cluster.api()
        until = time.monotonic() + 60
        while time.monotonic() < until:
            if read_state(api, TARGET)[1] == colour:
                action()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def release_in_background(request: ReleaseRequest) -> tuple[threading.Thread, dict]:
    """Run a release in a thread (with this test's Prefect settings); its final state lands in ["state"]."""
    context = contextvars.copy_context()
    result: dict = {}
    thread = threading.Thread(
        target=lambda: result.update(state=context.run(blue_green_release, request, return_state=True)), daemon=True
    )
    thread.start()
    return thread, result


def stored_release():  # type: ignore[no-untyped-def]
    [release] = recent_releases(open_store(), "web", limit=1)
    return release


def test_healthy_release_is_promoted_autoscaled_and_old_colour_scaled_down(world: World) -> None:
    outcome = blue_green_release(world.request("registry.example.com/web:1.1.0"))

    assert outcome.status == "promoted" and outcome.live_colour == "green"
    state, selected = read_state(world.api, TARGET)
    assert selected == "green" and state is not None and state.phase == "completed"
    assert read_hpa_target(world.api, TARGET) == "green"
    hpa = client.AutoscalingV2Api(world.api).read_namespaced_horizontal_pod_autoscaler("web", "shop")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas) == (3, 20)
    assert read_colour(world.api, TARGET, "blue").replicas == 0  # after the 0.5 s scale-down delay
    release = stored_release()
    assert release.status == "promoted" and release.succeeded is True
    assert release.previous_image == V1 and release.from_colour == "blue"
    phases = {a: r["phase"] for a, r in release.evidence["analyses"].items()}
    assert phases == {"pre-promotion": "successful", "post-promotion": "successful"}
    timeline = Artifact.get("plos-release-web")
    assert timeline is not None and "promoted" in timeline.data and "data:image/png;base64," in timeline.data
    with pytest.raises(client.exceptions.ApiException):  # the lock is given back
        client.CoordinationV1Api(world.api).read_namespaced_lease(lock_name("web"), "shop")

    again = blue_green_release(world.request("registry.example.com/web:1.1.0"))  # idempotent
    assert again.status == "promoted" and "already live" in again.reason
    assert len(recent_releases(open_store(), "web")) == 1 and world.selected() == "green"


def test_failing_smoke_test_rolls_back_before_any_traffic_moves(world: World) -> None:
    world.cluster.on_ready.append(
        lambda _n, _i, labels: labels[COLOUR_LABEL] == "green" and world.demo.set_behaviour("green", error_rate=1.0)  # type: ignore[attr-defined]
    )
    state = blue_green_release(world.request("registry.example.com/web:1.1.0"), return_state=True)

    assert state.is_failed() and "smoke" in state.message
    assert world.selected() == "blue"
    assert read_colour(world.api, TARGET, "green").replicas == 0
    release = stored_release()
    assert release.status == "rolled_back" and release.succeeded is False
    smoke = [m for m in release.evidence["analyses"]["pre-promotion"]["measurements"] if m["metric"] == "smoke"]
    assert smoke[-1]["phase"] == "failed" and smoke[-1]["value"] == 0.0  # the evidence: value vs condition


def test_error_rate_breach_after_promotion_switches_traffic_back(world: World) -> None:
    when_traffic_moves_to(world, "green", lambda: world.demo.set_behaviour("green", error_rate=0.5))  # type: ignore[attr-defined]
    request = world.request("registry.example.com/web:1.1.0")
    request.analysis.post_promotion_intervals = 8
    state = blue_green_release(request, return_state=True)

    assert state.is_failed() and "post-promotion" in state.message and "error-rate" in state.message
    assert world.selected() == "blue"
    assert read_colour(world.api, TARGET, "blue").replicas == 2  # the old colour never went down
    assert read_colour(world.api, TARGET, "green").replicas == 0
    release = stored_release()
    post = release.evidence["analyses"]["post-promotion"]["measurements"]
    failed = [m for m in post if m["phase"] == "failed"]
    assert failed and failed[0]["value"] > 0.1
    [switch_back] = [e for e in release.evidence["timeline"] if e["step"] == "rollback" and e["traffic"] == "blue"]
    # traffic went back right after the failing measurement, not an interval later
    gap = datetime.fromisoformat(switch_back["at"]) - datetime.fromisoformat(failed[0]["at"])
    assert gap < timedelta(seconds=request.analysis.post_promotion_interval_seconds)


def test_progress_deadline_exceeded_rolls_back_with_the_reason(world: World) -> None:
    state = blue_green_release(world.request("registry.example.com/web:1.1.0-stuck", progress_deadline_seconds=5),
                               return_state=True)  # fmt: skip
    # Whichever sees the 5 s deadline first, PLOS's own clock or the Deployment's Progressing condition:
    assert state.is_failed() and "RolloutTimedOut" in state.message and "0 of 2 pods became ready" in state.message
    assert "not ready within 5s" in state.message or "the Deployment's progress deadline was exceeded" in state.message
    assert world.selected() == "blue" and read_colour(world.api, TARGET, "green").replicas == 0


def test_crash_looping_release_fails_fast_naming_the_pod(world: World) -> None:
    started = time.monotonic()
    state = blue_green_release(world.request("registry.example.com/web:1.1.0-crashloop", progress_deadline_seconds=60),
                               return_state=True)  # fmt: skip
    assert state.is_failed() and "CrashLoopBackOff" in state.message and "web-green-" in state.message
    assert time.monotonic() - started < 30  # well before the 60 s deadline
    assert world.selected() == "blue"


def test_second_release_of_the_same_app_refuses_while_one_is_running(world: World) -> None:
    first = world.request("registry.example.com/web:1.1.0")
    first.analysis.post_promotion_intervals = 6
    running, result = release_in_background(first)
    leases = client.CoordinationV1Api(world.api)
    deadline = time.monotonic() + 30
    while True:
        try:
            holder = leases.read_namespaced_lease(lock_name("web"), "shop").spec.holder_identity
            break
        except client.exceptions.ApiException:
            assert time.monotonic() < deadline, "the first release never took the lock"
            time.sleep(0.05)

    with pytest.raises(ReleaseInProgress, match=f"held by '{holder}'"):
        blue_green_release(world.request("registry.example.com/web:1.2.0"))
    running.join(timeout=90)

    assert result["state"].is_completed() and result["state"].result().image.endswith(":1.1.0")
    assert read_colour(world.api, TARGET, "green").image.endswith(":1.1.0")  # the second changed nothing


def test_transient_api_errors_mid_release_are_retried(world: World) -> None:
    world.cluster.fail_next("patch", "/api/v1/namespaces/shop/services/web-active", status=500, times=2)
    world.cluster.fail_next("get", "/apis/apps/v1/namespaces/shop/deployments/web-green", status=503, times=1)
    outcome = blue_green_release(world.request("registry.example.com/web:1.1.0"))
    assert outcome.status == "promoted" and world.selected() == "green"


def test_persistent_api_errors_roll_back_and_say_so(world: World) -> None:
    # Every retry of pointing the preview fails (4 attempts); the rollback's own retry then gets through.
    world.cluster.fail_next("patch", "/api/v1/namespaces/shop/services/web-preview", status=500, times=5)
    state = blue_green_release(world.request("registry.example.com/web:1.1.0"), return_state=True)
    assert state.is_failed() and "rolled back" in state.message and "500" in state.message
    assert world.selected() == "blue" and read_colour(world.api, TARGET, "green").replicas == 0


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"namespace": "nowhere"}, "does not exist in namespace 'nowhere'"),
        ({"active_service": "web-missing"}, "service 'web-missing' does not exist"),
    ],
)
def test_bad_parameters_fail_before_anything_changes(world: World, changes: dict, expected: str) -> None:
    with pytest.raises(Framework2Error, match=expected):
        blue_green_release(world.request("registry.example.com/web:1.1.0", **changes))
    assert read_colour(world.api, TARGET, "green") is None and world.selected() == "blue"
    with pytest.raises(client.exceptions.ApiException):
        client.CoordinationV1Api(world.api).read_namespaced_lease(lock_name("web"), "shop")


def test_empty_image_is_rejected_by_the_form() -> None:
    with pytest.raises(ValueError, match="image must be a non-empty image reference"):
        ReleaseRequest(app="web", image="  ")


def test_low_predicted_success_pauses_and_cancels_without_an_answer(world: World) -> None:
    outcome = blue_green_release(world.request("registry.example.com/web:1.1.0", success_threshold=0.95))
    assert outcome.status == "cancelled" and "no decision" in outcome.reason
    assert read_colour(world.api, TARGET, "green") is None and world.selected() == "blue"


def test_dry_run_checks_and_plans_but_changes_nothing(world: World) -> None:
    outcome = blue_green_release(world.request("registry.example.com/web:1.1.0", dry_run=True))
    assert outcome.status == "dry_run" and outcome.live_colour == "blue"
    assert read_colour(world.api, TARGET, "green") is None
    plan = Artifact.get("plos-plan-web")
    assert plan is not None and "web-green" in plan.data and "kind: Deployment" in plan.data


def test_rollback_during_the_scale_down_delay_is_an_instant_switch(world: World) -> None:
    request = world.request("registry.example.com/web:1.1.0", scale_down_delay_seconds=60)
    release, result = release_in_background(request)
    deadline = time.monotonic() + 60
    while getattr(read_state(world.api, TARGET)[0], "phase", None) != "completed":
        assert time.monotonic() < deadline, "release did not complete"
        time.sleep(0.1)

    outcome = rollback(RollbackRequest(namespace="shop", app="web"), reason="bad reviews")
    release.join(timeout=30)

    assert outcome.action == "abort_requested" and "rolled back" in outcome.detail
    assert world.selected() == "blue" and read_hpa_target(world.api, TARGET) in (None, "blue")
    assert result["state"].is_failed() and "fast rollback" in result["state"].message


def test_rollback_after_the_window_redeploys_the_previous_revision(world: World) -> None:
    blue_green_release(world.request("registry.example.com/web:1.1.0", scale_down_delay_seconds=0))
    assert read_colour(world.api, TARGET, "blue").replicas == 0

    outcome = rollback(RollbackRequest(namespace="shop", app="web"), reason="regression found later")

    assert outcome.action == "redeploy_previous" and outcome.live_colour == "blue"
    blue = read_colour(world.api, TARGET, "blue")
    assert blue.image == V1 and blue.ready_replicas == 2
    assert read_colour(world.api, TARGET, "green").replicas == 0
    assert read_hpa_target(world.api, TARGET) == "blue"
    assert rollback(RollbackRequest(namespace="shop", app="web")).action == "nothing"  # idempotent


RUN_RELEASE = """
import json, sys
from framework2.flows.launch import blue_green_release
from framework2.tasks.launch.release import ReleaseRequest
blue_green_release(ReleaseRequest.model_validate(json.loads(sys.argv[1])))
"""


def _kill_when_promoted(world: World, request: ReleaseRequest, tmp_path: Path) -> None:
    """Start the release in its own process and SIGKILL it right after the selector was patched."""
    script = tmp_path / "release.py"
    script.write_text(RUN_RELEASE)
    worker = subprocess.Popen([sys.executable, str(script), request.model_dump_json()], env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            state = read_state(world.api, TARGET)[0]
            if state is not None and state.phase == "promoted":
                break
            assert worker.poll() is None, "the release process ended before promotion"
            assert time.monotonic() < deadline, "the release did not reach promotion"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait(timeout=10)


def _wait_for_lock_to_expire(world: World) -> None:
    leases = client.CoordinationV1Api(world.api)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lease = leases.read_namespaced_lease(lock_name("web"), "shop")
        renewed = lease.spec.renew_time.replace(tzinfo=lease.spec.renew_time.tzinfo or UTC)
        if renewed + timedelta(seconds=lease.spec.lease_duration_seconds) < datetime.now(UTC):
            return
        time.sleep(0.5)
    pytest.fail("the killed release's lock did not expire")


def test_worker_killed_after_promotion_then_rerun_converges(world: World, tmp_path: Path) -> None:
    request = world.request("registry.example.com/web:1.1.0", lock_ttl_seconds=5)
    request.analysis.post_promotion_intervals = 60  # long enough to be killed in the middle
    _kill_when_promoted(world, request, tmp_path)
    assert world.selected() == "green"  # killed with traffic on the new colour, analysis not done
    _wait_for_lock_to_expire(world)

    request.analysis.post_promotion_intervals = 2
    outcome = blue_green_release(request)

    assert outcome.status == "promoted" and world.selected() == "green"
    state = read_state(world.api, TARGET)[0]
    assert state is not None and state.phase == "completed"
    assert [s.action for s in state.steps].count("traffic → green") == 1  # resumed, not redone
    assert read_colour(world.api, TARGET, "blue").replicas == 0
    timeline = Artifact.get("plos-release-web")
    assert timeline is not None and "resuming interrupted release" in timeline.data


def test_worker_killed_after_promotion_then_rollback_flow_undoes_it(world: World, tmp_path: Path) -> None:
    request = world.request("registry.example.com/web:1.1.0", lock_ttl_seconds=5)
    request.analysis.post_promotion_intervals = 60
    _kill_when_promoted(world, request, tmp_path)
    _wait_for_lock_to_expire(world)

    outcome = rollback(RollbackRequest(namespace="shop", app="web"), reason="worker died")

    assert outcome.action == "compensated" and world.selected() == "blue"
    assert read_colour(world.api, TARGET, "green").replicas == 0
    state = read_state(world.api, TARGET)[0]
    assert state is not None and state.phase == "rolled_back" and not state.pending_undos()
    status = release_status(RollbackRequest(namespace="shop", app="web"))
    assert status.live_colour == "blue" and status.warnings == []


def test_status_warns_when_both_colours_are_up_without_a_release(world: World) -> None:
    apply_colour(world.api, TARGET, "green", V1, "1.0.0", 2, 30)
    status = release_status(RollbackRequest(namespace="shop", app="web"))
    assert status.live_colour == "blue"
    assert any("both colours are scaled up" in w for w in status.warnings)
    assert json.loads(status.model_dump_json())["colours"]["green"]["replicas"] == 2


def test_missing_prometheus_url_is_refused_before_anything_changes(world: World) -> None:
    request = world.request("registry.example.com/web:1.1.0")
    request.analysis.prometheus_url = None
    with pytest.raises(Framework2Error, match="no prometheus_url is set"):
        blue_green_release(request)
    assert read_colour(world.api, TARGET, "green") is None and world.selected() == "blue"


def test_rollback_never_scales_down_the_colour_still_carrying_traffic(world: World, tmp_path: Path) -> None:
    request = world.request("registry.example.com/web:1.1.0", lock_ttl_seconds=5)
    request.analysis.post_promotion_intervals = 60
    _kill_when_promoted(world, request, tmp_path)
    _wait_for_lock_to_expire(world)
    # the API server refuses every switch back (more than the retries)
    world.cluster.fail_next("patch", "/api/v1/namespaces/shop/services/web-active", status=500, times=40)

    state = rollback(RollbackRequest(namespace="shop", app="web"), reason="test", return_state=True)

    assert state.is_failed() and "incomplete" in state.message
    assert world.selected() == "green"
    assert read_colour(world.api, TARGET, "green").replicas == 2  # still serving: not scaled away


def test_auto_rollback_leaves_a_kept_release_alone(world: World) -> None:
    blue_green_release(world.request("registry.example.com/web:1.1.0"))
    holder = read_state(world.api, TARGET)[0].holder  # type: ignore[union-attr]

    outcome = rollback(RollbackRequest(namespace="shop", app="web"), reason="run failed late", release_run_id=holder)

    assert outcome.action == "nothing" and "passed its analysis and was kept" in outcome.detail
    assert world.selected() == "green"


def test_lease_times_carry_microseconds_as_the_api_server_requires(world: World) -> None:
    from framework2.tasks.launch.cluster import acquire_release_lock, lease_now

    acquire_release_lock(world.api, TARGET, "someone", timedelta(seconds=30))
    [created] = list(world.cluster.emulator["post /apis/coordination.k8s.io/v1/namespaces/shop/leases"])
    spec = created.data["spec"]
    for key in ("acquireTime", "renewTime"):  # RFC 3339 with exactly six fractional digits
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)", spec[key]), spec[key]
    assert lease_now().microsecond != 0


P50_LATENCY = (
    'histogram_quantile(0.5, sum by (le) (rate(demo_http_request_duration_seconds_bucket{colour="{{colour}}"}[3s])))'
)


def test_statistical_judge_rolls_back_a_release_slower_than_the_live_colour(world: World) -> None:
    request = world.request("registry.example.com/web:1.1.0-slow")  # 0.6 s instead of 5 ms, no errors
    request.analysis.pre_promotion[1].count = 4  # long enough for the window to hold only the new image
    request.analysis.judges = [
        JudgeSpec(name="latency-vs-live", query=P50_LATENCY, window_seconds=3, step_seconds=0.5, min_samples=5)
    ]
    state = blue_green_release(request, return_state=True)

    assert state.is_failed() and "judge failed" in state.message and "latency-vs-live" in state.message
    assert world.selected() == "blue"
    verdict = stored_release().evidence["judgements"]["latency-vs-live"]
    # How much slower the p50 reads depends on the histogram buckets and on how loaded the machine is
    # (a scrape window may still mix both images); the verdict only needs the judge's own thresholds.
    assert verdict["phase"] == "failed" and verdict["p_value"] < 0.05
    assert verdict["candidate_median"] > 1.1 * verdict["baseline_median"]


def test_judge_without_prometheus_is_refused_before_anything_changes(world: World) -> None:
    request = world.request("registry.example.com/web:1.1.0")
    request.analysis.judges = [JudgeSpec(name="latency-vs-live", query=P50_LATENCY)]
    request.analysis.pre_promotion = [m for m in request.analysis.pre_promotion if m.kind == "http"]
    request.analysis.post_promotion_intervals = 0
    request.analysis.prometheus_url = None
    with pytest.raises(Framework2Error, match="judge 'latency-vs-live' compares Prometheus samples"):
        blue_green_release(request)
    assert read_colour(world.api, TARGET, "green") is None


def test_rollback_requested_while_the_new_colour_rolls_out_stops_the_release(world: World) -> None:
    request = world.request("registry.example.com/web:1.1.0-stuck", progress_deadline_seconds=120)
    release, result = release_in_background(request)
    deadline = time.monotonic() + 30
    while read_colour(world.api, TARGET, "green") is None:
        assert time.monotonic() < deadline, "the release never deployed green"
        time.sleep(0.05)

    outcome = rollback(RollbackRequest(namespace="shop", app="web"), reason="wrong image")
    release.join(timeout=30)

    assert outcome.action == "abort_requested" and "rolled back on request" in outcome.detail
    assert result["state"].is_failed() and "wrong image" in result["state"].message
    assert world.selected() == "blue" and read_colour(world.api, TARGET, "green").replicas == 0
