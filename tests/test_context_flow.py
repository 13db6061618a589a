"""PCES ingest end to end on a real Prefect server and a real git repository: versions only on change,
structured diffs, bad files quarantined without blocking the rest, removals, and the change events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from prefect.artifacts import Artifact
from sqlalchemy import select

from framework2.config import get_settings
from framework2.flows.context import criterion_key
from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, QuarantinedRow, RequirementRow, RequirementVersion
from framework2.store.planning import load_tasks

pytestmark = pytest.mark.integration
# Every change needs approval: the effort bound is below anything a change can cost.
STRICT = '{"approval_on_risk": "never", "approval_min_effort_days": -1000}'
# No change needs approval or a notification.
LENIENT = {
    "auto_accept_max_effort_days": 100,
    "auto_accept_max_p85_shift_days": 100,
    "auto_accept_max_risk": "high",
    "approval_min_effort_days": 1000,
    "approval_min_p85_shift_days": 1000,
    "approval_on_risk": "never",
    "approval_if_target_missed": False,
}

CHECKOUT = """---
id: REQ-1
title: Guest checkout
priority: must
owner: ana
project: sample:shop
components: [checkout]
---
Shoppers can pay without an account.

## Acceptance criteria
- [ ] A guest can enter an email and pay
- [ ] The receipt goes to that email
"""
SEARCH = """---
id: REQ-2
title: Search suggestions
owner: ben
---
Suggest products while typing.

