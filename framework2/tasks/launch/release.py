"""The steps of a blue-green release and of its rollback, as plain functions over the cluster.

Each step writes the release state to the cluster (see ``state.py``) before it changes anything, so the
flow that calls these steps can die at any point and a re-run, or ``plos-rollback``, finds out what was
done and converges. The flow (``flows/launch.py``) decides *when* to call which step; this module
knows *how* each step is made and undone.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from pydantic import BaseModel, Field, field_validator, model_validator

from framework2.tasks.launch.analysis import AnalysisResult, MetricSpec, run_analysis
from framework2.tasks.launch.cluster import ClusterError, ReleaseTarget
from framework2.tasks.launch.judge import JudgeResult, compare_samples
from framework2.tasks.launch.metrics import render
from framework2.tasks.launch.rollout import (
    HpaSettings,
    apply_colour,
    delete_hpa,
    read_colour,
    read_hpa_target,
    retarget_hpa,
    scale,
    upsert_hpa,
    wait_for_rollout,
)
from framework2.tasks.launch.state import (
    COLOUR_LABEL,
    ReleaseState,
    Step,
    TimelineEntry,
    Undo,
    abort_requested,
    clear_abort,
    read_state,
    select_preview,
    write_state,
)

# Conventional metric names of an app instrumented with a Prometheus client library, with the pod label
# framework2.io/colour relabelled to `colour` (see k8s/example-app.yaml). Edit them in the release form.
DEFAULT_ERROR_RATE = (
    'sum(rate(http_requests_total{namespace="{{namespace}}",app="{{app}}",colour="{{colour}}",code=~"5.."}[1m]))'
    ' / sum(rate(http_requests_total{namespace="{{namespace}}",app="{{app}}",colour="{{colour}}"}[1m]))'
)
DEFAULT_SUCCESS_RATE = (
    'sum(rate(http_requests_total{namespace="{{namespace}}",app="{{app}}",colour="{{colour}}",code!~"5.."}[1m]))'
    ' / sum(rate(http_requests_total{namespace="{{namespace}}",app="{{app}}",colour="{{colour}}"}[1m]))'
)
DEFAULT_P95_LATENCY = (
    "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket"
    '{namespace="{{namespace}}",app="{{app}}",colour="{{colour}}"}[1m])))'
)


def default_pre_promotion() -> list[MetricSpec]:
    """Smoke check, success rate (the seed's 99 %) and p95 latency of the new colour behind the preview."""
    return [
        MetricSpec(
            name="smoke", kind="http", query="/healthz", success_condition="result == 1", count=3, interval_seconds=10
        ),
        MetricSpec(
            name="success-rate",
            query=DEFAULT_SUCCESS_RATE,
            success_condition="result >= 0.99",
            failure_condition="result < 0.95",
            count=5,
            interval_seconds=30,
            initial_delay_seconds=30,
        ),
        MetricSpec(
            name="p95-latency",
            query=DEFAULT_P95_LATENCY,
            success_condition="result <= 0.5",
            count=5,
            interval_seconds=30,
            initial_delay_seconds=30,
        ),
    ]


class JudgeSpec(BaseModel):
    """A statistical comparison of the new colour with the live one (Mann-Whitney U), before promotion."""

    name: str = Field(..., min_length=1, description="Name shown in results, e.g. 'latency-vs-live'.")
    query: str = Field(
        ..., min_length=1, description="PromQL of one colour's value over time; {{colour}} is filled for each colour."
    )
    higher_is_worse: bool = Field(True, description="True for latency or errors, False for e.g. throughput.")
    effect_tolerance: float = Field(
        0.1, ge=0, description="Relative worsening of the median tolerated even when significant (0.1 = 10 %)."
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="Significance level of the one-sided test.")
    window_seconds: float = Field(60, gt=0, description="Seconds of history compared, ending now.")
    step_seconds: float = Field(5, gt=0, description="Seconds between samples in that window.")
    min_samples: int = Field(5, ge=1, description="Fewer samples on either side: inconclusive.")


class AnalysisSettings(BaseModel):
    """What is measured before and after promotion, and where."""

    prometheus_url: str | None = Field(None, description="Prometheus base URL, e.g. http://prometheus:9090.")
    preview_url: str = Field(
        "http://{{preview_service}}.{{namespace}}.svc.cluster.local",
        description="Base URL of the preview Service for smoke checks (placeholders {{app}}, {{colour}}, ...).",
    )
    pre_promotion: list[MetricSpec] = Field(
        default_factory=default_pre_promotion, description="Metrics the new colour must pass before promotion."
    )
    error_rate_query: str = Field(DEFAULT_ERROR_RATE, description="PromQL error ratio of a colour (0..1).")
    rollback_threshold: float = Field(
        0.1, ge=0, le=1, description="Error-rate bound after promotion (the seed's rollbackThreshold)."
    )
    post_promotion_intervals: int = Field(5, ge=0, description="Error-rate measurements after promotion; 0 skips.")
    post_promotion_interval_seconds: float = Field(30, gt=0, description="Seconds between those measurements.")
    judges: list[JudgeSpec] = Field(
        default_factory=list,
        description="Statistical comparisons of the new colour with the live one after the pre-promotion analysis.",
    )

    def post_promotion_metric(self) -> MetricSpec | None:
        """The error-rate check run while the new colour carries production traffic."""
        if self.post_promotion_intervals == 0:
            return None
        return MetricSpec(
            name="error-rate",
            query=self.error_rate_query,
            failure_condition=f"result > {self.rollback_threshold}",
            count=self.post_promotion_intervals,
            interval_seconds=self.post_promotion_interval_seconds,
            error_retry_seconds=min(10.0, self.post_promotion_interval_seconds),
        )


class ChangeFacts(BaseModel):
    """What is being released, for the launch-success prediction."""

    change_size_lines: int = Field(0, ge=0, description="Lines changed since the live revision.")
    files_changed: int = Field(0, ge=0, description="Files changed since the live revision.")
    test_pass_rate: float = Field(1.0, ge=0, le=1, description="Share of CI tests that passed for this revision.")


_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")


def revision_of(image: str) -> str:
    """A label-safe revision from an image reference: its tag, or the start of its digest."""
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        ref = name.split("@", 1)[1].split(":", 1)[-1][:12]
    elif ":" in name:
        ref = name.rsplit(":", 1)[1]
    else:
        ref = "latest"
    ref = re.sub(r"[^A-Za-z0-9_.-]", "-", ref).strip("-_.")[:63] or "latest"
    return ref


class ReleaseRequest(BaseModel):
    """Everything a blue-green release needs; the Prefect UI shows it as the run's form."""

    cluster_block: str = Field(
        "plos", description="Name of the kubernetes-cluster block; empty renders the plan without a cluster."
    )
    namespace: str = Field("default", min_length=1, description="Namespace of the app.")
    app: str = Field(..., min_length=1, description="App name; its Deployments are <app>-blue and <app>-green.")
    image: str = Field(..., description="Image to release, e.g. registry.example.com/web:1.4.2.")
    revision: str | None = Field(None, description="Revision label; empty takes the image tag.")
    replicas: int = Field(3, ge=1, le=1000, description="Replicas of the new colour before autoscaling.")
    active_service: str | None = Field(None, description="Service carrying production traffic; empty: <app>-active.")
    preview_service: str | None = Field(None, description="Service for analysis; empty: <app>-preview.")
    progress_deadline_seconds: int = Field(600, ge=5, description="Seconds the new colour has to become ready.")
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings, description="Pre/post-promotion analysis.")
    auto_promotion: bool = Field(True, description="Promote as soon as the analysis passes; off waits for a person.")
    auto_promotion_seconds: int = Field(
        0, ge=0, description="With auto-promotion off: promote anyway after this many seconds (0 = wait for a person)."
    )
    scale_down_delay_seconds: float = Field(
        30, ge=0, description="Seconds the old colour stays up after promotion: the window of instant rollback."
    )
    abort_teardown_delay_seconds: float = Field(
        30, ge=0, description="Seconds an aborted new colour stays up (for debugging) before it is scaled to zero."
    )
    hpa: HpaSettings | None = Field(
        default_factory=HpaSettings, description="HorizontalPodAutoscaler for the new colour; empty for none."
    )
    change: ChangeFacts = Field(default_factory=ChangeFacts, description="Facts for the success prediction.")
    success_threshold: float = Field(
        0.7, ge=0, le=1, description="Below this predicted success probability the release waits for approval."
    )
    force: bool = Field(False, description="Skip the approval a low success prediction asks for.")
    approval_timeout_seconds: float = Field(3600, gt=0, description="How long a pause waits for a person.")
    lock_ttl_seconds: int = Field(
        60, ge=5, description="Release lock lifetime; renewed while the run lives, so a dead run frees it."
    )
    dry_run: bool = Field(False, description="Check and plan only; change nothing in the cluster.")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("image must be a non-empty image reference without spaces, e.g. registry/web:1.4.2")
        return value

    @field_validator("revision")
    @classmethod
    def _revision(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and not _LABEL_VALUE.match(value.strip()):
            raise ValueError(
                f"revision {value!r} is not a valid label value (letters, digits, '-', '_', '.', at most 63)"
            )
        return value.strip() if value and value.strip() else None

    @model_validator(mode="after")
    def _names(self) -> ReleaseRequest:
        self.active_service = self.active_service or f"{self.app}-active"
        self.preview_service = self.preview_service or f"{self.app}-preview"
        self.revision = self.revision or revision_of(self.image)
        ReleaseTarget.model_validate(self.target_fields())  # names checked before any call
        return self

    def target_fields(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "app": self.app,
            "active_service": self.active_service or f"{self.app}-active",
            "preview_service": self.preview_service or f"{self.app}-preview",
        }

    @property
    def target(self) -> ReleaseTarget:
        return ReleaseTarget.model_validate(self.target_fields())


@dataclass
class ReleaseRun:
    """A release in progress: the cluster, its state, and the timeline a person will read."""

    api: client.ApiClient
    target: ReleaseTarget
    state: ReleaseState
    timeline: list[TimelineEntry] = field(default_factory=list)
    analyses: dict[str, AnalysisResult] = field(default_factory=dict)
    judgements: dict[str, JudgeResult] = field(default_factory=dict)
    log: Callable[[str], None] = print
    # Raises when this run may no longer own the release (its lock was lost); called before every change.
    guard: Callable[[], None] = lambda: None

    def note(self, step: str, detail: str, traffic: str | None = None) -> None:
        """Add a line to the timeline (and the run's log)."""
        self.timeline.append(TimelineEntry(at=datetime.now(UTC), step=step, detail=detail, traffic=traffic))
        self.log(f"{step}: {detail}")


def new_state(
    request: ReleaseRequest,
    holder: str,
    from_colour: str | None,
    to_colour: str,
    previous_image: str | None,
    previous_revision: str | None,
) -> ReleaseState:
    """The state a new release starts with."""
    return ReleaseState(
        release_id=str(uuid.uuid4()),
        holder=holder,
        app=request.app,
        image=request.image,
        revision=request.revision or revision_of(request.image),
        from_colour=from_colour,
        to_colour=to_colour,
        previous_image=previous_image,
        previous_revision=previous_revision,
    )


def _record(run: ReleaseRun, action: str, undo: Undo | None) -> None:
    run.guard()
    # A resumed release records each step once: an identical step not yet undone is already in the log.
    for step in run.state.steps:
        if step.action == action and step.undo == undo and step.undone_at is None:
            return
    run.state.steps.append(Step(action=action, at=datetime.now(UTC), undo=undo))
    write_state(run.api, run.target, run.state)


def deploy_new_colour(run: ReleaseRun, request: ReleaseRequest, on_progress: Callable[[Any], None] | None = None):  # type: ignore[no-untyped-def]
    """Create or update the new colour's Deployment and wait until its pods are ready (or fail fast)."""
    state = run.state
    state.phase = "deploying"
    _record(
        run,
        f"deploy {state.to_colour} {state.image} ×{request.replicas}",
        Undo(op="scale", colour=state.to_colour, replicas=0),
    )
    live = read_colour(run.api, run.target, state.from_colour) if state.from_colour else None
    apply_colour(
        run.api,
        run.target,
        state.to_colour,
        state.image,
        state.revision,
        request.replicas,
        request.progress_deadline_seconds,
        template=live.template if live else None,
    )
    run.note(
        "deploy",
        f"{state.to_colour} → {state.image} (revision {state.revision}), {request.replicas} replicas",
        traffic=state.from_colour,
    )
    _, aborted = abortable_sleep(run)
    progress = wait_for_rollout(
        run.api,
        run.target,
        state.to_colour,
        state.revision,
        request.replicas,
        request.progress_deadline_seconds,
        on_progress=on_progress,
        stop_reason=lambda: aborted.reason[0] if aborted() else None,  # type: ignore[attr-defined]
    )
    run.note(
        "rollout",
        f"{state.to_colour}: {progress.ready}/{progress.desired} pods ready in {progress.elapsed_seconds:.1f} s",
        traffic=state.from_colour,
    )
    return progress


def open_preview(run: ReleaseRun) -> None:
    """Point the preview Service at the new colour for the pre-promotion analysis."""
    state = run.state
    state.phase = "analysing"
    _record(run, f"preview → {state.to_colour}", Undo(op="preview_select", colour=state.from_colour))
    select_preview(run.api, run.target, state.to_colour)
    run.note("preview", f"{run.target.preview_service} → {state.to_colour}", traffic=state.from_colour)


def measure_context(run: ReleaseRun) -> dict[str, str]:
    """Values of the placeholders in queries and URLs."""
    state = run.state
    return {
        "app": run.target.app,
        "namespace": run.target.namespace,
        "colour": state.to_colour,
        "baseline_colour": state.from_colour or "",
        "revision": state.revision,
        "preview_service": run.target.preview_service,
        "active_service": run.target.active_service,
    }


def abortable_sleep(run: ReleaseRun, poll_seconds: float = 1.0) -> tuple[Callable[[float], None], Callable[[], bool]]:
    """A sleep that wakes early on an abort request, and the check that ends the analysis then."""
    reason: list[str] = []

    def aborted() -> bool:
        if not reason:
            try:
                found = abort_requested(run.api, run.target, run.state.release_id, run.state.holder)
            except Exception as exc:  # cannot read the request now: that is not a request to roll back
                run.log(f"could not check for an abort request: {type(exc).__name__}: {exc}")
                found = None
            if found:
                reason.append(found)
        return bool(reason)

    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(poll_seconds, left))
            if aborted():
                return

    aborted.reason = reason  # type: ignore[attr-defined]
    return sleep, aborted


