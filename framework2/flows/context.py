"""PCES — context evolution: what changed in the requirements, and how they evolve.

Pipeline of ``pces-ingest`` (what PSO runs, after PPMS): for every Requirements Source block in
``[pces] requirementsSources`` — bring the directory or git clone up to date → read every Markdown file on its
own (a bad file is quarantined with its reason and what to fix, never blocking the others; duplicate ids
are all held back) → flag links to tasks PPMS does not know → store a new version only where the content
hash changed, with its structured diff, in one transaction per source → emit
``framework2.pces.requirement.changed`` per change (PPMS re-forecasts and PPOS re-scores on it) → publish the
``pces-evolution`` artifact: churn, volatility and late changes per requirement and project, with a chart.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from sqlalchemy.engine import Engine

from framework2.config import Settings, get_settings
from framework2.errors import DataError
from framework2.events import emit
from framework2.flows.common import flow_run_link
from framework2.flows.lifecycle import Finish, SystemRun, run_recorded
from framework2.flows.planning import calibrated_dependence
from framework2.store.context import (
    current_links,
    current_version,
    expire_messages,
    impact_status,
    mark_delivery,
    queue_messages,
    queued_messages,
    recent_releases,
    record_decision,
    record_ingest,
    save_impact,
    version_history,
    version_pair,
    withdraw_queued,
)
from framework2.store.engine import open_store
from framework2.store.planning import load_dependencies, load_people, load_projects, load_tasks
from framework2.store.runs import already_quarantined, quarantine
from framework2.systems import SystemResult
from framework2.tasks.context.approval import STATUS as APPROVAL_STATUS
from framework2.tasks.context.approval import ChangeApproval, start_deadline
from framework2.tasks.context.evolution import (
    RequirementDiff,
    VersionPoint,
    against_last_substantive,
    body_lines_changed,
    churn_chart,
    diff_requirements,
    evolution_metrics,
    normalise_criterion,
)
from framework2.tasks.context.impact import (
    OWN_TASK_PREFIX,
    REWORK_SHARE_PER_CRITERION,
    ChangedRequirement,
    Component,
    Decision,
    ImpactPolicy,
    ImpactReport,
    assess_impact,
    build_traceability,
    decide,
)
from framework2.tasks.context.report import impact_markdown
from framework2.tasks.context.requirements import ReadResult, Requirement, read_requirements_dir, unknown_task_links
from framework2.tasks.context.sources import checkout_directory, read_jira_requirements
from framework2.tasks.context.stakeholders import (
    Message,
    Preference,
    change_key,
    change_message,
    decision_message,
    deliver,
    digest,
    stakeholders_for,
)
from framework2.tasks.planning.durations import fit_duration_model
from framework2.tasks.planning.flow import fit_durations_at
from framework2.tasks.planning.records import TaskRecord

SYSTEM = "pces"
MODEL_VERSION = "pces-1"
DECIDED = ("accepted", "notified", "approved", "rejected")
MAX_RETRY_DELAY = timedelta(hours=1)


def ingest_source(engine: Engine, settings: Settings, name: str, run_id: str, known_tasks: set[str]) -> dict[str, Any]:
    """Read one Requirements Source and store what changed; one line of counts, and the changes."""
    from framework2.blocks.requirements_source import RequirementsSource

    block = RequirementsSource.load(name)
    commit, read = None, ReadResult(requirements=[], problems=[])
    if block.path or block.git_url:
        checkout = checkout_directory(
            path=block.path,
            git_url=block.git_url,
            branch=block.branch,
            subdirectory=block.subdirectory,
            cache=Path(settings.home) / "pces" / name,
            timeout=block.timeout_seconds,
        )
        commit, read = checkout.commit, read_requirements_dir(checkout.directory, pattern=block.pattern)
    if block.jira_source:
        from framework2.blocks.project_sources import JiraSource

        jira = read_jira_requirements(JiraSource.load(block.jira_source), block.jira_jql or "")
        read = ReadResult(
            requirements=[*read.requirements, *jira.requirements], problems=[*read.problems, *jira.problems]
        )
    links = unknown_task_links(read.requirements, known_tasks)
    problems = [*read.problems, *links]
    logger = get_run_logger()
    for problem in problems:  # every run says what is still wrong, so a broken file is never silent
        logger.warning("requirements source %s: %s: %s (%s)", name, problem.source, problem.reason, problem.hint)
    where = f"requirements-source/{name}"
    seen = already_quarantined(engine, SYSTEM, where, [(p.source, p.reason) for p in problems])
    quarantine(
        engine,
        system=SYSTEM,
        source=where,
        rows=[p.model_dump() for p in problems if (p.source, p.reason) not in seen],
        run_id=run_id,
    )
    changes = record_ingest(
        engine,
        name,
        read.requirements,
        {p.source for p in read.problems},
        diff_requirements,
        Requirement.model_validate,
        commit=commit,
        run_id=run_id,
        recheck=against_last_substantive,
    )
    by_id = {r.id: r for r in read.requirements}
    for change in changes:
        requirement = by_id.get(change.id)
        if change.cosmetic:  # stored and shown, but no change to assess, forecast or announce
            get_run_logger().info("%s: cosmetic edit (%s), nothing to re-assess", change.id, change.cosmetic_reason)
            continue
        emit(
            SYSTEM,
            "requirement.changed",
            {
                "requirement": change.id,
                "kind": change.kind,
                "project": requirement.project if requirement else None,
                "summary": change.summary,
                "source": name,
                "commit": commit,
            },
        )
    return {
        "source": name,
        "commit": commit,
        "requirements": len(read.requirements),
        "unreadable": len(read.problems),
        "problems": [f"{p.source}: {p.reason} — {p.hint}" if p.hint else f"{p.source}: {p.reason}" for p in problems],
        "changes": [c.summary for c in changes],
        "cosmetic": [c.summary for c in changes if c.cosmetic],
    }


def problems_markdown(sources: list[dict[str, Any]], failed: list[str]) -> list[str]:
    """The artifact's section on what could not be read, per source, with what to do about it."""
    problems = [(s["source"], p) for s in sources for p in s["problems"]]
    if not problems and not failed:
        return []
    lines = ["", f"## Needs fixing ({len(problems) + len(failed)})", ""]
    lines += [f"- **{name}** unreachable: {why}" for name, why in (f.split(": ", 1) for f in failed)]
    lines += [f"- {source}: {text}" for source, text in problems]
    return lines


