"""What the webhook endpoint accepts: the events each system takes, their data models, the request and response
models (OpenAPI), and parsing and validation that refuse anything not finite, not storable or too deep."""

from __future__ import annotations

import functools
import json
import logging
import math
import operator
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

from framework2.errors import Framework2Error
from framework2.events import event_name
from framework2.systems import SYSTEMS

logger = logging.getLogger("framework2.webhooks")

SOURCE_FRAMEWORK2 = "framework-set-2"
SOURCE_GITHUB = "github"
SOURCE_JIRA = "jira"

TIMESTAMP_HEADER = "X-Framework2-Timestamp"
SIGNATURE_HEADER = "X-Framework2-Signature"
DELIVERY_HEADER = "X-Framework2-Delivery"
GITHUB_EVENT_HEADER = "X-GitHub-Event"
GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GITHUB_DELIVERY_HEADER = "X-GitHub-Delivery"
JIRA_SIGNATURE_HEADER = "X-Hub-Signature"
JIRA_DELIVERY_HEADER = "X-Atlassian-Webhook-Identifier"

# Keys the relay adds to every event payload; a sender may not set them (they would be overwritten silently).
RESERVED_DATA_KEYS = ("delivery", "source", "received_at")
MAX_DEPTH = 32
DELIVERY_PATTERN = r"^[!-~]{1,200}$"  # visible ASCII, and it must fit WebhookDelivery.delivery_id
_DELIVERY_RE = re.compile(DELIVERY_PATTERN)
# Fixed namespace of the deterministic Prefect event ids: uuid5(namespace, "<source>\n<delivery id>").
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:framework2:webhook-delivery")


class WebhookError(Framework2Error):
    """A webhook the service refuses, with the HTTP status, the metrics outcome and what the sender should do."""

    def __init__(
        self,
        status: int,
        outcome: str,
        message: str,
        hint: str = "",
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.status = status
        self.outcome = outcome
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"detail": self.message, "hint": self.hint}


