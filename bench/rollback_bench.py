"""PLOS rollback benchmark: time from the first failing analysis measurement to traffic back on the old colour.

Usage: .venv/bin/python bench/rollback_bench.py [--runs 5] [--interval 2] [--ready-delay 2]

The world is the one the end-to-end release tests use, started without pytest: the kmock Kubernetes API
emulator with the simulated controller (``tests/k8s_fixtures.py``), the demo app standing in for both
colours' pods, and a real Prometheus scraping it every second (``tests/prom_fixtures.py``). Services
``web-active``/``web-preview`` select blue, which runs v1 with 2 replicas. No Prefect server is involved:
each run calls the release steps of ``framework2.tasks.launch.release`` directly.

Fast switch (what the post-promotion analysis does while the old colour is still up): release green
(``deploy_new_colour``, ``open_preview``, ``promote``), make green answer 50 % of its requests with 500
right after the promotion PATCH, run the post-promotion error-rate analysis (``analyse`` with
``AnalysisSettings.post_promotion_metric()``: error ratio over ``[3s]`` > 0.1, one measurement per
``--interval`` seconds, stopping at the first failure) and call ``roll_back`` as soon as it returns failed.

Baseline, measured in the same process and interleaved run by run: the rollback once the old colour is
gone. Green is released the same way, then completed and blue scaled to 0 (``complete``,
``scale_down_old``); green turns faulty, the same analysis runs, and on its failure ``redeploy_previous``
brings v1 back on blue, waits for its pods and only then switches traffic.

The figure is "first failing measurement → traffic back": from ``Measurement.at`` of the first failed
measurement (taken when Prometheus' answer arrived) to the moment a watcher thread, polling the active
Service with ``read_state`` over its own connection (5 ms sleep between reads), first sees the selector
on blue (its timestamp is taken after the read returns, so the figure is an upper bound by the poll gap
plus one read). The time the selector PATCH itself was answered (the timeline entry the rollback writes right
after it) is printed underneath as a cross-check, with the watcher's actual read period.

kmock keeps every request it answered, in its own log and in each reaction's, and matching a request
walks those logs, so the emulator slows down linearly with its uptime (the controller alone lists ~35
times a second; a read of the Service went from ~5 ms to ~60 ms within two minutes in a trial, and the
runs got slower one after another). Nothing asserts on the log here, so the benchmark empties it before
each measured analysis (``_forget_requests``). The watcher sends the simulated controller's User-Agent,
which keeps its reads out of the emulator's own log; the fetch reaction's log still holds them until the
next clean-up, so within a run its polling slows the emulator slightly and the figures err high.

The simulated controller makes a pod Ready ``--ready-delay`` seconds after creating it (2 s by default:
a small image already on the node with a quick readiness probe). That delay dominates the redeploy
figure; on a real cluster image pulls, scheduling and slower probes make it larger still, while the
fast switch stays one PATCH. Between runs green is scaled to 0, the demo app is made healthy and the run
waits until Prometheus shows green healthy again, so every run starts from the same state.

The target is the issue's: traffic back within one analysis interval of the first failing measurement,
checked on the worst run (max). Exits non-zero only when something crashes; missing the target is
reported, not fatal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from kubernetes import client  # noqa: E402
from results import record, text_table  # noqa: E402  (bench/results.py: summary rows, tables)

from framework2.sample.demo_app import DemoApp  # noqa: E402
from framework2.tasks.launch.analysis import AnalysisResult  # noqa: E402
from framework2.tasks.launch.cluster import COLOUR_LABEL, ReleaseTarget  # noqa: E402
from framework2.tasks.launch.metrics import AnalysisEndpoints, make_measure  # noqa: E402
from framework2.tasks.launch.release import (  # noqa: E402
    AnalysisSettings,
    ReleaseRequest,
    ReleaseRun,
    analyse,
    complete,
    deploy_new_colour,
    measure_context,
    new_state,
    open_preview,
    promote,
    redeploy_previous,
    roll_back,
    scale_down_old,
)
from framework2.tasks.launch.rollout import apply_colour, read_colour, wait_for_rollout  # noqa: E402
from framework2.tasks.launch.state import read_state  # noqa: E402
from tests.k8s_fixtures import CONTROLLER_AGENT, FakeCluster, running_cluster  # noqa: E402
from tests.prom_fixtures import PrometheusServer, running_prometheus  # noqa: E402

TARGET = ReleaseTarget(namespace="shop", app="web", active_service="web-active", preview_service="web-preview")
V1 = "registry.example.com/web:1.0.0"
V2 = "registry.example.com/web:1.1.0"
REPLICAS = 2
ERROR_RATE = (
    'sum(rate(demo_http_requests_total{colour="{{colour}}",code=~"5.."}[3s]))'
    ' / sum(rate(demo_http_requests_total{colour="{{colour}}"}[3s]))'
)
SUCCESS_RATE = (
    'sum(rate(demo_http_requests_total{colour="{{colour}}",code!~"5.."}[3s]))'
    ' / sum(rate(demo_http_requests_total{colour="{{colour}}"}[3s]))'
)
FAULTY_ERROR_RATE = 0.5
WATCH_POLL_SECONDS = 0.005
# Enough measurements that the analysis always reaches the failure; it stops at the first one.
MEASUREMENTS = 10


@dataclass
class Sample:
    """One run: seconds from the first failing measurement to traffic back, seen two ways."""

    watched: float  # the watcher saw the active Service select blue
    patched: float  # the rollback's selector PATCH was answered (its timeline entry)
    to_rollback_start: float  # until roll_back / redeploy_previous was called
    poll_period: float  # the watcher's mean seconds between two reads


class SelectorWatcher:
    """Polls the active Service until it selects ``colour``; remembers when it first saw that."""

    def __init__(self, cluster: FakeCluster, colour: str) -> None:
        self.api = cluster.api()
        self.api.user_agent = CONTROLLER_AGENT  # keep the emulator's request log for the code under test
        self.colour = colour
        self.seen_at: datetime | None = None
        self.reads = 0
        self._first_read = self._last_read = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="selector-watcher", daemon=True)

    def start(self) -> SelectorWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        self._first_read = time.monotonic()
        while not self._stop.is_set():
            selected = read_state(self.api, TARGET)[1]
            self.reads += 1
            self._last_read = time.monotonic()
            if selected == self.colour:
                self.seen_at = datetime.now(UTC)
                return
            self._stop.wait(WATCH_POLL_SECONDS)

    @property
    def poll_period(self) -> float:
        """Mean seconds from one read to the next (sleep plus the read itself)."""
        return (self._last_read - self._first_read) / max(1, self.reads - 1)

    def result(self, timeout: float = 60) -> datetime:
        self._thread.join(timeout)
        self._stop.set()
        self.api.close()
        if self.seen_at is None:
            raise RuntimeError(f"the active Service did not select {self.colour} within {timeout:g} s")
        return self.seen_at


def _forget_requests(cluster: FakeCluster) -> None:
    """Empty kmock's request logs (see the module docstring); reactions and objects are kept."""
    emulator = cluster.emulator
    emulator._requests.clear()  # the same private log tests/k8s_fixtures.Emulator trims
    for reaction in emulator._payloads:
        reaction._requests.clear()