def evolution_report(engine: Engine, now: datetime) -> tuple[pd.DataFrame, str]:
    """Churn, volatility and late changes from every stored version; the metrics and the artifact's markdown."""
    tasks = {t.key: t for t in load_tasks(engine)}
    points = []
    for version in version_history(engine):
        content = version["content"]
        starts = [tasks[k].started_at for k in content.get("tasks", []) if k in tasks and tasks[k].started_at]
        points.append(
            VersionPoint(
                id=version["requirement"],
                project=content.get("project"),
                at=version["created_at"],
                diff=version["diff"],
                work_started=min(starts) if starts else None,
            )
        )
    metrics = evolution_metrics(points, now=now)
    chart = churn_chart(points, now=now)
    columns = ["level", "key", "changes", "churn", "late_changes", "volatility"]
    rows = [
        "| " + " | ".join(f"{r[c]:.2f}" if c == "volatility" else str(r[c]) for c in columns) + " |"
        for r in metrics.sort_values(["level", "volatility"], ascending=[True, False]).to_dict("records")
    ]
    lines = [
        "# PCES requirements evolution",
        "",
        f"{len(points)} stored versions over the last 90 days. Churn: body lines and acceptance criteria changed; "
        "late: changed after work on its linked tasks had started; volatility: share of weeks with a change.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *(rows or ["| — | no requirements yet: configure [pces] requirementsSources | | | | |"]),
        *(["", f"![requirement changes per week]({chart})"] if chart else []),
    ]
    return metrics, "\n".join(lines)