class ContractError(WebhookError):
    """The body is JSON but not a webhook the contract accepts (422), with every problem and the allowed values."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(
            422,
            "invalid",
            "the webhook does not match the contract {system, event, data}: "
            + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors),
            "send one of the allowed system/event pairs listed in 'allowed' (GET /webhook/framework-set-2 "
            "describes each)",
        )
        self.errors = errors

    def body(self) -> dict[str, Any]:
        return {**super().body(), "errors": self.errors, "allowed": allowed_events()}


Name = Annotated[str, Field(min_length=1, max_length=200)]


class EventData(BaseModel):
    """Base of every event's ``data``: named fields are checked, other keys travel on to the event payload.

    Strict: "2" is not a version and "true" not a boolean, exactly as the published JSON Schema says."""

    model_config = ConfigDict(extra="allow", strict=True)


class PricesChanged(EventData):
    feeds: list[Name] | None = Field(
        None, description="CompetitorFeed blocks to collect; empty: every configured feed."
    )
    reason: str | None = Field(None, max_length=500, description="Why, shown in the run's parameters.")


class TasksChanged(EventData):
    tracker: str | None = Field(None, max_length=50, description="Where the tasks live: github, jira, csv, ...")
    key: str | None = Field(None, max_length=200, description="The task's key, e.g. PAY-12 or org/repo#34.")
    action: str | None = Field(None, max_length=100, description="What happened: created, updated, closed, ...")


class ForecastRequested(EventData):
    projects: list[Name] | None = Field(None, description="Project keys to forecast; empty: every project.")


class HealthRequested(EventData):
    reason: str | None = Field(None, max_length=500, description="Why the health is wanted now.")


class RequirementChanged(EventData):
    requirement: Name = Field(description="The requirement's id, as in its file's front matter.")
    version: int | None = Field(None, ge=1, description="The new version; empty: the newest stored.")


class RequirementsUpdated(EventData):
    requirements_source: Name | None = Field(None, description="The requirements-source block that changed.")


class ReleaseDeployed(EventData):
    release: Name = Field(description="The release label the real-user measurements carry (tag or version).")
    app: Name | None = Field(None, description="The PLOS app the release belongs to.")
    environment: str | None = Field(None, max_length=100)


class ExperimentUpdated(EventData):
    experiment: Name | None = Field(None, description="The experiment whose data or definition changed.")


class ReleaseRequested(EventData):
    app: Name = Field(description="App name; its Deployments are <app>-blue and <app>-green.")
    image: str = Field(min_length=1, max_length=500, description="Image to release.")
    namespace: Name = Field("default", description="Namespace of the app.")
    cluster_block: Name = Field("plos", description="Name of the kubernetes-cluster block.")


class RollbackRequested(EventData):
    app: Name = Field(description="App to roll back.")
    namespace: Name = Field("default", description="Namespace of the app.")
    cluster_block: Name = Field("plos", description="Name of the kubernetes-cluster block.")
    reason: str = Field("rollback requested by webhook", max_length=500)


class DeploymentFailed(EventData):
    app: Name = Field(description="The app (or repository) whose deployment failed.")
    environment: str | None = Field(None, max_length=100)
    state: str | None = Field(None, max_length=50, description="The deployer's state, e.g. failure or error.")
    url: str | None = Field(None, max_length=2000, description="Where the deployer shows the failure.")


SystemCode = Literal[tuple(sorted(SYSTEMS))]  # type: ignore[valid-type]  # the registry decides


class RunRequested(EventData):
    systems: list[SystemCode] | None = Field(None, description="System codes to run; empty: all.")  # type: ignore[valid-type]
    only_due: bool = Field(False, description="Skip systems whose last good run is younger than their interval.")


@dataclass(frozen=True)
class InboundEvent:
    """One event a webhook may carry: which system, its name, what it makes happen and what its data holds."""

    system: str
    name: str
    effect: str
    deployment: str | None  # the deployment a trigger in prefect.yaml starts for it
    data: type[EventData]

    @property
    def prefect_event(self) -> str:
        return event_name(self.system, self.name)


INBOUND_EVENTS: tuple[InboundEvent, ...] = (
    InboundEvent(
        "ppis",
        "prices.changed",
        "A catalogue or competitor price changed outside the hourly schedule: re-run pricing now.",
        "ppis-hourly-pricing",
        PricesChanged,
    ),
    InboundEvent(
        "ppms",
        "tasks.changed",
        "Tasks changed in a tracker (GitHub issue or pull request, Jira issue or link): re-sync the sources.",
        "ppms-sync",
        TasksChanged,
    ),
    InboundEvent(
        "ppms",
        "forecast.requested",
        "Re-forecast completion dates (all projects, or the ones named).",
        "ppms-forecast",
        ForecastRequested,
    ),
    InboundEvent(
        "ppos",
        "health.requested",
        "Recompute project and portfolio health now instead of at the next 15-minute run.",
        "ppos-project-health",
        HealthRequested,
    ),
    InboundEvent(
        "pces",
        "requirement.changed",
        "A requirement changed: assess its impact (and, through existing triggers, re-forecast and re-score "
        "project health).",
        "pces-change-impact",
        RequirementChanged,
    ),
    InboundEvent(
        "pces",
        "requirements.updated",
        "A requirements repository or directory was updated: ingest it and record what changed.",
        "pces-ingest",
        RequirementsUpdated,
    ),
    InboundEvent(
        "puxt",
        "release.deployed",
        "A release went live: measure its performance against the baseline release.",
        "puxt-performance",
        ReleaseDeployed,
    ),
    InboundEvent(
        "puxt",
        "experiment.updated",
        "Experiment data or definitions changed: re-analyse the experiments.",
        "puxt-experiments",
        ExperimentUpdated,
    ),
    InboundEvent(
        "plos",
        "release.requested",
        "Start a blue-green release of an app with an image.",
        "plos-blue-green-release",
        ReleaseRequested,
    ),
    InboundEvent(
        "plos",
        "rollback.requested",
        "Roll an app's latest release back (e.g. from an incident tool).",
        "plos-rollback",
        RollbackRequested,
    ),
    InboundEvent(
        "plos",
        "deployment.failed",
        "A deployment outside PLOS failed (GitHub deployment_status failure/error): report the app's release state.",
        "plos-release-status",
        DeploymentFailed,
    ),
    InboundEvent(
        "pso",
        "run.requested",
        "Run the orchestrator now (all systems or the ones named).",
        "pso-orchestrator",
        RunRequested,
    ),
)

ALLOWED: dict[str, dict[str, InboundEvent]] = {}
for _spec in INBOUND_EVENTS:
    ALLOWED.setdefault(_spec.system, {})[_spec.name] = _spec
# A table entry for a system the registry does not know is a programming error: fail at import, not at runtime.
assert set(ALLOWED) <= set(SYSTEMS) | {"pso"}, f"unknown systems in INBOUND_EVENTS: {set(ALLOWED) - set(SYSTEMS)}"


def allowed_events() -> dict[str, list[str]]:
    """System code → the event names it accepts (what a 422 lists)."""
    return {system: sorted(events) for system, events in sorted(ALLOWED.items())}


class WebhookEnvelope(BaseModel):
    """The framework-set-2 webhook: an allowed system/event pair and that event's data."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(description="System code: " + ", ".join(sorted(ALLOWED)))
    event: str = Field(description="Event name allowed for the system (GET /webhook/framework-set-2 lists them).")
    data: dict[str, Any] = Field(description="The event's data; {} when it needs none.")