## Acceptance criteria
1. Suggestions appear after two letters
"""


def git(*args: str, cwd: Path) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@x"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path: Path, prefect_server: str, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    from framework2.blocks.requirements_source import RequirementsSource

    repo = tmp_path / "requirements"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch", "main", cwd=repo)
    (repo / "checkout.md").write_text(CHECKOUT)
    (repo / "search.md").write_text(SEARCH)
    (repo / "broken.md").write_text("---\ntitle: no id here\n---\nbody\n")
    git("add", ".", cwd=repo)
    git("commit", "--quiet", "-m", "first", cwd=repo)
    RequirementsSource(git_url=str(repo), branch="main").save("pces-test", overwrite=True)
    monkeypatch.setenv("FRAMEWORK2_PCES__REQUIREMENTS_SOURCES", '["pces-test"]')
    get_settings.cache_clear()
    return repo


def test_ingest_versions_only_what_changed_and_says_what_changed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import framework2.flows.context as pces

    emitted: list[dict] = []
    monkeypatch.setattr(pces, "emit", lambda _system, event, payload: emitted.append({"event": event, **payload}))

    first = pces.ingest()

    assert first.system == "pces" and "2 changes, 1 files with problems" in first.summary
    assert sorted(e["requirement"] for e in emitted) == ["REQ-1", "REQ-2"]
    assert {e["kind"] for e in emitted} == {"added"} and all(e["commit"] for e in emitted)
    with session_scope(open_store()) as session:
        held = [
            (r.reason, r.payload)
            for r in session.scalars(select(QuarantinedRow).where(QuarantinedRow.system == "pces"))
        ]
    assert [(reason, payload["source"]) for reason, payload in held] == [("front matter has no id", "broken.md")]
    assert "add 'id: REQ-3' (an id no other requirement uses)" in held[0][1]["hint"]  # REQ-1 and REQ-2 are taken
    # Seen, not only stored: the artifact leads with it, and PCES's quality (so its health) drops.
    artifact = Artifact.get("pces-evolution")
    assert artifact is not None and "## Needs fixing (1)" in artifact.data and "broken.md" in artifact.data
    with session_scope(open_store()) as session:
        run = session.scalars(select(AnalysisRun).where(AnalysisRun.system == "pces")).one()
    assert run.outcome["quality"] == pytest.approx(2 / 3, abs=1e-4) and "1 of 3" in run.outcome["quality_reason"]

    emitted.clear()
    pces.ingest()  # nothing changed: no version, no event, and the broken file is not quarantined again
    assert emitted == []
    with session_scope(open_store()) as session:
        assert len(session.scalars(select(QuarantinedRow).where(QuarantinedRow.system == "pces")).all()) == 1

    edited = CHECKOUT.replace("priority: must", "priority: should").replace(
        "- [ ] The receipt goes to that email", "- [ ] The receipt goes to that email\n- [ ] Guests can track the order"
    )
    (repo / "checkout.md").write_text(edited)
    (repo / "search.md").unlink()
    git("add", "-A", cwd=repo)
    git("commit", "--quiet", "-m", "second", cwd=repo)

    pces.ingest()

    kinds = {e["requirement"]: e["kind"] for e in emitted}
    assert kinds == {"REQ-1": "changed", "REQ-2": "removed"}
    with session_scope(open_store()) as session:
        versions = session.scalars(
            select(RequirementVersion)
            .where(RequirementVersion.requirement == "REQ-1")
            .order_by(RequirementVersion.version)
        ).all()
        rows = {r.id: (r.status, r.version) for r in session.scalars(select(RequirementRow))}
        diff = versions[-1].diff
    assert [v.version for v in versions] == [1, 2]
    assert diff["criteria_added"] == ["Guests can track the order"] and diff["criteria_removed"] == []
    assert any(c["field"] == "priority" for c in diff["fields_changed"])
    assert rows == {"REQ-1": ("draft", 2), "REQ-2": ("removed", 2)}
    artifact = Artifact.get("pces-evolution")
    assert artifact is not None and "| level | key | changes |" in artifact.data
    # What PPOS's scope-change component reads: the projects PCES tracks (REQ-2 had none), no impact yet.
    from datetime import UTC, datetime, timedelta

    from framework2.store.context import scope_changes

    assert scope_changes(open_store(), datetime.now(UTC) - timedelta(days=28)) == {"sample:shop": []}

    # A typo fix is a new version, shown with why it is cosmetic, and triggers nothing.
    emitted.clear()
    (repo / "checkout.md").write_text(edited.replace("Shoppers can pay without", "Shoppers can pay wihtout"))
    git("commit", "--quiet", "-am", "typo", cwd=repo)
    pces.ingest()
    assert emitted == []
    with session_scope(open_store()) as session:
        typo = session.scalars(
            select(RequirementVersion).where(RequirementVersion.requirement == "REQ-1", RequirementVersion.version == 3)
        ).one()
    assert typo.diff["cosmetic"] and typo.diff["cosmetic_reason"] == "typo fix 'without' → 'wihtout'"


def test_a_file_that_breaks_keeps_its_requirement_instead_of_removing_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.context as pces

    monkeypatch.setattr(pces, "emit", lambda *_a: None)
    pces.ingest()
    (repo / "search.md").write_text("---\nid: REQ-2\ntitle: [unclosed\n---\n")
    git("commit", "--quiet", "-am", "oops", cwd=repo)

    pces.ingest()

    with session_scope(open_store()) as session:
        search = session.get(RequirementRow, "REQ-2")
        assert search is not None and search.status != "removed" and search.version == 1


def _ingest_linked(repo: Path, monkeypatch: pytest.MonkeyPatch, criteria: int) -> None:
    """REQ-1 linked to open shop tasks, committed with ``criteria`` acceptance criteria, then ingested."""
    import framework2.flows.context as pces

    items = "\n".join(f"- [ ] criterion {i}" for i in range(criteria))
    text = CHECKOUT.replace("components: [checkout]", "components: [checkout]\ntasks: [sample:shop#1, sample:shop#2]")
    text = text.split("## Acceptance criteria")[0] + "## Acceptance criteria\n" + items + "\n"
    (repo / "checkout.md").write_text(text)
    git("commit", "--quiet", "-am", f"{criteria} criteria", cwd=repo)
    monkeypatch.setattr(pces, "emit", lambda *_a: None)
    pces.ingest()


def test_a_small_change_is_assessed_and_accepted_by_the_policy(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import framework2.flows.context as pces
    from framework2.sample.world import seed_projects
    from framework2.store.models import ChangeImpactRow

    seed_projects(open_store())
    _ingest_linked(repo, monkeypatch, 2)
    _ingest_linked(repo, monkeypatch, 3)
    emitted: list[tuple[str, dict]] = []
    monkeypatch.setattr(pces, "emit", lambda _s, event, payload: emitted.append((event, payload)))
    monkeypatch.setenv("FRAMEWORK2_PCES__IMPACT_POLICY", json.dumps(LENIENT))
    get_settings.cache_clear()

    outcome = pces.change_impact("REQ-1")

    assert outcome["action"] == "auto_accept" and outcome["status"] == "accepted" and outcome["version"] >= 2
    [(event, payload), (scope_event, scope)] = emitted
    assert event == "impact.assessed" and payload["requirement"] == "REQ-1" and payload["project"] == "sample:shop"
    with session_scope(open_store()) as session:
        row = session.scalars(select(ChangeImpactRow)).one()
    assert row.status == "accepted" and "sample:shop#1" in row.report["tasks"]
    [added] = row.report["added_tasks"]
    assert added == criterion_key("REQ-1", "criterion 2") and row.report["effort_delta_days"] > 0
    # Accepted: the criterion's task is in PPMS's plan, and the event that re-forecasts says what to expect.
    assert scope_event == "scope.changed" and scope["added_tasks"] == [added] and scope["project"] == "sample:shop"
    assert added in {t.key for t in load_tasks(open_store()) if t.status == "todo"}
    assert scope["expected_p85"] == row.report["schedule_after"]["p85"]


def test_the_impact_schedule_is_the_forecast_ppms_publishes_once_the_change_is_in_the_plan(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One forecast truth: the impact's 'before' is today's PPMS forecast, its 'after' the one PPMS publishes
    after the change entered the plan — the same dates, so the schedule delta is PPMS's own."""
    import framework2.flows.context as pces
    import framework2.flows.planning as planning
    from framework2.sample.world import seed_projects
    from framework2.store.models import ChangeImpactRow, PmForecast

    engine = open_store()
    seed_projects(engine)
    monkeypatch.setattr(planning, "emit", lambda *_a: None)
    monkeypatch.setattr(pces, "emit", lambda *_a: None)
    _ingest_linked(repo, monkeypatch, 2)
    planning.forecast(projects=["sample:shop"])
    with session_scope(engine) as session:
        published_before = session.scalars(
            select(PmForecast).where(PmForecast.project == "sample:shop", PmForecast.milestone.is_(None))
        ).one()
    # Six new criteria on open work: about a day and a half more for the shop, all on the requirement's tasks.
    _ingest_linked(repo, monkeypatch, 8)
    monkeypatch.setenv("FRAMEWORK2_PCES__IMPACT_POLICY", json.dumps(LENIENT))
    get_settings.cache_clear()

    assert pces.change_impact("REQ-1")["status"] in ("accepted", "notified")
    planning.forecast(projects=["sample:shop"])

    with session_scope(engine) as session:
        impact = session.scalars(select(ChangeImpactRow)).one()
        report, version = impact.report, impact.version
        published_after = session.scalars(
            select(PmForecast)
            .where(PmForecast.project == "sample:shop", PmForecast.milestone.is_(None))
            .order_by(PmForecast.created_at.desc())
        ).first()
    assert len(report["added_tasks"]) == 6
    assert report["schedule_before"]["p85"] == published_before.p85.isoformat()
    assert report["schedule_before"]["p50"] == published_before.p50.isoformat()
    assert report["schedule_after"]["p85"] == published_after.p85.isoformat()
    assert report["schedule_after"]["p50"] == published_after.p50.isoformat()
    assert published_after.remaining_tasks == published_before.remaining_tasks + 6
    shift = (published_after.p85 - published_before.p85).days
    assert report["p85_shift_days"] == shift
    assert shift > 0  # the six criteria move the date (4 days on this world)

    # PPOS feels it: the scope-change component names the requirement with its effort and date move.
    import framework2.flows.portfolio as portfolio
    from framework2.store.models import PpHealth

    monkeypatch.setattr(portfolio, "emit_about_project", lambda *_a: None)
    portfolio.project_health()
    with session_scope(engine) as session:
        health = session.scalars(select(PpHealth).where(PpHealth.project == "sample:shop")).one()
    [scope] = [c for c in health.components if c["name"] == "scope_change"]
    assert f"REQ-1 v{version} {report['effort_delta_days']:+.1f} d, P85 {shift:+g} d" in scope["explanation"]
    assert scope["measure"].startswith(f"{report['effort_delta_days']:+.1f} d, P85 {shift:+g} d")
    artifact = Artifact.get("pces-impact-req-1")
    assert artifact is not None and "auto accept" in artifact.data and "Effort:" in artifact.data


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_change_needing_approval_waits_for_a_person_and_the_decision_closes_the_loop(
    repo: Path, monkeypatch: pytest.MonkeyPatch, http_server, decision: str
) -> None:  # type: ignore[no-untyped-def]
    import asyncio
    import contextvars
    import threading

    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.flow_runs import resume_flow_run

    import framework2.flows.context as pces
    from framework2.sample.world import seed_projects
    from framework2.store.models import ChangeImpactRow, StakeholderMessage
    from tests.http_fixtures import Reply
    from tests.test_pricing_approval import paused_run_id

    seed_projects(open_store())
    http_server.route("/ana", *[Reply(200)] * 4, method="POST")
    CustomWebhookNotificationBlock(
        name="ana", url=http_server.url_for("/ana"), method="POST", json_data={"text": "{{subject}}: {{body}}"}
    ).save("ana-hook", overwrite=True)
    monkeypatch.setenv(
        "FRAMEWORK2_PCES__STAKEHOLDERS", '{"ana": {"mode": "immediate", "channel": "custom-webhook/ana-hook"}}'
    )
    _ingest_linked(repo, monkeypatch, 2)
    _ingest_linked(repo, monkeypatch, 4)  # two criteria more on open work: two tasks if approved
    monkeypatch.setenv("FRAMEWORK2_PCES__IMPACT_POLICY", STRICT)
    monkeypatch.setenv("FRAMEWORK2_PCES__APPROVAL_WAIT", "120s")
    get_settings.cache_clear()
    emitted: list[tuple[str, dict]] = []
    monkeypatch.setattr(pces, "emit", lambda _s, event, payload: emitted.append((event, payload)))
    box: dict = {}
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(lambda: box.setdefault("r", pces.change_impact("REQ-1")),))
    worker.start()
    flow_run_id = asyncio.run(paused_run_id("pces-change-impact"))
    with session_scope(open_store()) as session:  # the assessment is stored while the run waits
        assert session.scalars(select(ChangeImpactRow)).one().status == "pending_approval"
    # The owner heard at once, with where to answer and by when; the form shows the impact.
    [asked] = http_server.requests_to("/ana")
    assert f"/runs/flow-run/{flow_run_id}" in asked.json()["text"] and "UTC" in asked.json()["text"]

    async def form_description() -> str:
        async with get_client() as client:
            inputs = await client.filter_flow_run_input(
                flow_run_id=flow_run_id, key_prefix="paused", limit=10, exclude_keys=set()
            )
        return next(i.value for i in inputs if i.key.endswith("-description"))

    assert "Effort" in asyncio.run(form_description())

    resume_flow_run(flow_run_id, run_input={"decision": decision, "approver": "olga", "note": "fits the sprint"})
    worker.join(timeout=120)

    status = {"approve": "approved", "reject": "rejected"}[decision]
    assert box["r"]["status"] == status
    with session_scope(open_store()) as session:
        row = session.scalars(select(ChangeImpactRow)).one()
        statuses = {m.status for m in session.scalars(select(StakeholderMessage))}
    assert (row.status, row.decided_by, row.decision_note) == (status, "olga", "fits the sprint")
    assert row.decided_at is not None and any("effort" in r for r in row.reasons)
    # The loop closes: an event, the new scope in the plan only when approved, and everyone told at once.
    events = [e for e, _ in emitted]
    decided = dict(emitted)["change.decided"]
    assert (decided["status"], decided["approver"], decided["note"]) == (status, "olga", "fits the sprint")
    in_plan = {t.key for t in load_tasks(open_store())} & set(row.report["added_tasks"])
    if decision == "approve":
        assert events == ["impact.assessed", "change.decided", "scope.changed"] and len(in_plan) == 2
    else:
        assert events == ["impact.assessed", "change.decided"] and not in_plan
    told = http_server.requests_to("/ana")[-1].json()["text"]
    assert f"REQ-1 v{row.version} {status} by olga" in told and "fits the sprint" in told
    assert "queued" not in statuses  # nothing left asking for a decision that was made


