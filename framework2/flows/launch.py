"""PLOS — blue-green releases on Kubernetes with analysis, automatic rollback and autoscaling.

Pipeline of ``plos-blue-green-release``: preflight and lock → launch-success prediction (pause below the
threshold) → deploy the new colour and watch its rollout → preview + pre-promotion analysis → promote
(one selector patch) → post-promotion analysis → autoscaler, keep → old colour down after its delay.
Any failed analysis, deadline, error or abort request rolls back through the compensation log kept in
the cluster. ``plos-rollback`` takes a release back (instantly within the fast-rollback window);
``plos-release-status`` says what is live. Without a cluster the release renders its plan instead.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, ConfigDict, Field

from framework2.blocks.kubernetes_cluster import KubernetesCluster
from framework2.config import LaunchApp, get_settings
from framework2.errors import ConfigError, Framework2Error
from framework2.events import emit
from framework2.store.engine import open_store
from framework2.store.models import Release
from framework2.store.releases import recent_releases, release_history, save_release, update_release
from framework2.store.runs import finish_run, start_run
from framework2.systems import SystemResult
from framework2.tasks.deadline import answer_at_deadline
from framework2.tasks.launch.cluster import (
    LockKeeper,
    ReleaseInProgress,
    ReleaseTarget,
    acquire_release_lock,
    active_colour,
    lock_name,
    other_colour,
    preflight,
    release_lock,
    server_version,
)
from framework2.tasks.launch.metrics import AnalysisEndpoints, check_metrics, make_measure, render, sample_series
from framework2.tasks.launch.plan import release_plan
from framework2.tasks.launch.prediction import Prediction, features_from_history, predict_success
from framework2.tasks.launch.release import (
    AnalysisSettings,
    ReleaseRequest,
    ReleaseRun,
    abortable_sleep,
    analyse,
    complete,
    deploy_new_colour,
    fast_rollback_possible,
    judge_against_live,
    measure_context,
    new_state,
    open_preview,
    promote,
    redeploy_previous,
    roll_back,
    scale_down_old,
)
from framework2.tasks.launch.report import metrics_chart, plan_markdown, timeline_markdown
from framework2.tasks.launch.rollout import RolloutAborted, read_colour, read_hpa_target
from framework2.tasks.launch.scaling import ScaleResult, raise_capacity, scale_target
from framework2.tasks.launch.state import ReleaseState, clear_abort, read_state, request_abort, write_state

SYSTEM = "plos"
MODEL_VERSION = "plos-blue-green-1"


class LaunchApproval(RunInput):
    """Form shown when the predicted launch success is below the threshold."""

    decision: Literal["release", "cancel"] = Field("cancel", description="Go ahead with the release, or cancel it.")
    approver: str = Field(..., description="Who decided (stored with the release).")
    note: str = Field("", description="Why.")


class PromotionDecision(RunInput):
    """Form shown when the analysis is inconclusive or promotion waits for a person."""

    decision: Literal["promote", "roll back"] = Field("roll back", description="Promote the new colour or roll back.")
    approver: str = Field(..., description="Who decided (stored with the release).")
    note: str = Field("", description="Why.")


class ReleaseOutcome(BaseModel):
    """What a release run did."""

    release_id: str | None = None
    app: str
    image: str
    status: Literal["promoted", "rolled_back", "planned", "dry_run", "cancelled"]
    reason: str
    live_colour: str | None = None
    predicted_success: float | None = None


class ReleaseRolledBack(Framework2Error):
    """The release did not go out: traffic is back on the old colour (the run fails so alerts fire)."""


def _logger() -> Any:
    return get_run_logger()


def _flow_run_id() -> str:
    return str(get_run_context().flow_run.id)


def flow_run_alive(holder: str) -> bool | None:
    """False when the flow run that holds a release lock has ended; None when Prefect cannot tell."""
    from prefect.client.orchestration import get_client

    try:
        run_id = UUID(holder)
    except ValueError:
        return None
    try:
        with get_client(sync_client=True) as prefect:
            state = prefect.read_flow_run(run_id).state
    except Exception:
        return None
    return None if state is None else not state.is_final()


def load_cluster(name: str) -> KubernetesCluster | None:
    """The cluster block, or None when none is configured (the release then only renders its plan)."""
    if not name:
        return None
    try:
        return KubernetesCluster.load(name)
    except ValueError as exc:
        if name == "plos":  # the default name, never created: no cluster configured
            return None
        raise ConfigError(
            f"kubernetes-cluster block {name!r} not found: {exc}",
            hint="create it with `framework2 init` / the Prefect UI (Blocks → Kubernetes Cluster) or fix the name",
        ) from exc


def ask_person(form: type[RunInput], default: dict[str, Any], wait_seconds: float, why: str) -> Any:
    """Pause with ``form`` in the UI; at the deadline the default answer is given (never a timeout failure)."""
    logger = _logger()
    logger.warning("%s — waiting up to %.0f s for a decision in the Prefect UI", why, wait_seconds)
    timer = answer_at_deadline(get_run_context().flow_run.id, wait_seconds, default, logger)
    try:
        return pause_flow_run(
            wait_for_input=form.with_initial_data(description=why),
            timeout=int(wait_seconds) + 300,
            poll_interval=min(5, max(1, int(wait_seconds))),
        )
    except FlowPauseTimeout:
        return form(**default)
    finally:
        timer.cancel()


def predict(engine: Any, request: ReleaseRequest) -> tuple[Prediction, dict[str, Any]]:
    """Launch-success probability from the stored release history (a prior with too little history),
    with the features it was made from (stored with the release as the next model's training data)."""
    history = release_history(engine)
    features = features_from_history(
        history,
        request.app,
        now=datetime.now(UTC),
        change_size_lines=request.change.change_size_lines,
        files_changed=request.change.files_changed,
        test_pass_rate=request.change.test_pass_rate,
    )
    return predict_success(history, features, threshold=request.success_threshold), features.model_dump()


def publish_plan(request: ReleaseRequest, live: str | None, prediction: Prediction, notes: list[str]) -> None:
    plan = release_plan(request, live, notes=[*notes, f"Launch-success prediction: {prediction.summary()}"])
    create_markdown_artifact(
        key=f"plos-plan-{request.app}",
        markdown=plan_markdown(
            f"Release plan: {request.app} → {request.image}", plan.steps, plan.manifests, plan.notes
        ),
        description=f"PLOS plan for {request.app} {request.image}",
    )


def publish_timeline(run: ReleaseRun, decision: str) -> None:
    specs: dict[str, tuple[str | None, str | None]] = {}
    for result in run.analyses.values():
        for name, text in result.conditions.items():
            parts = dict(part.split(": ", 1) for part in text.split("; ") if ": " in part)
            specs[name] = (parts.get("success"), parts.get("failure"))
    chart = metrics_chart(run.analyses, specs)
    s = run.state
    create_markdown_artifact(
        key=f"plos-release-{run.target.app}",
        markdown=timeline_markdown(
            f"Release {s.app} {s.image} ({s.from_colour or 'none'} → {s.to_colour})",
            run.timeline,
            run.analyses,
            decision,
            chart,
        ),
        description=f"PLOS release timeline of {s.app}",
    )


def _evidence(run: ReleaseRun) -> dict[str, Any]:
    return {
        "timeline": [e.model_dump(mode="json") for e in run.timeline],
        "analyses": {k: v.model_dump(mode="json") for k, v in run.analyses.items()},
        "judgements": {k: v.model_dump(mode="json") for k, v in run.judgements.items()},
        "steps": [s.model_dump(mode="json") for s in run.state.steps],
    }


@flow(
    name="plos-blue-green-release",
    description="PLOS: blue-green release with preflight, success prediction, analysis, promotion and rollback.",
)
def blue_green_release(request: ReleaseRequest) -> ReleaseOutcome:
    """Release ``request.image`` to the idle colour of ``request.app`` and promote it if the analysis passes."""
    logger = _logger()
    engine = open_store()
    target = request.target
    prediction, features = predict(engine, request)
    logger.info("launch-success prediction: %s", prediction.summary())
    cluster = load_cluster(request.cluster_block)
    if cluster is None:
        note = (
            f"No cluster configured (no kubernetes-cluster block {request.cluster_block!r}): this is the plan "
            "only, nothing was released. Create the block to release for real."
        )
        logger.warning(note)
        publish_plan(request, None, prediction, [note])
        return ReleaseOutcome(
            app=request.app,
            image=request.image,
            status="planned",
            reason=note,
            predicted_success=prediction.probability,
        )

    _check_analysis(request, target)
    api = cluster.api_client()
    holder = _flow_run_id()
    ttl = timedelta(seconds=request.lock_ttl_seconds)
    try:
        checked = preflight(api, target, holder, ttl, holder_alive=flow_run_alive, take_lock=not request.dry_run)
    except BaseException:
        api.close()
        raise
    logger.info("preflight ok: Kubernetes %s, live colour %s", checked.server_version, checked.active_colour)
    if request.dry_run:
        note = f"Dry run: preflight passed against Kubernetes {checked.server_version}; nothing was changed."
        api.close()
        publish_plan(request, checked.active_colour, prediction, [note])
        return ReleaseOutcome(
            app=request.app,
            image=request.image,
            status="dry_run",
            reason=note,
            live_colour=checked.active_colour,
            predicted_success=prediction.probability,
        )
    assert checked.lock is not None
    run_id = start_run(
        engine, SYSTEM, parameters=request.model_dump(mode="json"), flow_run_id=holder, model_version=MODEL_VERSION
    )
    try:
        with LockKeeper(api, checked.lock, ttl) as keeper:
            outcome = _release_locked(
                api, engine, request, target, keeper, checked.active_colour, (prediction, features), run_id
            )
    except BaseException as exc:
        finish_run(engine, run_id, status="failed", error=str(exc)[:2000])
        raise
    finally:
        _give_back(api, checked.lock)
        api.close()
    finish_run(engine, run_id, status="completed", outcome=outcome.model_dump(mode="json"))
    return outcome


def _check_analysis(request: ReleaseRequest, target: ReleaseTarget) -> None:
    """Refuse, before anything is touched, settings that would make every measurement error."""
    if request.analysis.prometheus_url is None:
        request.analysis.prometheus_url = get_settings().plos.prometheus_url
    endpoints = AnalysisEndpoints(
        prometheus_url=request.analysis.prometheus_url, preview_url=request.analysis.preview_url
    )
    context = {
        "app": target.app,
        "namespace": target.namespace,
        "colour": "green",
        "baseline_colour": "blue",
        "revision": request.revision or "",
        "preview_service": target.preview_service,
        "active_service": target.active_service,
    }
    post = request.analysis.post_promotion_metric()
    check_metrics([*request.analysis.pre_promotion, *([post] if post else [])], endpoints, context)
    for judge in request.analysis.judges:
        if endpoints.prometheus_url is None:
            raise ConfigError(
                f"judge {judge.name!r} compares Prometheus samples but no prometheus_url is set",
                hint="set prometheus_url in the analysis settings (or [plos] prometheusUrl), or remove the judge",
            )
        try:
            render(judge.query, context)
        except ValueError as exc:
            raise ConfigError(f"judge {judge.name!r}: {exc}", hint="fix the placeholders in its query") from exc


def _give_back(api: Any, lock: Any) -> None:
    # The release's outcome is decided by now; a failure to delete the lock must not turn a kept release
    # into a failed run (and so into an automatic rollback). An unreleased lock runs out by itself.
    try:
        release_lock(api, lock)
    except Exception as exc:
        _logger().warning("could not give the release lock back (it expires by itself): %s", exc)


def _release_locked(
    api: Any,
    engine: Any,
    request: ReleaseRequest,
    target: ReleaseTarget,
    keeper: LockKeeper,
    live: str | None,
    predicted: tuple[Prediction, dict[str, Any]],
    run_id: str,
) -> ReleaseOutcome:
    logger = _logger()
    holder = keeper.lock.holder
    prediction, features = predicted
    read_hpa_target(api, target)  # an HPA named for the app that targets something else: refuse now
    state, selected = read_state(api, target)
    clear_abort(api, target)  # a request left from an earlier release is not meant for this one
    run: ReleaseRun | None = None
    if state is not None and state.in_flight:
        if state.image == request.image and state.revision == request.revision and state.phase != "rolling_back":
            state.holder = holder
            write_state(api, target, state)  # the new owner, at once: the auto-rollback looks for it
            run = ReleaseRun(api, target, state, log=logger.info, guard=keeper.check)
            run.note(
                "resume",
                f"resuming interrupted release {state.release_id} from phase {state.phase} (traffic on {selected})",
                traffic=selected,
            )
        else:
            logger.warning(
                "release %s of %s was interrupted in phase %s; rolling it back first",
                state.release_id,
                state.image,
                state.phase,
            )
            interrupted = ReleaseRun(api, target, state, log=logger.info, guard=keeper.check)
            _roll_back_and_record(
                interrupted,
                engine,
                f"interrupted in phase {state.phase}; rolled back before releasing {request.image}",
                0,
            )
            live = read_state(api, target)[1]
    elif (
        state is not None
        and state.phase == "completed"
        and (state.image, state.revision) == (request.image, request.revision)
        and selected == state.to_colour
    ):
        # The same release again (a re-run after its worker died in the scale-down window, say): it is
        # live already, so only what is left of it is done.
        run = ReleaseRun(api, target, state, log=logger.info, guard=keeper.check)
        run.note("already live", f"{state.image} is live on {state.to_colour} (release {state.release_id})")
        if state.old_scaled_down_at is None:
            state.holder = holder
            write_state(api, target, state)
            _keep_old_colour_for_fast_rollback(run, request, engine)
        return ReleaseOutcome(
            release_id=state.release_id,
            app=target.app,
            image=state.image,
            status="promoted",
            reason=f"already live on {state.to_colour}; nothing to release",
            live_colour=state.to_colour,
            predicted_success=prediction.probability,
        )

    if run is None:
        if prediction.needs_approval and not request.force:
            answer = ask_person(
                LaunchApproval,
                {"decision": "cancel", "approver": "framework2: no decision in time"},
                request.approval_timeout_seconds,
                f"Predicted launch success {prediction.probability:.0%} is below "
                f"{request.success_threshold:.0%}: {prediction.reason}",
            )
            if answer.decision != "release":
                reason = f"cancelled by {answer.approver}: {answer.note or 'low predicted success'}"
                return ReleaseOutcome(
                    app=request.app,
                    image=request.image,
                    status="cancelled",
                    reason=reason,
                    live_colour=live,
                    predicted_success=prediction.probability,
                )
            logger.info("release approved by %s despite the prediction: %s", answer.approver, answer.note)
        previous = read_colour(api, target, live) if live else None
        state = new_state(
            request,
            holder,
            live,
            other_colour(live),
            previous.image if previous else None,
            previous.revision if previous else None,
        )
        run = ReleaseRun(api, target, state, log=logger.info, guard=keeper.check)
        save_release(
            engine,
            Release(
                id=state.release_id,
                run_id=run_id,
                flow_run_id=holder,
                namespace=target.namespace,
                app=target.app,
                image=state.image,
                revision=state.revision,
                from_colour=live,
                to_colour=state.to_colour,
                previous_image=state.previous_image,
                previous_revision=state.previous_revision,
                status="running",
                phase="deploying",
                predicted_success=prediction.probability,
                features=features,
            ),
        )
        run.note(
            "start",
            f"release {state.release_id}: {state.previous_image or 'nothing'} on {live or 'no colour'}"
            f" → {state.image} on {state.to_colour}; predicted success {prediction.probability:.0%}",
            traffic=live,
        )

    try:
        return _drive(run, request, engine, prediction)
    except (ReleaseRolledBack, ReleaseInProgress):
        raise  # rolled back already, or the release is no longer ours to undo
    except BaseException as exc:
        if run.state.phase in ("completed", "rolled_back"):
            # Kept (or already undone): an error now — a lost artifact, a failed scale-down — is reported,
            # never answered by switching traffic away from a release that passed its analysis.
            raise
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        logger.error("release failed (%s); rolling back", reason)
        _roll_back_and_record(run, engine, reason, teardown=0)
        raise ReleaseRolledBack(
            f"release of {run.state.image} rolled back: {reason}",
            hint="see the plos-release timeline artifact for the evidence",
        ) from exc


def _drive(run: ReleaseRun, request: ReleaseRequest, engine: Any, prediction: Prediction) -> ReleaseOutcome:
    """Carry the release from its current phase to promoted (or roll it back)."""
    state, target = run.state, run.target
    endpoints = AnalysisEndpoints(
        prometheus_url=request.analysis.prometheus_url, preview_url=request.analysis.preview_url
    )
    with httpx.Client(timeout=10) as http:
        measure = make_measure(endpoints, measure_context(run), http)
        post = request.analysis.post_promotion_metric()
        if state.phase in ("deploying", "analysing"):
            try:
                deploy_new_colour(run, request, on_progress=_progress_reporter(request.replicas, state.to_colour))
            except RolloutAborted as exc:
                return _rolled_back(run, engine, f"aborted: {exc.reason}", request.abort_teardown_delay_seconds)
            update_release(engine, state.release_id, phase="analysing")
            open_preview(run)
            passed = "no pre-promotion analysis configured"
            if request.analysis.pre_promotion:
                result, aborted = analyse(run, "pre-promotion", request.analysis.pre_promotion, measure)
                if aborted:
                    return _rolled_back(run, engine, f"aborted: {aborted}", request.abort_teardown_delay_seconds)
                if result.phase != "successful":
                    if result.phase == "failed" or not _person_promotes(run, request, result.reason):
                        return _rolled_back(run, engine, f"pre-promotion analysis {result.phase}: {result.reason}", 0)
                    passed = ""  # a person just decided to promote
                else:
                    passed = "analysis passed"
            verdict, why = judge_against_live(
                run,
                request.analysis.judges,
                lambda q, a, b, c: sample_series(http, endpoints.prometheus_url or "", q, a, b, c),
            )
            if verdict == "failed" or (verdict == "inconclusive" and not _person_promotes(run, request, why)):
                return _rolled_back(run, engine, f"judge {verdict}: {why}", 0)
            if passed and not request.auto_promotion and not _person_promotes(run, request, passed, auto=True):
                return _rolled_back(run, engine, "promotion not approved", request.abort_teardown_delay_seconds)
            promote(run)
            update_release(engine, state.release_id, phase="promoted", promoted_at=state.promoted_at)
        if state.phase == "promoted" and post is not None:
            result, aborted = analyse(run, "post-promotion", [post], measure)
            if aborted:
                return _rolled_back(run, engine, f"aborted: {aborted}", request.abort_teardown_delay_seconds)
            if result.phase == "failed" or (
                result.phase != "successful"
                and not _person_promotes(run, request, f"post-promotion analysis {result.phase}: {result.reason}")
            ):
                return _rolled_back(run, engine, f"post-promotion analysis {result.phase}: {result.reason}", 0)
    if state.phase == "promoted":
        complete(run, request.hpa)
    reason = f"{state.image} live on {state.to_colour}"
    update_release(
        engine, state.release_id, status="promoted", phase="completed", reason=reason, evidence=_evidence(run)
    )
    emit(
        SYSTEM,
        "release.promoted",
        {
            "app": target.app,
            "namespace": target.namespace,
            "image": state.image,
            "revision": state.revision,
            "colour": state.to_colour,
            "release_id": state.release_id,
        },
    )
    _keep_old_colour_for_fast_rollback(run, request, engine)
    publish_timeline(run, f"promoted: {reason}" if run.state.phase == "completed" else run.state.reason)
    if run.state.phase == "rolled_back":
        raise ReleaseRolledBack(
            f"release of {state.image} was rolled back: {run.state.reason}",
            hint="see the plos-release timeline artifact",
        )
    return ReleaseOutcome(
        release_id=state.release_id,
        app=target.app,
        image=state.image,
        status="promoted",
        reason=reason,
        live_colour=state.to_colour,
        predicted_success=prediction.probability,
    )


def _progress_reporter(desired: int, colour: str) -> Any:
    artifact_id = create_progress_artifact(0.0, description=f"pods of the {colour} colour ready")

    def report(progress: Any) -> None:
        update_progress_artifact(artifact_id, 100.0 * progress.ready / max(1, desired))
        _logger().info("rollout of %s: %d/%d pods ready", colour, progress.ready, desired)

    return report


def _person_promotes(run: ReleaseRun, request: ReleaseRequest, why: str, auto: bool = False) -> bool:
    """Ask a person; with auto-promotion seconds the silent default is to promote, otherwise to roll back."""
    promote_by_default = auto and request.auto_promotion_seconds > 0
    wait = request.auto_promotion_seconds if promote_by_default else request.approval_timeout_seconds
    default = {
        "decision": "promote" if promote_by_default else "roll back",
        "approver": f"framework2: no decision within {wait:.0f} s",
    }
    answer = ask_person(PromotionDecision, default, wait, f"Release {run.state.image} of {run.target.app}: {why}")
    run.note("decision", f"{answer.decision} by {answer.approver}: {answer.note or why}")
    return answer.decision == "promote"


def _roll_back_and_record(run: ReleaseRun, engine: Any, reason: str, teardown: float) -> None:
    started = time.monotonic()
    roll_back(
        run.api,
        run.target,
        run.state,
        reason,
        teardown_delay_seconds=teardown,
        note=lambda step, detail, traffic: run.note(step, detail, traffic),
    )
    run.note(
        "rolled back", f"{reason} (rollback took {time.monotonic() - started:.2f} s)", traffic=run.state.from_colour
    )
    update_release(
        engine, run.state.release_id, status="rolled_back", phase="rolled_back", reason=reason, evidence=_evidence(run)
    )
    emit(
        SYSTEM,
        "release.rolled_back",
        {
            "app": run.target.app,
            "namespace": run.target.namespace,
            "image": run.state.image,
            "reason": reason,
            "colour": run.state.from_colour,
            "release_id": run.state.release_id,
        },
    )


def _rolled_back(run: ReleaseRun, engine: Any, reason: str, teardown: float) -> ReleaseOutcome:
    _roll_back_and_record(run, engine, reason, teardown)
    publish_timeline(run, f"rolled back: {reason}")
    raise ReleaseRolledBack(
        f"release of {run.state.image} rolled back: {reason}",
        hint="see the plos-release timeline artifact for the measurements and thresholds",
    )


def _keep_old_colour_for_fast_rollback(run: ReleaseRun, request: ReleaseRequest, engine: Any) -> None:
    """Keep the old colour up for the scale-down delay; an abort request in that time switches back instantly."""
    state = run.state
    if not state.from_colour:
        return
    sleep, aborted = abortable_sleep(run)
    sleep(request.scale_down_delay_seconds)
    if aborted():
        reason = f"fast rollback requested: {aborted.reason[0]}"  # type: ignore[attr-defined]
        _roll_back_and_record(run, engine, reason, 0)
        return
    done = scale_down_old(run.api, run.target, state.release_id)
    run.note("scale down", done, traffic=state.to_colour)
    refreshed, _ = read_state(run.api, run.target)
    if refreshed is not None:
        run.state = refreshed


class RollbackRequest(BaseModel):
    """Which app to roll back. Accepts a release request's parameters as they are (extra fields ignored)."""

    model_config = ConfigDict(extra="ignore")

    cluster_block: str = Field("plos", description="Name of the kubernetes-cluster block.")
    namespace: str = Field("default", description="Namespace of the app.")
    app: str = Field(..., description="App to roll back.")
    active_service: str | None = Field(None, description="Active Service; empty: <app>-active.")
    preview_service: str | None = Field(None, description="Preview Service; empty: <app>-preview.")
    progress_deadline_seconds: int = Field(600, ge=5, description="For a redeploy of the previous revision.")
    fast_rollback_window_seconds: float = Field(600, ge=0, description="Instant switch back within this window.")
    lock_ttl_seconds: int = Field(60, ge=5, description="Release lock lifetime while the rollback runs.")
    wait_for_release_seconds: float = Field(
        120, ge=0, description="How long to wait for a running release to roll itself back after the request."
    )

    @property
    def target(self) -> ReleaseTarget:
        return ReleaseTarget(
            namespace=self.namespace,
            app=self.app,
            active_service=self.active_service or f"{self.app}-active",
            preview_service=self.preview_service or f"{self.app}-preview",
        )


class RollbackOutcome(BaseModel):
    app: str
    action: Literal["fast_switch", "redeploy_previous", "compensated", "abort_requested", "nothing"]
    detail: str
    live_colour: str | None = None


@flow(name="plos-rollback", description="PLOS: take an app's latest release back (instantly when still possible).")
def rollback(
    request: RollbackRequest, reason: str = "rollback requested", release_run_id: str | None = None
) -> RollbackOutcome:
    """Roll back the app's latest release: ask a running release to abort, finish an interrupted one, or undo
    a completed one (an instant switch within the window while the old colour is up, else a redeploy).

    ``release_run_id`` (set by the auto-rollback automation) limits it to the release that flow run drove,
    so a run that failed before changing anything never rolls back someone else's good release.
    """
    logger = _logger()
    engine = open_store()
    cluster = load_cluster(request.cluster_block)
    if cluster is None:
        raise ConfigError(
            "no cluster configured: nothing to roll back",
            hint="create the kubernetes-cluster block named in cluster_block",
        )
    api = cluster.api_client()
    target = request.target
    ttl = timedelta(seconds=request.lock_ttl_seconds)
    try:
        server_version(api)
        state, selected = read_state(api, target)
        nothing = _nothing_to_roll_back(target, state, selected, release_run_id)
        if nothing is not None:
            return nothing
        assert state is not None
        deadline = time.monotonic() + request.wait_for_release_seconds
        asked = False
        while True:
            try:
                lock = acquire_release_lock(api, target, _flow_run_id(), ttl, holder_alive=flow_run_alive)
                break
            except ReleaseInProgress:
                # A live release holds the lock: ask it to roll itself back, and wait for that (or for its
                # lock to run out if its worker died, and then undo it here).
                if not asked:
                    request_abort(api, target, reason, release_id=state.release_id, holder=_lock_holder(api, target))
                    logger.info("release %s is running (holder %s); abort requested", state.release_id, state.holder)
                    asked = True
                current, selected = read_state(api, target)
                if current is not None and current.phase == "rolled_back":
                    return RollbackOutcome(
                        app=target.app,
                        action="abort_requested",
                        live_colour=selected,
                        detail=f"the running release rolled back on request: {current.reason}",
                    )
                if time.monotonic() > deadline:
                    return RollbackOutcome(
                        app=target.app,
                        action="abort_requested",
                        live_colour=selected,
                        detail="abort requested; the running release has not rolled back yet",
                    )
                time.sleep(1)
        try:
            if asked:
                # The release may have rolled back on our request and let go of its lock between two looks.
                current, selected = read_state(api, target)
                if current is not None and current.phase == "rolled_back":
                    return RollbackOutcome(
                        app=target.app,
                        action="abort_requested",
                        live_colour=selected,
                        detail=f"the running release rolled back on request: {current.reason}",
                    )
            with LockKeeper(api, lock, ttl) as keeper:
                return _rollback_locked(api, engine, request, target, reason, keeper)
        finally:
            _give_back(api, lock)
    finally:
        api.close()


def _lock_holder(api: Any, target: ReleaseTarget) -> str | None:
    from kubernetes import client

    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(lock_name(target.app), target.namespace)
    except Exception:
        return None
    return lease.spec.holder_identity


def _nothing_to_roll_back(
    target: ReleaseTarget, state: ReleaseState | None, selected: str | None, release_run_id: str | None
) -> RollbackOutcome | None:
    if state is None:
        detail = f"no PLOS release recorded on the {target.active_service} Service"
    elif release_run_id and state.holder != release_run_id:
        detail = (
            f"flow run {release_run_id} changed nothing in the cluster: the latest release "
            f"{state.release_id} ({state.image}, {state.phase}) belongs to run {state.holder}"
        )
    elif state.phase == "rolled_back":
        detail = f"release {state.release_id} ({state.image}) is already rolled back: {state.reason}"
    elif release_run_id and state.phase == "completed":
        detail = (
            f"release {state.release_id} ({state.image}) passed its analysis and was kept; its run failed "
            "afterwards, which is no reason to take it back (run plos-rollback by hand to do so)"
        )
    else:
        return None
    return RollbackOutcome(app=target.app, action="nothing", detail=detail, live_colour=selected)


def _rollback_locked(
    api: Any, engine: Any, request: RollbackRequest, target: ReleaseTarget, reason: str, keeper: LockKeeper
) -> RollbackOutcome:
    logger = _logger()
    state, selected = read_state(api, target)
    assert state is not None
    run = ReleaseRun(api, target, state, log=logger.info, guard=keeper.check)
    if state.in_flight:
        _roll_back_and_record(run, engine, f"{reason} (release interrupted in phase {state.phase})", 0)
        publish_timeline(run, f"rolled back: {reason}")
        return RollbackOutcome(
            app=target.app,
            action="compensated",
            live_colour=state.from_colour,
            detail=f"interrupted release {state.release_id} undone step by step",
        )
    if state.phase == "rolled_back":
        return RollbackOutcome(app=target.app, action="nothing", detail="already rolled back", live_colour=selected)
    fast, why = fast_rollback_possible(api, target, state, timedelta(seconds=request.fast_rollback_window_seconds))
    if fast:
        started = time.monotonic()
        _roll_back_and_record(run, engine, f"{reason} (fast rollback: {why})", 0)
        took = time.monotonic() - started
        publish_timeline(run, f"fast rollback: {why}")
        return RollbackOutcome(
            app=target.app,
            action="fast_switch",
            live_colour=state.from_colour,
            detail=f"traffic switched back to {state.from_colour} in {took:.2f} s ({why})",
        )
    logger.info("no instant rollback (%s); redeploying the previous revision", why)
    detail = redeploy_previous(run, request.progress_deadline_seconds, reason)
    update_release(
        engine,
        state.release_id,
        status="rolled_back",
        phase="rolled_back",
        reason=f"{reason}: {detail}",
        evidence=_evidence(run),
    )
    emit(
        SYSTEM,
        "release.rolled_back",
        {
            "app": target.app,
            "namespace": target.namespace,
            "image": state.image,
            "reason": reason,
            "colour": state.from_colour,
            "release_id": state.release_id,
        },
    )
    publish_timeline(run, f"rolled back by redeploying {state.previous_image}: {detail}")
    return RollbackOutcome(
        app=target.app, action="redeploy_previous", detail=detail, live_colour=read_state(api, target)[1]
    )


class ReleaseStatus(BaseModel):
    app: str
    live_colour: str | None
    release: dict[str, Any] | None
    colours: dict[str, dict[str, Any] | None]
    autoscaler_targets: str | None
    warnings: list[str]


@flow(name="plos-release-status", description="PLOS: what is live for an app, and anything that needs attention.")
def release_status(request: RollbackRequest) -> ReleaseStatus:
    """Live colour, both Deployments, the autoscaler and the latest release state, with warnings."""
    cluster = load_cluster(request.cluster_block)
    if cluster is None:
        raise ConfigError("no cluster configured", hint="create the kubernetes-cluster block named in cluster_block")
    api = cluster.api_client()
    target = request.target
    try:
        state, _ = read_state(api, target)
        live = active_colour(api, target)
        colours = {c: read_colour(api, target, c) for c in ("blue", "green")}
        hpa = read_hpa_target(api, target)
    finally:
        api.close()
    status = summarise_status(target, state, live, colours, hpa)
    create_markdown_artifact(
        key=f"plos-status-{target.app}", markdown=status_markdown(status), description=f"PLOS status of {target.app}"
    )
    return status


def summarise_status(
    target: ReleaseTarget, state: ReleaseState | None, live: str | None, colours: dict[str, Any], hpa: str | None
) -> ReleaseStatus:
    """Plain-data status with the warnings a release manager must see."""
    warnings = []
    if state is not None and state.in_flight:
        warnings.append(
            f"release {state.release_id} of {state.image} is in phase {state.phase} "
            f"(updated {state.updated_at:%H:%M:%S} UTC); if no run is driving it, run plos-rollback"
        )
    up = [c for c, d in colours.items() if d is not None and d.replicas > 0]
    if len(up) == 2 and (state is None or not state.in_flight):
        warnings.append(
            "both colours are scaled up with no release in progress: "
            f"{', '.join(f'{c} ×{colours[c].replicas}' for c in up)}"
        )
    if live is None:
        warnings.append(f"the active Service {target.active_service} selects no colour")
    if hpa and live and hpa != live:
        warnings.append(f"the autoscaler targets {hpa} but traffic is on {live}")
    return ReleaseStatus(
        app=target.app,
        live_colour=live,
        release=state.model_dump(mode="json", exclude={"steps"}) if state else None,
        colours={
            c: (
                None
                if d is None
                else {"image": d.image, "revision": d.revision, "replicas": d.replicas, "ready": d.ready_replicas}
            )
            for c, d in colours.items()
        },
        autoscaler_targets=hpa,
        warnings=warnings,
    )


def status_markdown(status: ReleaseStatus) -> str:
    rows = "\n".join(
        f"| {c} | {'**live**' if c == status.live_colour else ''} | {d['image'] if d else '—'} | "
        f"{d['revision'] if d else '—'} | {d['ready'] if d else 0}/{d['replicas'] if d else 0} |"
        for c, d in status.colours.items()
    )
    warn = "\n".join(f"- ⚠️ {w}" for w in status.warnings) or "- none"
    release = status.release or {}
    return (
        f"# {status.app}: live colour {status.live_colour or 'none'}\n\n| colour | | image | revision | ready |\n"
        f"|---|---|---|---|---|\n{rows}\n\nAutoscaler targets: {status.autoscaler_targets or 'none'}\n\n"
        f"Latest release: {release.get('image', '—')} ({release.get('phase', '—')}) {release.get('reason', '')}\n\n"
        f"## Warnings\n{warn}\n"
    )


DEMO_APP = LaunchApp(app="web", namespace="shop", image="registry.example.com/web:1.4.2")


@flow(name="plos-launch-operations", description="PLOS system run: release status of the watched apps, or the plan.")
def launch_operations() -> SystemResult:
    """What PSO runs for PLOS: each watched app's live colour and warnings; without a cluster, the release
    plan and success prediction of the first app (or a sample one), saying plainly that nothing was released."""
    logger = _logger()
    settings = get_settings().plos
    engine = open_store()
    run_id = start_run(
        engine,
        SYSTEM,
        parameters=settings.model_dump(mode="json"),
        flow_run_id=_flow_run_id(),
        model_version=MODEL_VERSION,
    )
    releases = recent_releases(engine, limit=50)
    finished = [r for r in releases if r.succeeded is not None]
    quality = sum(bool(r.succeeded) for r in finished) / len(finished) if finished else 1.0
    try:
        cluster = load_cluster(settings.cluster_block)
        if cluster is None:
            app = settings.apps[0] if settings.apps else DEMO_APP
            request = ReleaseRequest(
                cluster_block="",
                namespace=app.namespace,
                app=app.app,
                image=app.image or DEMO_APP.image or "",
                success_threshold=settings.success_threshold,
                analysis=AnalysisSettings(
                    prometheus_url=settings.prometheus_url, rollback_threshold=settings.rollback_threshold
                ),
            )
            prediction, _ = predict(engine, request)
            note = (
                f"No cluster configured (no kubernetes-cluster block {settings.cluster_block!r}): PLOS rendered "
                f"the release plan for {app.app} and its success prediction; nothing was released."
            )
            publish_plan(request, None, prediction, [note])
            summary = f"{note} Predicted launch success {prediction.probability:.0%} ({prediction.method})."
            metrics: dict[str, Any] = {"cluster": False, "predicted_success": prediction.probability}
        else:
            api = cluster.api_client()
            warnings: list[str] = []
            lines = []
            try:
                for app in settings.apps:
                    target = ReleaseTarget(
                        namespace=app.namespace,
                        app=app.app,
                        active_service=f"{app.app}-active",
                        preview_service=f"{app.app}-preview",
                    )
                    state, live = read_state(api, target)
                    colours = {c: read_colour(api, target, c) for c in ("blue", "green")}
                    status = summarise_status(target, state, live, colours, read_hpa_target(api, target))
                    warnings += [f"{app.app}: {w}" for w in status.warnings]
                    lines.append(status_markdown(status))
            finally:
                api.close()
            if lines:
                create_markdown_artifact(key="plos-status", markdown="\n\n".join(lines), description="PLOS app status")
            summary = (
                "cluster configured, but no apps are listed under [plos] apps to watch; " if not settings.apps else ""
            ) + (
                f"{len(settings.apps)} app(s) checked, {len(warnings)} warning(s)"
                + (f": {'; '.join(warnings[:3])}" if warnings else "")
                + f"; {len(finished)} recent releases, {quality:.0%} kept."
            )
            metrics = {"cluster": True, "warnings": warnings, "apps": len(settings.apps)}
            if warnings:
                quality = min(quality, 0.5)
    except BaseException as exc:
        finish_run(engine, run_id, status="failed", error=str(exc)[:2000])
        raise
    finish_run(engine, run_id, status="completed", outcome={"summary": summary, "quality": quality, **metrics})
    logger.info(summary)
    return SystemResult(system=SYSTEM, run_id=run_id, summary=summary, quality=quality, metrics=metrics)


@flow(
    name="plos-scale-up",
    description="PLOS: more pods for an app now, when its users wait too long (raises its autoscaler's floor).",
)
def scale_up(
    app: str,
    namespace: str = "default",
    reason: str = "",
    step: int = 1,
    cluster_block: str | None = None,
    ceiling: int | None = None,
    cooldown_minutes: float = 10,
) -> ScaleResult:
    """Raise the app's HPA floor by ``step`` pods, within its ceiling and outside the cooldown.

    Run by the PUXT response-time trigger. ``cluster_block`` empty: ``[plos] cluster_block``; ``ceiling``
    empty: twice the HPA's maxReplicas before PLOS first raised it. Emits ``framework2.plos.capacity.raised``
    when it scaled; a refusal (no autoscaler, at ceiling, cooling down) is logged and returned.
    """
    logger = _logger()
    target = scale_target(app, namespace)  # a bad name fails before any cluster is touched
    name = cluster_block if cluster_block is not None else get_settings().plos.cluster_block
    cluster = load_cluster(name)
    if cluster is None:
        raise ConfigError(
            f"no cluster configured to scale {app} in (no kubernetes-cluster block {name!r})",
            hint="create the kubernetes-cluster block (Prefect UI → Blocks or `framework2 init`), or pass its name",
        )
    api = cluster.api_client()
    try:
        result = raise_capacity(
            api, target, step=step, ceiling=ceiling, cooldown=timedelta(minutes=cooldown_minutes), reason=reason
        )
    finally:
        api.close()
    create_markdown_artifact(
        key=f"plos-scale-{target.app}", markdown=scale_markdown(result), description=f"PLOS scale-up of {target.app}"
    )
    if result.action == "scaled":
        emit(
            SYSTEM,
            "capacity.raised",
            result.model_dump(mode="json", exclude={"action", "next_allowed_at", "detail"}),
        )
        logger.info("capacity raised: %s", result.detail)
    elif result.action == "no autoscaler":
        logger.warning("not scaled: %s", result.detail)
    else:
        logger.info("not scaled (%s): %s", result.action, result.detail)
    return result


def scale_markdown(result: ScaleResult) -> str:
    """The scale-up artifact: what happened, the limits before and after, and why."""
    head = f"# {result.app}: {result.action}\n\n{result.detail}\n"
    if result.min_before is None:
        return head
    rows = (
        f"| minReplicas | {result.min_before} | {result.min_after} |\n"
        f"| maxReplicas | {result.max_before} | {result.max_after} |\n"
    )
    when = result.next_allowed_at
    after = f"\nNext raise allowed from {when:%Y-%m-%d %H:%M:%S} UTC.\n" if when else ""
    return (
        f"{head}\n| HPA {result.app} ({result.colour}) | before | after |\n|---|---|---|\n{rows}"
        f"\nCeiling: {result.ceiling} pods. Reason: {result.reason}\n{after}"
        "\nThe raised floor stays until the next release rewrites the autoscaler or a person lowers it.\n"
    )