def analyse(
    run: ReleaseRun, name: str, specs: list[MetricSpec], measure: Callable[[MetricSpec], float | None]
) -> tuple[AnalysisResult, str | None]:
    """Run one analysis; returns the result and the abort reason when someone asked to stop."""
    sleep, aborted = abortable_sleep(run)
    result = run_analysis(specs, measure, sleep=sleep, should_stop=aborted)
    run.analyses[name] = result
    reason = aborted.reason[0] if aborted.reason else None  # type: ignore[attr-defined]
    traffic = run.state.to_colour if run.state.phase == "promoted" else run.state.from_colour
    run.note(
        f"{name} analysis",
        f"{result.phase}: {result.reason}" + (f" (abort: {reason})" if reason else ""),
        traffic=traffic,
    )
    return result, reason


def judge_against_live(
    run: ReleaseRun, specs: list[JudgeSpec], sample: Callable[[str, float, float, float], list[float]]
) -> tuple[str, str]:
    """Compare the new colour's samples with the live colour's for each judge; the worst verdict decides.

    ``sample(promql, start, end, step)`` returns a series' values (``metrics.sample_series`` bound to an
    HTTP client and Prometheus). Returns (phase, reason) with phase successful, failed or inconclusive.
    """
    state = run.state
    if not specs:
        return "successful", "no judges configured"
    if not state.from_colour:
        return "successful", "first release: no live colour to compare with"
    verdicts = []
    for spec in specs:
        end = time.time()
        start = end - spec.window_seconds
        context = measure_context(run)
        baseline = sample(render(spec.query, context | {"colour": state.from_colour}), start, end, spec.step_seconds)
        candidate = sample(render(spec.query, context), start, end, spec.step_seconds)
        result = compare_samples(
            baseline,
            candidate,
            higher_is_worse=spec.higher_is_worse,
            effect_tolerance=spec.effect_tolerance,
            alpha=spec.alpha,
            min_samples=spec.min_samples,
        )
        run.judgements[spec.name] = result
        run.note(f"judge {spec.name}", f"{result.phase}: {result.reason}", traffic=state.from_colour)
        verdicts.append((spec.name, result))
    for phase in ("failed", "inconclusive"):
        hit = [f"{name}: {r.reason}" for name, r in verdicts if r.phase == phase]
        if hit:
            return phase, "; ".join(hit)
    return "successful", "; ".join(f"{name}: {r.reason}" for name, r in verdicts)