def run_ingest(engine: Engine, settings: Settings, run_id: str, sources: list[str]) -> dict[str, Any]:
    """Ingest every source (a failing source is reported, the others still run) and publish."""
    known = {t.key for t in load_tasks(engine)}
    results, failures = [], []
    for name in sources:
        try:
            results.append(ingest_source(engine, settings, name, run_id, known))
        except Exception as exc:  # one unreachable repository must not hide the others' changes
            failures.append(f"{name}: {exc}")
            get_run_logger().error("requirements source %s failed: %s", name, exc)
    metrics, markdown = evolution_report(engine, datetime.now(UTC))
    lines = markdown.split("\n")
    lines[3:3] = problems_markdown(results, failures)  # under the lead: what needs a person comes first
    create_markdown_artifact(key="pces-evolution", markdown="\n".join(lines), description="PCES: requirement churn")
    tracked = int((metrics["level"] == "requirement").sum()) if not metrics.empty else 0
    readable = sum(s["requirements"] for s in results)
    unreadable = sum(s["unreadable"] for s in results)
    # Quality: the share of requirement files that could be read (a broken file lowers PCES health).
    quality = readable / (readable + unreadable) if readable + unreadable else 1.0
    why = (
        f"{unreadable} of {readable + unreadable} requirement files could not be read (see pces-evolution)"
        if unreadable
        else None
    )
    return {
        "sources": results,
        "failed": failures,
        "tracked": tracked,
        "quality": round(quality, 4),
        "quality_reason": why,
    }


@flow(name="pces-ingest", description="PCES: read requirement sources, version what changed, report evolution.")
def ingest(sources: list[str] | None = None) -> SystemResult:
    """Read the Requirements Source blocks (default: ``[pces] requirementsSources``); store new versions with
    their diffs; emit requirement.changed."""
    settings = get_settings()
    engine = open_store()
    names = sources if sources is not None else settings.pces.requirements_sources

    def body(run: SystemRun) -> Finish:
        outcome = run_ingest(engine, settings, run.id, names)
        status = "failed" if outcome["failed"] and not outcome["sources"] else "completed"
        return Finish(outcome, status=status, value=outcome)

    end = run_recorded(SYSTEM, body, parameters={"sources": names}, engine=engine, model_version=MODEL_VERSION)
    run_id, status, outcome = end.run_id, end.status, end.value
    changed = sum(len(s["changes"]) for s in outcome["sources"])
    cosmetic = sum(len(s["cosmetic"]) for s in outcome["sources"])
    problems = sum(len(s["problems"]) for s in outcome["sources"])
    summary = (
        f"{len(outcome['sources'])} requirement sources read: {changed} changes"
        + (f" ({cosmetic} cosmetic)" if cosmetic else "")
        + f", {problems} files with problems"
        + (f"; failed: {'; '.join(outcome['failed'])}" if outcome["failed"] else "")
    )
    if status == "failed":
        raise RuntimeError(summary)
    return SystemResult(system=SYSTEM, run_id=run_id, summary=summary, quality=outcome["quality"], metrics=outcome)


def criterion_key(requirement: str, criterion: str) -> str:
    """The plan's key of the task for one acceptance criterion: the same text always gives the same task."""
    # The normal form criteria are compared in: re-casing or re-wrapping a criterion keeps its task.
    digest = hashlib.blake2b(normalise_criterion(criterion).encode(), digest_size=4).hexdigest()
    return f"{OWN_TASK_PREFIX}{requirement}#ac-{digest}"


def criterion_tasks(
    requirement: str, project: str | None, criteria: list[str], linked: list[TaskRecord], now: datetime
) -> list[TaskRecord]:
    """New scope for criteria added while the linked work is still open: one task per criterion, a fifth of the
    linked open tasks' mean estimate (the rework rule's "a criterion is a fifth of a story"). Once the change
    is accepted (or approved) these tasks are in PPMS's plan, so every later forecast counts them."""
    open_linked = [t for t in linked if t.status != "done"]
    if not project or not open_linked or not criteria:
        return []
    estimates = [t.estimate_days for t in open_linked if t.estimate_days]
    size = REWORK_SHARE_PER_CRITERION * (sum(estimates) / len(estimates) if estimates else 1.0)
    return [
        TaskRecord(
            key=criterion_key(requirement, text),
            project=project,
            title=f"{requirement}: {text}"[:500],
            type="requirement",
            labels=["pces"],
            estimate_days=size,
            created_at=now,
            updated_at=now,
        )
        for text in dict.fromkeys(criteria)
    ]


