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
from datetime import timedelta
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, ConfigDict, Field

from framework2.config import LaunchApp, get_settings
from framework2.errors import ConfigError
from framework2.events import emit
from framework2.flows.lifecycle import Finish, SystemRun, run_recorded
from framework2.flows.release_driver import (
    MODEL_VERSION,
    SYSTEM,
    ReleaseOutcome,
    _check_analysis,
    _evidence,
    _flow_run_id,
    _give_back,
    _logger,
    _release_locked,
    _roll_back_and_record,
    flow_run_alive,
    load_cluster,
    predict,
    publish_plan,
    publish_timeline,
)
from framework2.store.engine import open_store
from framework2.store.releases import recent_releases, update_release
from framework2.systems import SystemResult
from framework2.tasks.launch.cluster import (
    LockKeeper,
    ReleaseInProgress,
    ReleaseTarget,
    acquire_release_lock,
    active_colour,
    lock_name,
    preflight,
    server_version,
)
from framework2.tasks.launch.release import (
    AnalysisSettings,
    ReleaseRequest,
    ReleaseRun,
    fast_rollback_possible,
    redeploy_previous,
)
from framework2.tasks.launch.rollout import read_colour, read_hpa_target
from framework2.tasks.launch.scaling import ScaleResult, raise_capacity, scale_target
from framework2.tasks.launch.state import ReleaseState, read_state, request_abort


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

    def body(run: SystemRun) -> Finish:
        with LockKeeper(api, checked.lock, ttl) as keeper:
            outcome = _release_locked(
                api, engine, request, target, keeper, checked.active_colour, (prediction, features), run.id
            )
        return Finish(outcome.model_dump(mode="json"), value=outcome)

    try:
        return run_recorded(
            SYSTEM, body, parameters=request.model_dump(mode="json"), engine=engine, model_version=MODEL_VERSION
        ).value
    finally:
        _give_back(api, checked.lock)
        api.close()


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

    def body(_run: SystemRun) -> Finish:
        releases = recent_releases(engine, limit=50)
        finished = [r for r in releases if r.succeeded is not None]
        quality = sum(bool(r.succeeded) for r in finished) / len(finished) if finished else 1.0
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
        return Finish({"summary": summary, "quality": quality, **metrics}, value=(summary, quality, metrics))

    end = run_recorded(
        SYSTEM, body, parameters=settings.model_dump(mode="json"), engine=engine, model_version=MODEL_VERSION
    )
    summary, quality, metrics = end.value
    logger.info(summary)
    return SystemResult(system=SYSTEM, run_id=end.run_id, summary=summary, quality=quality, metrics=metrics)


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