def promote(run: ReleaseRun) -> None:
    """Switch production traffic to the new colour: selector and state in one PATCH."""
    run.guard()
    state = run.state
    undo = Undo(op="select", colour=state.from_colour)
    if not any(s.undo == undo and s.undone_at is None for s in state.steps):
        state.steps.append(Step(action=f"traffic → {state.to_colour}", at=datetime.now(UTC), undo=undo))
    state.phase = "promoted"
    state.promoted_at = state.promoted_at or datetime.now(UTC)
    write_state(run.api, run.target, state, selector={COLOUR_LABEL: state.to_colour})
    run.note("promote", f"{run.target.active_service} selects {state.to_colour}", traffic=state.to_colour)


def complete(run: ReleaseRun, hpa: HpaSettings | None) -> None:
    """Keep the release: point the autoscaler at the new colour and mark the release completed."""
    run.guard()
    state = run.state
    existing = read_hpa_target(run.api, run.target)
    if hpa is None and existing and existing != state.to_colour:
        # No HPA asked for, but one exists: left on the old colour it would scale that colour back up.
        _record(run, f"autoscaler → {state.to_colour} (existing limits)", Undo(op="hpa_target", colour=existing))
        retarget_hpa(run.api, run.target, state.to_colour)
        run.note("autoscale", f"existing HPA {run.target.app} → {state.to_colour}", traffic=state.to_colour)
    if hpa is not None:
        before = existing
        undo = Undo(op="hpa_target", colour=before) if before else Undo(op="hpa_delete")
        _record(
            run,
            f"autoscaler → {state.to_colour} ({hpa.min_replicas}-{hpa.max_replicas}, "
            f"{hpa.cpu_utilization_percent} % CPU)",
            undo,
        )
        upsert_hpa(run.api, run.target, state.to_colour, hpa)
        run.note(
            "autoscale",
            f"HPA {run.target.app} → {state.to_colour}: {hpa.min_replicas}–{hpa.max_replicas} "
            f"replicas at {hpa.cpu_utilization_percent} % CPU",
            traffic=state.to_colour,
        )
    state.phase = "completed"
    state.completed_at = datetime.now(UTC)
    write_state(run.api, run.target, state)
    run.note("complete", f"{state.image} is live on {state.to_colour}", traffic=state.to_colour)