def changed_requirement(
    before: dict[str, Any] | None,
    after: dict[str, Any],
    diff: dict[str, Any],
    tasks: list[TaskRecord],
    now: datetime,
    projects: set[str] | None = None,
) -> ChangedRequirement:
    """The impact analysis's view of one stored version; the tasks of removed criteria (those in the plan)
    count as linked before and not after, so they leave the scope."""
    added, removed = body_lines_changed(diff.get("body_diff", ""))
    kind = diff.get("kind", "changed")
    linked = list(after.get("tasks", []))
    by_key = {t.key: t for t in tasks}
    dropped = [
        key for key in (criterion_key(after["id"], text) for text in diff.get("criteria_removed", [])) if key in by_key
    ]
    if kind == "removed":  # every criterion task of a removed requirement goes
        dropped = [t.key for t in tasks if t.key.startswith(f"{OWN_TASK_PREFIX}{after['id']}#ac-")]
    return ChangedRequirement(
        id=after["id"],
        project=after.get("project"),
        owner=after.get("owner"),
        tasks=[] if kind == "removed" else linked,
        components=list(after.get("components", [])),
        tasks_before=(linked if kind == "removed" else list((before or {}).get("tasks", []))) + dropped,
        criteria_added=len(diff.get("criteria_added", [])),
        criteria_removed=len(diff.get("criteria_removed", [])),
        body_lines_changed=added + removed,
        kind=kind,
        # No new tasks for a project PPMS does not know (a misspelt key must not create a project).
        new_tasks=[]
        if kind != "changed" or (projects is not None and after.get("project") not in projects)
        else criterion_tasks(
            after["id"],
            after.get("project"),
            diff.get("criteria_added", []),
            [by_key[k] for k in linked if k in by_key],
            now,
        ),
    )


def scope_of(change: ChangedRequirement, report: ImpactReport) -> tuple[list[TaskRecord], list[str]]:
    """What an accepted change does to the plan: the tasks it adds, the PCES tasks it retires."""
    return list(change.new_tasks), [k for k in report.removed_tasks if k.startswith(OWN_TASK_PREFIX)]


class Assessment(NamedTuple):
    """One version's impact, the policy's decision and where the change stands."""

    report: ImpactReport
    decision: Decision
    version: int
    diff: dict[str, Any]
    content: dict[str, Any]
    change: ChangedRequirement
    status: str
    settled: bool  # decided by an earlier run, or replaced by a newer version: nothing to ask or announce


def assess_change(engine: Engine, settings: Settings, run_id: str, requirement: str, version: int | None) -> Assessment:
    """Impact of one version and the policy's decision, stored — with its new scope in the plan when the policy
    accepts it. A decision stands: re-assessing a decided version (a re-run, a replayed event) refreshes the
    numbers but neither reopens it nor adds its scope twice; a version a newer one replaced is assessed for the
    record only ("superseded")."""
    pair = version_pair(engine, requirement, version)
    if pair is None:
        raise DataError(
            f"requirement {requirement!r}{f' version {version}' if version else ''} is not stored",
            "run pces-ingest first, or check the id (the event's payload names it)",
        )
    before, after, diff, number = pair
    now = datetime.now(UTC)
    tasks, deps, people = load_tasks(engine), load_dependencies(engine), load_people(engine)
    projects = load_projects(engine)
    known = {p.key for p in projects}
    if after.get("project") and after["project"] not in known:
        get_run_logger().warning(
            "%s names project %r, which PPMS does not know: no tasks are added for it", requirement, after["project"]
        )
    change = changed_requirement(before, after, diff, tasks, now, known)
    releases, in_flight = recent_releases(engine, now - timedelta(days=30))
    trace = build_traceability(
        current_links(engine),
        [Component(**c) for c in settings.pces.components],
        releases,
        in_flight=in_flight,
    )
    # PPMS's own model, trials and calibration: the schedule before and after is what ppms-forecast publishes.
    history = settings.ppms.min_history_items
    model = (
        fit_durations_at(change.project, tasks, now, min_history_items=history)
        if change.project
        else fit_duration_model([t for t in tasks if t.status == "done"], now=now)
    )
    target = next((p.target_date for p in projects if p.key == change.project), None)
    report = assess_impact(
        change,
        trace,
        tasks,
        deps,
        people,
        model,
        now=now,
        target_date=target,
        trials=settings.ppms.forecast_trials,
        min_history_items=history,
        dependence=calibrated_dependence(engine).get(change.project or ""),
    )
    decision = decide(report, ImpactPolicy(**settings.pces.impact_policy), target_date=target)
    status = {"auto_accept": "accepted", "notify": "notified", "require_approval": "pending_approval"}[decision.action]
    earlier = impact_status(engine, requirement, number)
    settled = earlier in DECIDED or number < current_version(engine, requirement)
    if earlier in DECIDED:
        status = str(earlier)
    elif settled:
        status = "superseded"
    adopted = scope_of(change, report) if status in ("accepted", "notified") and not settled else None
    save_impact(engine, requirement, number, run_id, report, decision, status, scope=adopted)
    emit(
        SYSTEM,
        "impact.assessed",
        {
            "requirement": requirement,
            "version": number,
            "project": change.project,
            "action": decision.action,
            "risk": report.risk,
            "effort_delta_days": round(report.effort_delta_days, 1),
            "p85_shift_days": report.p85_shift_days,
            "status": status,
        },
    )
    if adopted is not None:
        announce_scope(requirement, number, change, report, adopted)
    return Assessment(report, decision, number, diff, after, change, status, settled)