def _service(name: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, namespace=TARGET.namespace),
        spec=client.V1ServiceSpec(
            selector={"app": TARGET.app, COLOUR_LABEL: "blue"},
            ports=[client.V1ServicePort(port=80, target_port=8080)],
        ),
    )


def _request(prometheus: PrometheusServer, demo: DemoApp, interval: float) -> ReleaseRequest:
    analysis = AnalysisSettings(
        prometheus_url=prometheus.url,
        preview_url=demo.url + "/{{colour}}",
        pre_promotion=[],
        error_rate_query=ERROR_RATE,
        rollback_threshold=0.1,
        post_promotion_intervals=MEASUREMENTS,
        post_promotion_interval_seconds=interval,
    )
    return ReleaseRequest(
        namespace=TARGET.namespace,
        app=TARGET.app,
        image=V2,
        replicas=REPLICAS,
        progress_deadline_seconds=60,
        analysis=analysis,
        hpa=None,
    )


def _release_green(api: client.ApiClient, request: ReleaseRequest) -> ReleaseRun:
    """Deploy green, point the preview at it and promote it; blue stays up."""
    live = read_colour(api, TARGET, "blue")
    if live is None or live.ready_replicas < REPLICAS:
        raise RuntimeError(f"blue is not up before the release: {live}")
    state = new_state(request, "rollback-bench", "blue", "green", live.image, live.revision)
    run = ReleaseRun(api, TARGET, state, log=lambda *_: None)
    deploy_new_colour(run, request)
    open_preview(run)
    promote(run)
    return run