class WebhookAccepted(BaseModel):
    """The webhook is stored and will become exactly one Prefect event."""

    event_id: str = Field(description="Id of the Prefect event (uuid5 of source and delivery id).")
    event: str = Field(description="The Prefect event name, framework2.<system>.<event>.")
    delivery: str = Field(description="The delivery id the webhook was de-duplicated by.")
    duplicate: bool = Field(description="True when this delivery id was accepted before (nothing new stored).")


class WebhookNotice(BaseModel):
    """A provider webhook that was understood but causes no event (a ping, or an event that is not used)."""

    detail: str
    ignored: bool = True


class Problem(BaseModel):
    """Why the webhook was refused and what to do about it."""

    detail: str
    hint: str = ""


class ContractProblem(Problem):
    """A 422: every problem found and the allowed system/event pairs."""

    errors: list[dict[str, Any]] = Field(description="Each problem: loc (where), msg (what), allowed (if a choice).")
    allowed: dict[str, list[str]] = Field(description="System code → accepted event names.")


class EventDescription(BaseModel):
    system: str
    event: str
    prefect_event: str
    effect: str
    deployment: str | None
    data_schema: dict[str, Any]


def describe_events() -> list[EventDescription]:
    """The events table as data (served at GET /webhook/framework-set-2)."""
    return [
        EventDescription(
            system=spec.system,
            event=spec.name,
            prefect_event=spec.prefect_event,
            effect=spec.effect,
            deployment=spec.deployment,
            data_schema=spec.data.model_json_schema(),
        )
        for spec in INBOUND_EVENTS
    ]