def _ask_for_approval(
    engine: Engine,
    settings: Settings,
    requirement: str,
    version: int,
    scope: tuple[list[TaskRecord], list[str]],
    *,
    description: str,
) -> tuple[str, ChangeApproval | None]:
    """Pause with the approval form; store the answer (or, at the deadline, leave the change pending)."""
    logger = get_run_logger()
    wait = settings.pces.approval_wait.total_seconds()
    deadline = start_deadline(get_run_context().flow_run.id, wait, logger)
    try:
        # The pause outlasts the deadline: Prefect fails a run whose pause times out.
        answer = pause_flow_run(
            wait_for_input=ChangeApproval.with_initial_data(description=description),
            timeout=int(wait) + 300,
            poll_interval=min(5, max(1, int(wait))),
        )
    except FlowPauseTimeout:
        logger.error("no answer to the approval form for %s v%d; it stays pending", requirement, version)
        return "pending_approval", None
    finally:
        deadline.cancel()
    status = APPROVAL_STATUS[answer.decision]
    if status != "pending_approval":  # "leave pending" (or the deadline) decides nothing
        # An approved change's scope enters the plan with the decision; a rejected one never does.
        record_decision(
            engine,
            requirement,
            version,
            status,
            answer.approver,
            answer.note,
            scope=scope if status == "approved" else None,
        )
    logger.info("%s v%d: %s by %s", requirement, version, status, answer.approver)
    return status, answer


@flow(name="pces-change-impact", description="PCES: what a requirement change touches and costs, and what to do.")
def change_impact(requirement: str, version: int | None = None) -> dict[str, Any]:
    """Assess one requirement version (default: the newest); pause for approval when the policy asks for it."""
    settings = get_settings()
    engine = open_store()

    def body(run: SystemRun) -> Finish:
        report, decision, number, diff, content, change, status, settled = assess_change(
            engine, settings, run.id, requirement, version
        )
        create_markdown_artifact(
            key=f"pces-impact-{_artifact_key(requirement)}",
            markdown=impact_markdown(requirement, number, diff, report, decision),
            description=f"PCES: impact of {requirement} v{number}",
        )
        approval = None
        link = flow_run_link(run.flow_run_id)
        if status == "pending_approval" and link:
            approval = (link, datetime.now(UTC) + settings.pces.approval_wait)
        # Everyone hears before a pause: the owner has to know there is something to approve, where and by when.
        informed = 0
        if settled:
            get_run_logger().info("%s v%d is %s already: nothing to ask or announce", requirement, number, status)
        else:
            informed = inform_stakeholders(engine, settings, content, number, diff, report, decision, approval)
        if status == "pending_approval":
            form = impact_markdown(requirement, number, diff, report, decision)
            status, answer = _ask_for_approval(
                engine, settings, requirement, number, scope_of(change, report), description=form
            )
            if answer is not None and status != "pending_approval":
                informed += close_the_loop(engine, settings, content, number, status, answer, report, change)
        outcome = {
            "requirement": requirement,
            "version": number,
            "action": decision.action,
            "status": status,
            "informed": informed,
        }
        return Finish({**outcome, "reasons": decision.reasons}, value=outcome)

    return run_recorded(
        SYSTEM,
        body,
        parameters={"step": "impact", "requirement": requirement, "version": version},
        engine=engine,
        model_version=MODEL_VERSION,
    ).value