def _failing_analysis(run: ReleaseRun, request: ReleaseRequest) -> tuple[AnalysisResult, datetime]:
    """Run the post-promotion error-rate analysis; it must fail. Returns it and its first failure's time."""
    spec = request.analysis.post_promotion_metric()
    assert spec is not None
    endpoints = AnalysisEndpoints(
        prometheus_url=request.analysis.prometheus_url, preview_url=request.analysis.preview_url
    )
    with httpx.Client(timeout=10) as http:
        result, aborted = analyse(run, "post-promotion", [spec], make_measure(endpoints, measure_context(run), http))
    failed = [m for m in result.measurements if m.phase == "failed"]
    if result.phase != "failed" or aborted or not failed:
        raise RuntimeError(f"the post-promotion analysis did not fail: {result.phase}: {result.reason}")
    return result, failed[0].at


def _patched_at(run: ReleaseRun, after: datetime) -> datetime:
    """When the rollback's selector PATCH was answered: its timeline entry with traffic back on blue."""
    for entry in run.timeline:
        if entry.at >= after and entry.traffic == "blue" and entry.step in ("rollback", "switch"):
            return entry.at
    raise RuntimeError("the rollback wrote no timeline entry for the traffic switch")


def _measure(
    cluster: FakeCluster,
    run: ReleaseRun,
    request: ReleaseRequest,
    demo: DemoApp,
    take_back: Callable[[ReleaseRun, str], None],
) -> Sample:
    _forget_requests(cluster)
    watcher = SelectorWatcher(cluster, "blue").start()  # the selector is on green now
    demo.set_behaviour("green", error_rate=FAULTY_ERROR_RATE)
    result, first_failure = _failing_analysis(run, request)
    rollback_start = datetime.now(UTC)
    take_back(run, f"post-promotion analysis {result.phase}: {result.reason}")
    seen = watcher.result()
    return Sample(
        watched=(seen - first_failure).total_seconds(),
        patched=(_patched_at(run, first_failure) - first_failure).total_seconds(),
        to_rollback_start=(rollback_start - first_failure).total_seconds(),
        poll_period=watcher.poll_period,
    )


def fast_switch_run(cluster: FakeCluster, api: client.ApiClient, request: ReleaseRequest, demo: DemoApp) -> Sample:
    """Release green, let it fail its post-promotion analysis, roll back by switching the selector."""
    run = _release_green(api, request)

    def take_back(run: ReleaseRun, reason: str) -> None:
        roll_back(api, TARGET, run.state, reason, teardown_delay_seconds=0, note=run.note)

    return _measure(cluster, run, request, demo, take_back)


def redeploy_run(cluster: FakeCluster, api: client.ApiClient, request: ReleaseRequest, demo: DemoApp) -> Sample:
    """Release green, complete it and scale blue to 0; on the failing analysis redeploy v1 on blue."""
    run = _release_green(api, request)
    complete(run, None)
    scale_down_old(api, TARGET, run.state.release_id)
    deadline = time.monotonic() + 30
    while (blue := read_colour(api, TARGET, "blue")) is not None and blue.ready_replicas > 0:
        if time.monotonic() > deadline:
            raise RuntimeError("blue did not scale down to 0 within 30 s")
        time.sleep(0.05)

    def take_back(run: ReleaseRun, reason: str) -> None:
        redeploy_previous(run, request.progress_deadline_seconds, reason)

    return _measure(cluster, run, request, demo, take_back)


def reset(cluster: FakeCluster, api: client.ApiClient, demo: DemoApp, prometheus: PrometheusServer) -> None:
    """Back to the starting point: traffic and v1 on blue, green at 0 and healthy again in Prometheus."""
    _forget_requests(cluster)
    _, selected = read_state(api, TARGET)
    blue, green = read_colour(api, TARGET, "blue"), read_colour(api, TARGET, "green")
    if selected != "blue" or blue is None or blue.image != V1 or (green is not None and green.replicas != 0):
        raise RuntimeError(f"not back at the start: selector {selected}, blue {blue}, green {green}")
    wait_for_rollout(api, TARGET, "blue", "1.0.0", REPLICAS, 60)
    demo.reset()
    prometheus.wait_for(SUCCESS_RATE.replace("{{colour}}", "green"), lambda v: v is not None and v >= 0.999, timeout=30)


