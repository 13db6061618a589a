"""The PLOS release driver: what a blue-green release does once it holds the release lock — deploy the idle
colour, watch the rollout, analyse, ask a person where the policy says so, promote or roll back, and record
every step — apart from the flows that start it (``framework2.flows.launch``)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import BaseModel, Field

from framework2.blocks.kubernetes_cluster import KubernetesCluster
from framework2.config import get_settings
from framework2.errors import ConfigError, Framework2Error
from framework2.events import emit
from framework2.store.models import Release
from framework2.store.releases import release_history, save_release, update_release
from framework2.tasks.deadline import answer_at_deadline
from framework2.tasks.launch.cluster import (
    LockKeeper,
    ReleaseInProgress,
    ReleaseTarget,
    other_colour,
    release_lock,
)
from framework2.tasks.launch.metrics import AnalysisEndpoints, check_metrics, make_measure, render, sample_series
from framework2.tasks.launch.plan import release_plan
from framework2.tasks.launch.prediction import Prediction, features_from_history, predict_success
from framework2.tasks.launch.release import (
    ReleaseRequest,
    ReleaseRun,
    abortable_sleep,
    analyse,
    complete,
    deploy_new_colour,
    judge_against_live,
    measure_context,
    new_state,
    open_preview,
    promote,
    roll_back,
    scale_down_old,
)
from framework2.tasks.launch.report import metrics_chart, plan_markdown, timeline_markdown
from framework2.tasks.launch.rollout import RolloutAborted, read_colour, read_hpa_target
from framework2.tasks.launch.state import clear_abort, read_state, write_state

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