def request_schemas(ref_prefix: str = "#/components/schemas/") -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The framework-set-2 request body as JSON Schema: one alternative per allowed system/event pair, so the
    documentation (and a fuzzer) knows exactly which combinations are valid. Returns (body schema, components)."""
    variants = []
    for spec in INBOUND_EVENTS:
        title = "".join(part.capitalize() for part in re.split(r"[._]", f"{spec.system}.{spec.name}")) + "Webhook"
        variants.append(
            create_model(
                title,
                __config__=ConfigDict(extra="forbid"),
                __doc__=f"{spec.prefect_event}: {spec.effect}",
                system=(Literal[spec.system], Field(description="System code.")),  # type: ignore[valid-type]
                event=(Literal[spec.name], Field(description="Event name.")),  # type: ignore[valid-type]
                data=(spec.data, Field(description=f"Data of {spec.name}.")),
            )
        )
    union: Any = functools.reduce(operator.or_, variants)
    schema = TypeAdapter(union).json_schema(ref_template=ref_prefix + "{model}")
    components: dict[str, dict[str, Any]] = schema.pop("$defs", {})
    for name, component in components.items():
        if name in {s.data.__name__ for s in INBOUND_EVENTS}:
            # The reserved keys are refused (422); say so in the schema, so valid-looking data is valid.
            component["not"] = {"anyOf": [{"required": [key]} for key in RESERVED_DATA_KEYS]}
    return schema, components


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(body: bytes) -> Any:
    """Decode the body as strict JSON (no NaN/Infinity); a 400 says where the parser stopped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookError(400, "malformed", f"the body is not UTF-8 (byte {exc.start})", "send UTF-8 JSON") from exc
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise WebhookError(
            400,
            "malformed",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (char {exc.pos})",
            "send a JSON object; check the quoting and commas near that position",
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise WebhookError(400, "malformed", f"the body is not valid JSON: {exc}", "send a plain JSON object") from exc


def _check_values(value: Any, loc: list[str | int]) -> list[dict[str, Any]]:
    """Nesting depth, NUL characters and lone surrogates: JSON allows them, but the store or Prefect's
    PostgreSQL event store cannot hold them (a refused event would block Prefect's persister)."""
    problems: list[dict[str, Any]] = []
    stack: list[tuple[Any, list[str | int]]] = [(value, loc)]
    while stack and len(problems) < 10:
        item, where = stack.pop()
        if len(where) - len(loc) > MAX_DEPTH:
            problems.append({"loc": where, "msg": f"nested deeper than {MAX_DEPTH} levels"})
            continue
        if isinstance(item, dict):
            for key, child in item.items():
                if not _storable(key):
                    problems.append({"loc": where, "msg": "a key contains NUL or invalid Unicode"})
                stack.append((child, [*where, key]))
        elif isinstance(item, list):
            stack.extend((child, [*where, i]) for i, child in enumerate(item))
        elif isinstance(item, str) and not _storable(item):
            problems.append({"loc": where, "msg": "text contains NUL (\\u0000) or an unpaired surrogate escape"})
    return problems


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_data(spec: InboundEvent, data: Any, loc: list[str | int]) -> dict[str, Any]:
    """Check ``data`` against the event's model; return it normalised (defaults filled in, JSON-safe)."""
    if not isinstance(data, dict):
        raise ContractError([{"loc": loc, "msg": "data must be a JSON object ({} when the event needs none)"}])
    problems = [
        {"loc": [*loc, key], "msg": f"'{key}' is reserved: the service sets it on the event payload"}
        for key in RESERVED_DATA_KEYS
        if key in data
    ]
    problems += _check_values(data, loc)
    if problems:
        raise ContractError(problems)
    try:
        model = spec.data.model_validate(data)
    except ValidationError as exc:
        raise ContractError(
            [
                {"loc": [*loc, *err["loc"]], "msg": err["msg"]}
                for err in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
        ) from exc
    return model.model_dump(mode="json")


def validate_envelope(document: Any) -> tuple[InboundEvent, dict[str, Any]]:
    """The event spec and normalised data of a framework-set-2 webhook, or a ContractError listing every problem."""
    if not isinstance(document, dict):
        raise ContractError([{"loc": ["body"], "msg": "the body must be a JSON object {system, event, data}"}])
    errors: list[dict[str, Any]] = [
        {"loc": ["body", key], "msg": "unexpected field; the contract has only system, event and data"}
        for key in document
        if key not in {"system", "event", "data"}
    ]
    errors += [
        {"loc": ["body", key], "msg": "field required"} for key in ("system", "event", "data") if key not in document
    ]
    system, event = document.get("system"), document.get("event")
    spec: InboundEvent | None = None
    if "system" in document and not (isinstance(system, str) and system in ALLOWED):
        errors.append({"loc": ["body", "system"], "msg": f"unknown system {system!r}", "allowed": sorted(ALLOWED)})
    elif isinstance(system, str) and "event" in document:
        if isinstance(event, str) and event in ALLOWED[system]:
            spec = ALLOWED[system][event]
        else:
            errors.append(
                {
                    "loc": ["body", "event"],
                    "msg": f"event {event!r} is not accepted for system {system!r}",
                    "allowed": sorted(ALLOWED[system]),
                }
            )
    if errors:
        raise ContractError(errors)
    assert spec is not None
    return spec, validate_data(spec, document["data"], ["body", "data"])
