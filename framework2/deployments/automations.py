"""Automations as code, created or updated by ``framework2 init`` (idempotent: matched by name).

- A system flow run fails → notify through the configured notification block.
- A system's health drops below the threshold (``framework2.<system>.health.degraded``) → notify.
- A competitor undercuts us beyond ``ppis.undercutAlertPct`` (``framework2.ppis.competitor.undercut``) → notify.
- A release is rolled back (``framework2.plos.release.rolled_back``) → notify.
- A project's P85 moves past its target date (``framework2.ppms.forecast.slipped``) → notify.
- A project's health drops below the threshold (``framework2.ppos.health.degraded`` about a
  ``framework2.project.*`` resource) → notify.
- An experiment becomes decisive (``framework2.puxt.experiment.decisive``), breaches a guardrail
  (``framework2.puxt.guardrail.breached``) or shows a sample ratio mismatch
  (``framework2.puxt.experiment.srm_detected``) → notify the team with the recommendation and its reason.
- A page gains accessibility violations (``framework2.puxt.accessibility.regressed``) → notify.
- A release is slower than its baseline (``framework2.puxt.performance.regressed``) → notify.
- A release flow run fails, crashes or is cancelled → run ``plos-rollback`` for that app with the run's own
  parameters (the seed's "deployment failure → auto-rollback"). This one needs no notification block.
- A flow run stops sending heartbeats without ending (its worker or machine died) → mark it Crashed, so the
  failure notification and the auto-rollback above fire for it too. No notification block needed either.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation, ChangeFlowRunState, EventTrigger, RunDeployment, SendNotification
from prefect.blocks.core import Block
from prefect.client.schemas.objects import StateType

from framework2.config import Settings
from framework2.errors import ConfigError
from framework2.systems import SYSTEMS

FAILURE_AUTOMATION = "framework2: notify on system flow failure"
HEALTH_AUTOMATION = "framework2: notify on degraded system health"
UNDERCUT_AUTOMATION = "framework2: notify on competitor undercut"
ROLLED_BACK_AUTOMATION = "framework2: notify on release rolled back"
SLIPPED_AUTOMATION = "framework2: notify on forecast slipped"
PROJECT_HEALTH_AUTOMATION = "framework2: notify on degraded project health"
EXPERIMENT_AUTOMATION = "framework2: notify on experiment decision or guardrail breach"
ACCESSIBILITY_AUTOMATION = "framework2: notify on accessibility regression"
PERFORMANCE_AUTOMATION = "framework2: notify on performance regression"
AUTO_ROLLBACK_AUTOMATION = "framework2: roll back a failed release"
UNRESPONSIVE_AUTOMATION = "framework2: crash runs that stopped responding"
RELEASE_FLOW = "plos-blue-green-release"
ROLLBACK_DEPLOYMENT = "plos-rollback/plos-rollback"

FAILURE_BODY = (
    "Framework Set 2: flow run {{ flow_run.name }} of {{ flow.name }} failed.\n"
    "State message: {{ flow_run.state.message }}\n"
    "Flow run id: {{ flow_run.id }}"
)
UNDERCUT_BODY = (
    "Framework Set 2 pricing: {{ event.payload.count }} SKUs are undercut by a competitor by more than "
    "{{ (event.payload.threshold * 100) | round(1) }} %. See the ppis-summary artifact for the list."
)
ROLLED_BACK_BODY = (
    "Framework Set 2 release: {{ event.payload.app }} {{ event.payload.image }} was rolled back; traffic is on "
    "{{ event.payload.colour }}.\nWhy: {{ event.payload.reason }}\nSee the plos-release-{{ event.payload.app }} "
    "artifact for the measurements and thresholds."
)
SLIPPED_BODY = (
    "Framework Set 2 forecast: {{ event.payload.name }} now finishes by {{ event.payload.p85 }} with 85 % "
    "confidence, after its target {{ event.payload.target }} (was {{ event.payload.previous_p85 }}). "
    "See the ppms-forecast artifact for the critical path and the risk factors."
)
PROJECT_HEALTH_BODY = (
    "Framework Set 2 portfolio: {{ event.resource.get('prefect.resource.name') }} health fell to "
    "{{ event.payload.score | round(0) }} (threshold {{ event.payload.threshold }}; "
    "was {{ event.payload.previous }}).\n"
    "Top reason: {{ event.payload.top_reason }}\nSee the ppos-portfolio artifact."
)
EXPERIMENT_BODY = (
    "Framework Set 2 experiment {{ event.payload.experiment }}: {{ event.payload.decision }}.\n"
    "Why: {{ event.payload.reason }}\n"
    "{% if event.payload.guardrails %}Guardrails: {{ event.payload.guardrails | join('; ') }}\n{% endif %}"
    "See the puxt-experiment-{{ event.payload.experiment }} artifact for the numbers and the lift chart."
)
ACCESSIBILITY_BODY = (
    "Framework Set 2 accessibility: {{ event.payload.count }} new violations at WCAG {{ event.payload.level }} "
    "on {{ event.payload.pages | join(', ') }}.\nSee the puxt-accessibility artifact for the rules and how to fix them."
)
PERFORMANCE_BODY = (
    "Framework Set 2 performance: release {{ event.payload.release }} is slower than {{ event.payload.baseline }} "
    "on {{ event.payload.count }} page metrics.\n"
    "{% for r in event.payload.regressions %}- {{ r.page }} {{ r.metric }}: {{ r.explanation }}\n{% endfor %}"
    "See the puxt-performance artifact."
)
HEALTH_BODY = (
    "Framework Set 2: {{ event.resource.get('prefect.resource.name') }} health is {{ event.payload.score }} "
    "(threshold {{ event.payload.threshold }}).\nReasons: {{ event.payload.reasons | join('; ') }}"
)


def monitored_flow_names() -> list[str]:
    """Flow names whose failures notify: every registered system plus the orchestrator."""
    return sorted({spec.flow_name for spec in SYSTEMS.values()} | {"pso-orchestrator"})


def notification_block_id(settings: Settings):  # type: ignore[no-untyped-def]
    """The id of the configured notification block, or None when none is configured."""
    ref = settings.notifications.block
    if not ref:
        return None
    if "/" not in ref:
        raise ConfigError(
            f"notifications.block {ref!r} must be '<block-type-slug>/<name>'", hint="e.g. 'slack-webhook/ops'"
        )
    try:
        block = Block.load(ref)
    except ValueError as exc:
        raise ConfigError(
            f"notification block {ref!r} not found: {exc}",
            hint="create it in the Prefect UI (Blocks → + → Slack Webhook / Custom Webhook / Email) or fix the name",
        ) from exc
    return block._block_document_id


def _notify(block_id, name: str, description: str, subject: str, body: str, **trigger: object) -> Automation:  # type: ignore[no-untyped-def]
    """An automation that sends one notification each time a matching event arrives."""
    return Automation(
        name=name,
        description=description,
        trigger=EventTrigger(posture="Reactive", threshold=1, within=timedelta(0), **trigger),
        actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)],
    )


def desired_automations(block_id) -> list[Automation]:  # type: ignore[no-untyped-def]
    """The automations Framework Set 2 wants, pointing at the notification block ``block_id``."""
    return [
        _notify(
            block_id,
            FAILURE_AUTOMATION,
            "A Framework Set 2 system flow run failed.",
            "Framework Set 2: flow run failed",
            FAILURE_BODY,
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": monitored_flow_names()},
        ),
        _notify(
            block_id,
            HEALTH_AUTOMATION,
            "A system's health score dropped below the configured threshold.",
            "Framework Set 2: health degraded",
            HEALTH_BODY,
            expect={f"framework2.{code}.health.degraded" for code in SYSTEMS},
            match={"prefect.resource.id": "framework2.system.*"},
        ),
        _notify(
            block_id,
            UNDERCUT_AUTOMATION,
            "A competitor's in-stock price is far below ours.",
            "Framework Set 2: competitor undercut",
            UNDERCUT_BODY,
            expect={"framework2.ppis.competitor.undercut"},
            match={"prefect.resource.id": "framework2.system.ppis"},
        ),
        _notify(
            block_id,
            ROLLED_BACK_AUTOMATION,
            "A PLOS release was rolled back.",
            "Framework Set 2: release rolled back",
            ROLLED_BACK_BODY,
            expect={"framework2.plos.release.rolled_back"},
            match={"prefect.resource.id": "framework2.system.plos"},
        ),
        _notify(
            block_id,
            SLIPPED_AUTOMATION,
            "A project's P85 completion date moved past its target date.",
            "Framework Set 2: forecast slipped",
            SLIPPED_BODY,
            expect={"framework2.ppms.forecast.slipped"},
            match={"prefect.resource.id": "framework2.system.ppms"},
        ),
        _notify(
            block_id,
            PROJECT_HEALTH_AUTOMATION,
            "A project's health score (PPOS) dropped below the configured threshold.",
            "Framework Set 2: project health degraded",
            PROJECT_HEALTH_BODY,
            expect={"framework2.ppos.health.degraded"},
            match={"prefect.resource.id": "framework2.project.*"},
        ),
        _notify(
            block_id,
            EXPERIMENT_AUTOMATION,
            "A PUXT experiment became decisive (ship or stop), breached a guardrail or lost its configured split.",
            "Framework Set 2: experiment decision",
            EXPERIMENT_BODY,
            expect={
                "framework2.puxt.experiment.decisive",
                "framework2.puxt.guardrail.breached",
                "framework2.puxt.experiment.srm_detected",
            },
            match={"prefect.resource.id": "framework2.system.puxt"},
        ),
        _notify(
            block_id,
            ACCESSIBILITY_AUTOMATION,
            "PUXT found accessibility violations that the last scan did not have.",
            "Framework Set 2: accessibility regression",
            ACCESSIBILITY_BODY,
            expect={"framework2.puxt.accessibility.regressed"},
            match={"prefect.resource.id": "framework2.system.puxt"},
        ),
        _notify(
            block_id,
            PERFORMANCE_AUTOMATION,
            "PUXT found a release slower than its baseline for real users.",
            "Framework Set 2: performance regression",
            PERFORMANCE_BODY,
            expect={"framework2.puxt.performance.regressed"},
            match={"prefect.resource.id": "framework2.system.puxt"},
        ),
    ]


def auto_rollback_automation(rollback_deployment_id) -> Automation:  # type: ignore[no-untyped-def]
    """A failed, crashed or cancelled release run → ``plos-rollback`` with that run's parameters.

    The rollback is idempotent: a release that already rolled itself back is reported as such.
    """
    return Automation(
        name=AUTO_ROLLBACK_AUTOMATION,
        description="A PLOS release run ended without finishing: roll the app back (plos-rollback).",
        trigger=EventTrigger(
            posture="Reactive",
            threshold=1,
            within=timedelta(0),
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": RELEASE_FLOW},
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=rollback_deployment_id,
                parameters={
                    "request": "{{ flow_run.parameters.request }}",
                    # A plain string template: the single-expression form would go through tojson, which
                    # cannot encode the run's UUID.
                    "release_run_id": {"__prefect_kind": "jinja", "template": "{{ flow_run.id }}"},
                    "reason": "release run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
                    "{{ flow_run.state.message }}",
                },
            )
        ],
    )


def unresponsive_run_automation(silent_for: timedelta) -> Automation:
    """A flow run that sent a heartbeat and then nothing (no heartbeat, no final state) for ``silent_for`` →
    Crashed. Prefect 3.8 alone leaves such a run Running for good; a paused run keeps its heartbeats."""
    return Automation(
        name=UNRESPONSIVE_AUTOMATION,
        description=f"A flow run without a heartbeat for {silent_for} lost its process: mark it Crashed.",
        trigger=EventTrigger(
            posture="Proactive",
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match={"prefect.resource.id": "prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            threshold=1,
            within=silent_for,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"no heartbeat for {silent_for}: the process running it (worker, pod or machine) stopped",
            )
        ],
    )


def _deployment_id(name: str):  # type: ignore[no-untyped-def]
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return client.read_deployment_by_name(name).id
        except ObjectNotFound:
            return None


def _upsert(wanted: Automation) -> str:
    try:
        existing = Automation.read(name=wanted.name)
    except ValueError:
        wanted.create()
        return f"created automation {wanted.name!r}"
    existing.description = wanted.description
    existing.trigger = wanted.trigger
    existing.actions = wanted.actions
    existing.enabled = True
    existing.update()
    return f"updated automation {wanted.name!r}"


def ensure_automations(settings: Settings) -> list[str]:
    """Create the automations, or bring existing ones (same name) up to date. Returns what was done."""
    done = []
    rollback_id = _deployment_id(ROLLBACK_DEPLOYMENT)
    if rollback_id is None:
        done.append(f"auto-rollback skipped: deployment {ROLLBACK_DEPLOYMENT!r} not found (run framework2 init)")
    else:
        done.append(_upsert(auto_rollback_automation(rollback_id)))
    done.append(_upsert(unresponsive_run_automation(settings.coordination.unresponsive_after)))
    block_id = notification_block_id(settings)
    if block_id is None:
        return [*done, "notifications skipped: set [notifications] block in framework2.toml to receive alerts"]
    return done + [_upsert(wanted) for wanted in desired_automations(block_id)]