def announce_scope(
    requirement: str,
    version: int,
    change: ChangedRequirement,
    report: ImpactReport,
    scope: tuple[list[TaskRecord], list[str]],
) -> None:
    """``scope.changed``: a change is in the plan now (PPMS re-forecasts the project on it) — with what the
    impact expects the forecast to become, so anyone can check the two agree."""
    added, retired = scope
    emit(
        SYSTEM,
        "scope.changed",
        {
            "requirement": requirement,
            "version": version,
            "project": change.project,
            "added_tasks": [t.key for t in added],
            "retired_tasks": list(retired),
            "effort_delta_days": round(report.effort_delta_days, 1),
            "expected_p85": (report.schedule_after or {}).get("p85"),
            "p85_shift_days": report.p85_shift_days,
        },
    )


def close_the_loop(
    engine: Engine,
    settings: Settings,
    content: dict[str, Any],
    version: int,
    status: str,
    answer: ChangeApproval,
    report: ImpactReport,
    change: ChangedRequirement,
) -> int:
    """After a person decided: emit ``change.decided`` (PPMS re-forecasts on it), withdraw the queued messages
    that still ask for the decision, and tell everyone concerned at once. Returns how many were told."""
    emit(
        SYSTEM,
        "change.decided",
        {
            "requirement": content["id"],
            "version": version,
            "project": change.project,
            "status": status,
            "approver": answer.approver,
            "note": answer.note,
            "effort_delta_days": round(report.effort_delta_days, 1) if status == "approved" else 0.0,
            "p85_shift_days": report.p85_shift_days if status == "approved" else 0.0,
        },
    )
    if status == "approved":
        announce_scope(content["id"], version, change, report, scope_of(change, report))
    withdrawn = withdraw_queued(engine, change_key(content["id"], version))
    if withdrawn:
        get_run_logger().info("withdrew %d queued messages about %s v%d", withdrawn, content["id"], version)
    if not settings.pces.stakeholder_notifications:
        return 0
    people = _people_for(engine, settings, content, report)
    messages = [
        decision_message(
            p, content["id"], content.get("title", ""), version, status, answer.approver, answer.note, report
        )
        for p in people
    ]
    queue_messages(engine, messages)
    deliver_queued(engine, settings, mode="immediate")
    return len(messages)


def _people_for(engine: Engine, settings: Settings, content: dict[str, Any], report: ImpactReport | None) -> list:
    assignees = {t.key: t.assignee for t in load_tasks(engine) if t.assignee}
    owners = {c["name"]: c["owner"] for c in settings.pces.components if c.get("owner")}
    preferences = {h: Preference(handle=h, **p) for h, p in settings.pces.stakeholders.items()}
    return stakeholders_for(content.get("owner"), report, assignees, owners, preferences)


def _artifact_key(requirement: str) -> str:
    # Artifact keys allow lower-case letters, digits and dashes only.
    return re.sub(r"[^a-z0-9-]+", "-", requirement.lower()).strip("-") or "requirement"


def inform_stakeholders(
    engine: Engine,
    settings: Settings,
    content: dict[str, Any],
    version: int,
    diff: dict[str, Any],
    report: ImpactReport | None,
    decision: Decision | None,
    approval: tuple[str, datetime] | None = None,
) -> int:
    """Queue a message for everyone the change concerns (by ownership, with their preference) and send the
    immediate ones now; returns how many were queued. Failed sends stay queued for the next run."""
    if not settings.pces.stakeholder_notifications:
        return 0
    people = _people_for(engine, settings, content, report)
    changes = RequirementDiff.model_validate(diff)
    messages = [
        change_message(p, content["id"], content.get("title", ""), version, changes, report, decision, approval)
        for p in people
    ]
    queue_messages(engine, messages)
    deliver_queued(engine, settings, mode="immediate")
    return len(messages)


def retry_delay(settings: Settings, failed_rounds: int) -> timedelta:
    """How long after its ``failed_rounds``-th failed round a message is tried again: ``messageRetry``,
    doubling each round, at most an hour (a channel down for a day is tried ~24 times, not thousands)."""
    return min(settings.pces.message_retry * 2 ** max(0, failed_rounds - 1), MAX_RETRY_DELAY)