def test_without_an_answer_in_time_the_change_stays_pending_and_the_run_completes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.context as pces
    from framework2.store.models import ChangeImpactRow

    _ingest_linked(repo, monkeypatch, 1)
    monkeypatch.setenv("FRAMEWORK2_PCES__IMPACT_POLICY", STRICT)
    monkeypatch.setenv("FRAMEWORK2_PCES__APPROVAL_WAIT", "2s")
    get_settings.cache_clear()

    outcome = pces.change_impact("REQ-1")

    assert outcome["status"] == "pending_approval"
    with session_scope(open_store()) as session:
        row = session.scalars(select(ChangeImpactRow)).one()
    assert row.status == "pending_approval" and row.decided_by is None


def test_an_unknown_requirement_is_a_clear_error(repo: Path) -> None:
    from framework2.errors import DataError
    from framework2.flows.context import change_impact

    with pytest.raises(DataError, match="'REQ-404' is not stored"):
        change_impact("REQ-404")


def test_a_failing_channel_keeps_the_message_queued_until_the_next_run_delivers_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch, http_server
) -> None:  # type: ignore[no-untyped-def]
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    import framework2.flows.context as pces
    from framework2.store.models import StakeholderMessage
    from tests.http_fixtures import Reply

    http_server.route("/ana", Reply(500), Reply(500), Reply(500), Reply(200), method="POST")
    CustomWebhookNotificationBlock(
        name="ana", url=http_server.url_for("/ana"), method="POST", json_data={"text": "{{subject}}: {{body}}"}
    ).save("ana-hook", overwrite=True)
    monkeypatch.setenv(
        "FRAMEWORK2_PCES__STAKEHOLDERS", '{"ana": {"mode": "immediate", "channel": "custom-webhook/ana-hook"}}'
    )
    _ingest_linked(repo, monkeypatch, 1)

    outcome = pces.change_impact("REQ-1")

    assert outcome["informed"] >= 1
    assert len(http_server.requests_to("/ana")) == 3  # three tries, all refused
    with session_scope(open_store()) as session:
        [queued] = session.scalars(select(StakeholderMessage).where(StakeholderMessage.recipient == "ana")).all()
    assert (queued.status, queued.attempts) == ("queued", 3) and "500" in queued.last_error
    assert "REQ-1" in queued.subject and "requirement owner" in queued.body
    assert queued.failed_rounds == 1 and queued.next_attempt_at is not None  # tried again in 5 minutes

    assert pces.stakeholder_digest() == {"sent": 1, "failed": 0, "expired": 0}  # the digest sends all it has

    [*_, delivered] = http_server.requests_to("/ana")
    assert "REQ-1" in delivered.json()["text"]
    with session_scope(open_store()) as session:
        sent = session.get(StakeholderMessage, queued.id)
    assert sent.status == "sent" and sent.sent_at is not None and sent.last_error is None