def scale_down_old(api: client.ApiClient, target: ReleaseTarget, release_id: str) -> str:
    """Scale the old colour to zero if this release is still the live one; says what it did."""
    state, selected = read_state(api, target)
    if state is None or state.release_id != release_id or state.phase != "completed":
        return "skipped: the release is no longer the completed live release (rolled back or superseded)"
    if selected != state.to_colour or not state.from_colour:
        return f"skipped: traffic is on {selected}, not {state.to_colour}"
    now = datetime.now(UTC)
    state.close_log(now)  # from here on a rollback must bring the old revision back up: a redeploy
    state.steps.append(Step(action=f"scale {state.from_colour} to 0", at=now))
    write_state(api, target, state)
    scale(api, target, state.from_colour, 0)
    state.old_scaled_down_at = datetime.now(UTC)
    write_state(api, target, state)
    return f"{state.from_colour} scaled to 0"


def _undo(api: client.ApiClient, target: ReleaseTarget, state: ReleaseState, step: Step) -> None:
    undo = step.undo
    assert undo is not None
    step.undone_at = datetime.now(UTC)
    if undo.op == "select":
        if undo.colour and not colour_ready(api, target, undo.colour):
            step.undone_at = None
            raise ClusterError(
                f"will not switch traffic back to {undo.colour}: it has no ready pods",
                hint=f"traffic stays on {state.to_colour}; run plos-rollback, which redeploys the previous revision",
            )
        # Traffic and state change together; a first release had no colour to go back to.
        write_state(api, target, state, selector={COLOUR_LABEL: undo.colour})
        return
    if undo.op == "scale":
        scale(api, target, undo.colour or "", undo.replicas or 0)
    elif undo.op == "preview_select":
        if undo.colour:
            select_preview(api, target, undo.colour)
    elif undo.op == "hpa_target":
        current = read_hpa_target(api, target)
        if current and undo.colour and current != undo.colour:
            retarget_hpa(api, target, undo.colour)
    elif undo.op == "hpa_delete":
        delete_hpa(api, target)
    write_state(api, target, state)