def _row(name: str, samples: list[float], interval: float, vs_redeploy: str, gated: bool) -> tuple[str, ...]:
    median, worst = statistics.median(samples), max(samples)
    return (
        name,
        str(len(samples)),
        f"{median:.3f}",
        f"{worst:.3f}",
        f"{interval:g}",
        f"{median / interval:.3f}",
        vs_redeploy,
        f"≤ 1 interval ({interval:g} s)" if gated else "— (baseline)",
        ("PASS" if worst <= interval else "MISS") if gated else "—",
    )


def main(argv: list[str] | None = None) -> int:
    """Start the world, interleave fast-switch and redeploy runs, print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each scenario")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between analysis measurements")
    parser.add_argument(
        "--ready-delay", type=float, default=2.0, help="seconds the simulated kubelet takes to make a pod Ready"
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.interval <= 0:
        parser.error("--runs must be at least 1 and --interval positive")

    fast: list[Sample] = []
    slow: list[Sample] = []
    started = time.monotonic()
    with (
        DemoApp() as demo,
        tempfile.TemporaryDirectory(prefix="rollback-bench-") as home,
        running_prometheus(demo, Path(home)) as prometheus,
        running_cluster() as cluster,
    ):
        cluster.start_controller(ready_delay=args.ready_delay)
        api = cluster.api()
        core = client.CoreV1Api(api)
        for name in (TARGET.active_service, TARGET.preview_service):
            core.create_namespaced_service(TARGET.namespace, _service(name))
        apply_colour(api, TARGET, "blue", V1, "1.0.0", REPLICAS, 60)
        request = _request(prometheus, demo, args.interval)
        reset(cluster, api, demo, prometheus)
        for i in range(args.runs):
            fast.append(fast_switch_run(cluster, api, request, demo))
            reset(cluster, api, demo, prometheus)
            slow.append(redeploy_run(cluster, api, request, demo))
            reset(cluster, api, demo, prometheus)
            print(
                f"run {i + 1}/{args.runs}: fast switch {fast[-1].watched:.3f} s, redeploy {slow[-1].watched:.3f} s",
                file=sys.stderr,
                flush=True,
            )
        api.close()

    fast_s, slow_s = [s.watched for s in fast], [s.watched for s in slow]
    ratio = statistics.median(fast_s) / statistics.median(slow_s)
    rows = [
        _row("fast switch (old colour up, roll_back)", fast_s, args.interval, f"{ratio:.3f}x", True),
        _row("baseline: redeploy previous revision", slow_s, args.interval, "1x", False),
    ]
    header = (
        "scenario",
        "runs",
        "median s",
        "max s",
        "interval s",
        "median/interval",
        "vs redeploy",
        "target",
        "result",
    )
    print("seconds from the first failing post-promotion measurement to the active Service selecting blue again")
    print(text_table(header, rows))
    print()
    print(f"redeploy / fast switch (medians): {1 / ratio:,.0f}x")
    for name, samples in (("fast switch", fast), ("redeploy", slow)):
        patched = statistics.median(s.patched for s in samples)
        start = statistics.median(s.to_rollback_start for s in samples)
        period = statistics.median(s.poll_period for s in samples)
        print(
            f"{name}: after the failing measurement (medians) the rollback was called at {start * 1000:.1f} ms "
            f"and its selector PATCH answered at {patched:.3f} s; watcher read every {period * 1000:.1f} ms"
        )
    print(
        f"simulated pod ready delay {args.ready_delay:g} s (dominates the redeploy figure; image pulls make it "
        f"larger on a real cluster); {REPLICAS} replicas; faulty green answers {FAULTY_ERROR_RATE:.0%} with 500; "
        f"Prometheus scrapes every 1 s; wall time {time.monotonic() - started:.0f} s"
    )
    record(
        "rollback",
        "PLOS rollback: failing measurement to traffic on the old colour (median)",
        f"{args.runs} runs, {REPLICAS} replicas",
        statistics.median(fast_s),
        baseline="redeploy of the previous revision (median)",
        baseline_seconds=statistics.median(slow_s),
        target=f"worst <= 1 analysis interval ({args.interval:g} s)",
        met=max(fast_s) <= args.interval,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