def test_jira_epics_are_ingested_as_requirements(
    prefect_server: str, store_url: str, http_server, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import framework2.flows.context as pces
    from framework2.blocks.project_sources import JiraSource
    from framework2.blocks.requirements_source import RequirementsSource
    from tests.http_fixtures import Reply

    epic = {
        "key": "SHOP-7",
        "fields": {
            "summary": "Guest checkout",
            "description": "Pay without an account.\n\nAcceptance criteria:\n- pay by card",
            "status": {"name": "To Do", "statusCategory": {"key": "new"}},
            "project": {"key": "SHOP"},
            "issuetype": {"name": "Epic"},
        },
    }
    http_server.route("/rest/api/3/search/jql", Reply(200, body={"issues": [epic], "isLast": True}), method="POST")
    JiraSource(site_url=http_server.url, email="pces@acme.com", api_token="t0ken", jql="x").save("acme", overwrite=True)
    RequirementsSource(jira_source="acme", jira_jql="issuetype = Epic").save("jira-reqs", overwrite=True)
    monkeypatch.setenv("FRAMEWORK2_PCES__REQUIREMENTS_SOURCES", '["jira-reqs"]')
    get_settings.cache_clear()
    monkeypatch.setattr(pces, "emit", lambda *_a: None)

    result = pces.ingest()

    assert "1 changes" in result.summary
    with session_scope(open_store()) as session:
        row = session.get(RequirementRow, "SHOP-7")
    assert row is not None and (row.source, row.source_name, row.project) == ("jira:SHOP-7", "jira-reqs", "jira:SHOP")


def test_a_refused_message_is_retried_with_back_off_until_sent_or_expired(
    repo: Path, monkeypatch: pytest.MonkeyPatch, http_server
) -> None:  # type: ignore[no-untyped-def]
    import time
    from datetime import UTC, datetime, timedelta

    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    import framework2.flows.context as pces
    from framework2.store.models import StakeholderMessage
    from tests.http_fixtures import Reply

    http_server.route("/ana", *[Reply(503)] * 6, Reply(200), method="POST")
    CustomWebhookNotificationBlock(
        name="ana", url=http_server.url_for("/ana"), method="POST", json_data={"text": "{{subject}}: {{body}}"}
    ).save("ana-hook", overwrite=True)
    monkeypatch.setenv(
        "FRAMEWORK2_PCES__STAKEHOLDERS", '{"ana": {"mode": "immediate", "channel": "custom-webhook/ana-hook"}}'
    )
    monkeypatch.setenv("FRAMEWORK2_PCES__MESSAGE_RETRY", "2m")
    get_settings.cache_clear()
    _ingest_linked(repo, monkeypatch, 1)
    pces.change_impact("REQ-1")  # first round: three tries, refused

    def message() -> StakeholderMessage:
        with session_scope(open_store()) as session:
            return session.scalars(select(StakeholderMessage).where(StakeholderMessage.recipient == "ana")).one()

    def wind_clock(minutes: float) -> None:  # as if the wait had passed
        with session_scope(open_store()) as session:
            row = session.scalars(select(StakeholderMessage).where(StakeholderMessage.recipient == "ana")).one()
            row.next_attempt_at = row.next_attempt_at - timedelta(minutes=minutes)

    wait = message().next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(minutes=1.9) < wait <= timedelta(minutes=2)
    assert pces.message_retry() == {"sent": 0, "failed": 0, "expired": 0}  # not due yet: not tried
    assert len(http_server.requests_to("/ana")) == 3

    wind_clock(2)
    assert pces.message_retry() == {"sent": 0, "failed": 1, "expired": 0}  # second round refused too
    second = message()
    wait = second.next_attempt_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert second.failed_rounds == 2 and timedelta(minutes=3.9) < wait <= timedelta(minutes=4)  # doubled
    outbox = Artifact.get("pces-outbox")
    assert outbox is not None and "ana" in outbox.data and "503" in outbox.data  # the retry is visible

    wind_clock(4)
    assert pces.message_retry() == {"sent": 1, "failed": 0, "expired": 0}
    assert message().status == "sent" and len(http_server.requests_to("/ana")) == 7

    # A message nobody could deliver for longer than messageExpiry is given up on, with its last error kept.
    monkeypatch.setenv("FRAMEWORK2_PCES__MESSAGE_EXPIRY", "1s")
    get_settings.cache_clear()
    http_server.route("/ana", *[Reply(503)] * 3, method="POST")
    _ingest_linked(repo, monkeypatch, 2)
    pces.change_impact("REQ-1")
    time.sleep(1.2)
    assert pces.message_retry()["expired"] == 1
    with session_scope(open_store()) as session:
        [gone] = session.scalars(select(StakeholderMessage).where(StakeholderMessage.status == "expired")).all()
    assert "503" in gone.last_error


def _shop_with_lenient_policy(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The sample projects in the store, and a policy that accepts every change on its own; the store."""
    from framework2.sample.world import seed_projects

    engine = open_store()
    seed_projects(engine)
    monkeypatch.setenv("FRAMEWORK2_PCES__IMPACT_POLICY", json.dumps(LENIENT))
    get_settings.cache_clear()
    return engine


def test_a_decided_change_stays_decided_and_keeps_its_tasks_when_assessed_again(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.context as pces
    from framework2.store.models import ChangeImpactRow, PmTask

    engine = _shop_with_lenient_policy(monkeypatch)
    _ingest_linked(repo, monkeypatch, 2)
    _ingest_linked(repo, monkeypatch, 4)
    emitted: list[str] = []
    monkeypatch.setattr(pces, "emit", lambda _s, event, _p: emitted.append(event))
    assert pces.change_impact("REQ-1")["status"] == "accepted"
    with session_scope(engine) as session:
        added = session.scalars(select(ChangeImpactRow)).one().report["added_tasks"]
        task = session.get(PmTask, added[0])
        task.status, task.assignee = "in_progress", "bob"  # work on the new scope has begun

    again = pces.change_impact("REQ-1")  # a replayed event, or a person re-running it

    assert again["status"] == "accepted" and again["informed"] == 0
    assert emitted.count("scope.changed") == 1  # the scope entered the plan once
    with session_scope(engine) as session:
        task = session.get(PmTask, added[0])
        assert (task.status, task.assignee) == ("in_progress", "bob")  # progress is kept

    # The first version is replaced: assessed for the record, nothing asked, nothing added.
    first = pces.change_impact("REQ-1", version=1)
    assert first["status"] == "superseded" and emitted.count("scope.changed") == 1


def test_a_re_cased_criterion_keeps_its_task_and_removing_it_retires_the_task(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.context as pces

    engine = _shop_with_lenient_policy(monkeypatch)
    _ingest_linked(repo, monkeypatch, 2)
    _ingest_linked(repo, monkeypatch, 3)  # adds "criterion 2"
    pces.change_impact("REQ-1")
    key = criterion_key("REQ-1", "criterion 2")
    assert key == criterion_key("REQ-1", "  Criterion   2 ")  # the normal form criteria are compared in
    assert key in {t.key for t in load_tasks(engine)}

    _ingest_linked(repo, monkeypatch, 2)  # "criterion 2" removed
    pces.change_impact("REQ-1")

    assert key not in {t.key for t in load_tasks(engine)}


def test_a_requirement_naming_an_unknown_project_adds_no_tasks_and_no_project(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import framework2.flows.context as pces
    from framework2.store.planning import load_projects

    engine = _shop_with_lenient_policy(monkeypatch)
    _ingest_linked(repo, monkeypatch, 2)
    text = (repo / "checkout.md").read_text().replace("project: sample:shop", "project: sample:shpo")
    (repo / "checkout.md").write_text(text + "- [ ] criterion 9\n")
    git("commit", "--quiet", "-am", "misspelt project", cwd=repo)
    pces.ingest()

    pces.change_impact("REQ-1")

    assert "sample:shpo" not in {p.key for p in load_projects(engine)}
    assert not [t for t in load_tasks(engine) if t.key.startswith("pces:")]