def deliver_queued(
    engine: Engine, settings: Settings, *, mode: str | None = None, retrying: bool = False, everything: bool = False
) -> dict[str, int]:
    """Send what the outbox holds that is due: immediate messages one by one, digest messages as one digest per
    person and channel. What fails stays queued with the error and the time of its next try (back-off).
    ``retrying``: only messages that failed before; ``everything``: due or not (the daily digest)."""
    default = settings.notifications.block
    sent = failed = 0
    due = None if everything else datetime.now(UTC)
    rows = [r for r in queued_messages(engine, mode=mode, due_at=due) if not retrying or r.failed_rounds > 0]
    as_message = {
        r.id: Message(
            recipient=r.recipient,
            mode=r.mode,  # type: ignore[arg-type]
            channel=r.channel,
            subject=r.subject,
            body=r.body,
            change_keys=r.change_keys,
        )
        for r in rows
    }
    batches: list[tuple[list[int], Message]] = [([i], m) for i, m in as_message.items() if m.mode == "immediate"]
    groups: dict[tuple[str, str | None], list[int]] = {}
    for i, m in as_message.items():
        if m.mode == "digest":
            groups.setdefault((m.recipient, m.channel), []).append(i)
    today = datetime.now(UTC).date()
    for ids in groups.values():
        [combined] = digest([as_message[i] for i in ids], day=today)
        batches.append((ids, combined))
    for ids, message in batches:
        delivery = deliver(message, default_channel=default)
        mark_delivery(engine, ids, delivery.sent, delivery.attempts, delivery.error, lambda n: retry_delay(settings, n))
        sent, failed = sent + delivery.sent, failed + (not delivery.sent)
        if not delivery.sent:
            get_run_logger().warning("message to %s stays queued: %s", message.recipient, delivery.error)
    return {"sent": sent, "failed": failed}


def outbox_markdown(engine: Engine, expired: list[Any], now: datetime) -> str:
    """The ``pces-outbox`` artifact: what is still undelivered, how often it was tried, when next, and why not."""
    rows = queued_messages(engine)

    def cell(text: Any) -> str:
        return str(text or "").replace("|", "\\|").replace("\n", " ")[:120]

    lines = [
        "# PCES outbox",
        "",
        f"{len(rows)} messages waiting; a refused message is tried again after "
        "`[pces] messageRetry`, doubling each round up to an hour, until it is sent or `messageExpiry` old.",
        "",
        "| to | mode | subject | tries | next try (UTC) | last error |",
        "|---|---|---|---|---|---|",
        *(
            f"| {cell(r.recipient)} | {r.mode} | {cell(r.subject)} | {r.attempts} | "
            f"{(r.next_attempt_at or now):%Y-%m-%d %H:%M} | {cell(r.last_error)} |"
            for r in rows
        ),
    ]
    if not rows:
        lines.append("| — | | nothing waiting | | | |")
    if expired:
        lines += ["", f"**Given up on this run ({len(expired)}):**", ""]
        lines += [f"- {cell(r.recipient)}: {cell(r.subject)} — {cell(r.last_error)}" for r in expired]
    return "\n".join(lines)


def _deliver_and_report(step: str, deliver_step: Any) -> dict[str, int]:
    settings = get_settings()
    engine = open_store()

    def body(_run: SystemRun) -> dict[str, int]:
        now = datetime.now(UTC)
        expired = expire_messages(engine, now - settings.pces.message_expiry)
        for row in expired:
            get_run_logger().error(
                "gave up on the message to %s after %d tries: %s", row.recipient, row.attempts, row.last_error
            )
        outcome = deliver_step(engine, settings) | {"expired": len(expired)}
        create_markdown_artifact(
            key="pces-outbox", markdown=outbox_markdown(engine, expired, now), description="PCES: undelivered messages"
        )
        return outcome

    return run_recorded(SYSTEM, body, parameters={"step": step}, engine=engine).value


@flow(name="pces-stakeholder-digest", description="PCES: send the daily digests and retry queued messages.")
def stakeholder_digest() -> dict[str, int]:
    """Send every queued message that is due (digests per person and channel); what fails stays queued with its
    next try; what is older than ``[pces] messageExpiry`` is given up on. Publishes ``pces-outbox``."""
    return _deliver_and_report("digest", lambda engine, settings: deliver_queued(engine, settings, everything=True))


@flow(name="pces-message-retry", description="PCES: try again the messages a channel refused, with back-off.")
def message_retry() -> dict[str, int]:
    """Every few minutes: send again the messages whose retry is due (back-off in ``retry_delay``), give up on
    expired ones, and publish ``pces-outbox`` so what is stuck, and why, is visible."""
    return _deliver_and_report("retry", lambda engine, settings: deliver_queued(engine, settings, retrying=True))