def roll_back(
    api: client.ApiClient,
    target: ReleaseTarget,
    state: ReleaseState,
    reason: str,
    *,
    teardown_delay_seconds: float = 0,
    note: Callable[[str, str, str | None], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ReleaseState:
    """Undo every recorded step, newest first: traffic goes back before anything is scaled down.

    Scaling the new colour to zero waits ``teardown_delay_seconds`` (an abort keeps it for debugging);
    the traffic switch never waits. An undo that fails does not stop the others; the release then stays
    ``rolling_back`` and a ClusterError names what is left, for ``plos-rollback`` to finish.
    """
    state.phase = "rolling_back"
    state.reason = reason
    try:
        write_state(api, target, state)
    except Exception as exc:
        raise ClusterError(
            f"rollback of release {state.release_id} is incomplete: it could not even start "
            f"({type(exc).__name__} {str(exc).splitlines()[0][:120]}); nothing was changed",
            hint="run plos-rollback for this app again once the API server answers",
        ) from exc
    failures: list[str] = []

    def undo(step: Step) -> bool:
        try:
            _undo(api, target, state, step)
        except Exception as exc:
            step.undone_at = None
            failures.append(f"{step.action}: {type(exc).__name__} {str(exc).splitlines()[0][:120]}")
            return False
        if note:
            traffic = step.undo.colour if step.undo and step.undo.op == "select" else None
            note("rollback", f"undone: {step.action}", traffic)
        return True

    deferred: list[Step] = []
    for step in state.pending_undos():
        if step.undo and step.undo.op == "scale" and teardown_delay_seconds > 0:
            deferred.append(step)
            continue
        if not undo(step) and step.undo and step.undo.op == "select":
            deferred = []  # traffic is still on the new colour: scaling anything down now would be an outage
            break
    if deferred:
        if note:
            note("rollback", f"new colour kept {teardown_delay_seconds:.0f} s for inspection, then scaled to 0", None)
        sleep(teardown_delay_seconds)
        for step in deferred:
            undo(step)
    if failures:
        raise ClusterError(
            f"rollback of release {state.release_id} is incomplete: {'; '.join(failures)}",
            hint="run plos-rollback for this app again once the API server answers; it resumes where this stopped",
        )
    state.phase = "rolled_back"
    write_state(api, target, state)
    clear_abort(api, target)
    return state


def colour_ready(api: client.ApiClient, target: ReleaseTarget, colour: str) -> bool:
    """True when ``colour`` has a Deployment with replicas and all of them ready."""
    live = read_colour(api, target, colour)
    return bool(live is not None and live.replicas > 0 and live.ready_replicas >= live.replicas)


def old_colour_ready(api: client.ApiClient, target: ReleaseTarget, state: ReleaseState) -> bool:
    """True when the previous colour still runs the previous revision at full strength."""
    if not state.from_colour:
        return False
    live = read_colour(api, target, state.from_colour)
    return bool(
        live is not None
        and live.revision == state.previous_revision
        and live.replicas > 0
        and live.ready_replicas >= live.replicas
    )


def fast_rollback_possible(
    api: client.ApiClient, target: ReleaseTarget, state: ReleaseState, window: timedelta
) -> tuple[bool, str]:
    """Whether a completed release can be taken back with an instant selector switch, and why (not)."""
    if state.phase != "completed" or state.promoted_at is None:
        return False, f"the release is {state.phase}, not completed"
    age = datetime.now(UTC) - state.promoted_at
    if age > window:
        return False, f"promoted {age.total_seconds():.0f} s ago, outside the {window.total_seconds():.0f} s window"
    if not old_colour_ready(api, target, state):
        return False, f"the old colour {state.from_colour} is no longer up with revision {state.previous_revision}"
    return True, f"promoted {age.total_seconds():.0f} s ago and {state.from_colour} is still up"


def redeploy_previous(run: ReleaseRun, progress_deadline_seconds: int, reason: str) -> str:
    """Roll back a completed release whose old colour is gone: bring the previous revision up on the idle
    colour, wait for it, then switch traffic and the autoscaler to it and scale the bad colour to zero.

    If the previous revision does not come up, it is scaled back to zero and the release stays completed
    (traffic never left it), and a ClusterError says so.
    """
    state, api, target = run.state, run.api, run.target
    if not state.previous_image or not state.previous_revision or not state.from_colour:
        raise ClusterError(
            f"release {state.release_id} recorded no previous revision, so there is nothing to go back to",
            hint="release the image you want with plos-blue-green-release",
        )
    run.guard()
    bad = read_colour(api, target, state.to_colour)
    replicas = max(1, bad.replicas if bad else 1)
    previous, old = state.previous_revision, state.from_colour
    state.steps.append(
        Step(
            action=f"redeploy {old} {state.previous_image} ×{replicas}",
            at=datetime.now(UTC),
            undo=Undo(op="scale", colour=old, replicas=0),
        )
    )
    write_state(api, target, state)
    try:
        apply_colour(
            api,
            target,
            old,
            state.previous_image,
            previous,
            replicas,
            progress_deadline_seconds,
            template=bad.template if bad else None,
        )
        run.note("redeploy", f"{old} → {state.previous_image} ×{replicas}", traffic=state.to_colour)
        progress = wait_for_rollout(api, target, old, previous, replicas, progress_deadline_seconds)
    except Exception as exc:
        scale(api, target, old, 0)
        state.steps[-1].undone_at = datetime.now(UTC)
        write_state(api, target, state)
        raise ClusterError(
            f"rollback of {state.image} failed: the previous revision {previous} did not come up on {old} "
            f"({str(exc).splitlines()[0][:200]}); traffic stays on {state.to_colour}",
            hint="fix the cause (see the message), then run plos-rollback again or release a fixed image",
        ) from exc
    state.phase = "rolled_back"
    state.reason = reason
    state.close_log(datetime.now(UTC))
    state.steps.append(Step(action=f"traffic → {old} (redeployed {previous})", at=datetime.now(UTC)))
    write_state(api, target, state, selector={COLOUR_LABEL: old})
    run.note("switch", f"traffic → {old} ({progress.ready} pods ready)", traffic=old)
    if read_hpa_target(api, target) == state.to_colour:
        retarget_hpa(api, target, old)
    scale(api, target, state.to_colour, 0)
    run.note("scale down", f"{state.to_colour} → 0", traffic=old)
    return f"previous revision {previous} redeployed on {old} and live"
