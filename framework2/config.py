"""Typed settings for every system, read from ``framework2.toml`` and ``FRAMEWORK2_*`` environment variables.

Keys follow the seed's names (``ppis.marketAnalysisInterval``) and also accept snake_case
(``ppis.market_analysis_interval``). Durations need a unit ("30s", "15m", "1h", "30000ms"): a bare number
is refused because the seed mixed milliseconds and seconds. Connection details and credentials are not
settings: they live in Prefect blocks, and settings only name the block.

Precedence, highest first: environment (``FRAMEWORK2_PPIS__MARKET_ANALYSIS_INTERVAL=2h``), the TOML file
(``FRAMEWORK2_CONFIG`` or ``./framework2.toml``), the defaults below.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from framework2.errors import ConfigError
from framework2.sections import Section

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(value: Any) -> timedelta:
    """Parse "30s", "15m", "1h", "2d" or "30000ms" into a timedelta; refuse unit-less numbers."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"duration {value!r} has no unit; write e.g. '30s', '15m', '1h' or '{value}ms'")
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"duration {value!r} is not understood; write a number and a unit: ms, s, m, h or d")
    amount, unit = match.groups()
    return timedelta(seconds=float(amount) * _UNITS[unit])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class StoreSettings(Section):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL of the store; default is store.db in `home` (./.framework2 of the directory the "
        "command runs in). "
        "Put URLs with passwords in a StoreDatabase block instead and name it in `block`.",
    )
    block: str | None = Field(None, description="Name of a `store-database` block holding the URL as a secret.")
    quarantine_rows_per_source: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Rejected rows kept one by one per feed or file per run; the rest are counted in one summary row.",
    )


class NotificationSettings(Section):
    block: str | None = Field(
        None,
        description="Notification block used by automations, as '<block-type-slug>/<name>', "
        "e.g. 'slack-webhook/ops' or 'custom-webhook/ops'.",
    )


class HealthWeights(Section):
    success: float = Field(0.4, ge=0, description="Weight of the recent run success rate.")
    freshness: float = Field(0.3, ge=0, description="Weight of the age of the last good run against its schedule.")
    quality: float = Field(0.3, ge=0, description="Weight of the system's own quality signal.")


class CoordinationSettings(Section):
    health_check_interval: Duration = Field(timedelta(seconds=30), description="How often PSO health is checked.")
    health_weights: HealthWeights = HealthWeights()
    success_window: int = Field(20, ge=1, description="How many recent runs the success rate is computed over.")
    execution: Literal["subflow", "deployment"] = Field(
        "subflow", description="Run systems as subflows in-process, or start their deployments (other workers)."
    )
    # Seed keys accepted for compatibility; PSO always contains a failing system and balances by dependency.
    load_balancing: Literal["intelligent", "round-robin"] = "intelligent"
    failover_strategy: Literal["automatic", "manual"] = "automatic"
    max_parallel_systems: int = Field(4, ge=1, description="Independent systems run at most this many at once.")
    unresponsive_after: Duration = Field(
        timedelta(minutes=10),
        description="A flow run silent this long (no heartbeat, which Prefect sends every "
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY, 180 s by default) is marked Crashed: its worker died.",
    )

    @field_validator("unresponsive_after")
    @classmethod
    def _longer_than_heartbeats(cls, value: timedelta) -> timedelta:
        if value < timedelta(minutes=1):
            raise ValueError("must be at least 1 minute, and longer than a few heartbeat intervals")
        return value


class PricingGuardrails(Section):
    """Limits every recommended price must respect; the first to bind is named in the explanation."""

    min_markup: float = Field(0.05, ge=0, description="Price >= cost x (1 + min_markup). Hard floor, always wins.")
    max_markup: float = Field(3.0, gt=0, description="Price <= cost x (1 + max_markup).")
    max_change_pct: float = Field(0.10, gt=0, le=1, description="Largest move from the current price per run.")
    competitor_reference: Literal["min", "avg", "max"] = Field(
        "avg", description="Which in-stock competitor price the band is measured against."
    )
    competitor_band_low: float | None = Field(0.85, gt=0, description="Price >= reference x low; null disables.")
    competitor_band_high: float | None = Field(1.20, gt=0, description="Price <= reference x high; null disables.")
    price_ending: float | None = Field(
        0.99, ge=0, lt=1, description="Round to this ending (0.99 -> 12.99) when it stays inside the limits."
    )
    approval_change_pct: float = Field(
        0.08, gt=0, le=1, description="A change larger than this waits for approval instead of being applied."
    )
    missing_data_rule: Literal["hold", "cost_plus"] = Field(
        "hold", description="Without a usable elasticity: keep the current price, or cost x (1 + cost_plus_markup)."
    )
    cost_plus_markup: float = Field(0.30, ge=0)
    observed_range_margin: float | None = Field(
        0.05,
        ge=0,
        description=(
            "Keep prices within the range sales were seen at, widened by this share (0.05: 5 % beyond the lowest "
            "and highest); the demand curve is a guess beyond it. null disables."
        ),
    )
    min_confidence: float = Field(
        0.8,
        ge=0,
        lt=1,
        description=(
            "Move a price only when the odds that the move raises profit (over the elasticity's uncertainty) are at "
            "least this; below, the price holds and says why. 0 (with maxLosingShare 1) moves on the point estimate "
            "alone."
        ),
    )
    max_losing_share: float = Field(
        0.04,
        gt=0,
        le=1,
        description=(
            "Of the moves a run makes for profit, the share that may be expected to lower it (the mean of 1 - odds "
            "over them). Where more would, the least sure moves hold, lowest odds first, until the rest are under "
            "it. 1 leaves minConfidence alone."
        ),
    )
    move_curve: Literal["line", "constant"] = Field(
        "line",
        description=(
            "The demand curve moves are sized and judged on. 'line': the straight line through today's price with "
            "the fitted elasticity there, never more hopeful than constant elasticity, so moves stay safe where "
            "demand bends. 'constant': constant elasticity, bolder moves (more profit when demand really has a "
            "constant elasticity, more moves that lose when it bends)."
        ),
    )

    @model_validator(mode="after")
    def _bands_ordered(self) -> PricingGuardrails:
        if self.max_markup <= self.min_markup:
            raise ValueError(f"max_markup ({self.max_markup}) must exceed min_markup ({self.min_markup})")
        low, high = self.competitor_band_low, self.competitor_band_high
        if low is not None and high is not None and high <= low:
            raise ValueError(f"competitor_band_high ({high}) must exceed competitor_band_low ({low})")
        return self


def _overrides_model() -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (field.annotation | None, Field(None, description=field.description))
        for name, field in PricingGuardrails.model_fields.items()
    }
    # Based on Section: camelCase keys are accepted and unknown keys refused, as in framework2.toml.
    model = create_model("GuardrailOverrides", __base__=Section, **fields)
    model.__doc__ = (
        "Guardrails to change for one run; empty fields keep the values from framework2.toml "
        "(to disable a competitor band, set it to null there)."
    )
    return model


GuardrailOverrides = _overrides_model()


def with_overrides(base: PricingGuardrails, overrides: BaseModel | dict | None) -> PricingGuardrails:
    """``base`` with the fields set in ``overrides`` replaced (validated together, so bands stay ordered)."""
    if overrides is None:
        return base
    changes = overrides if isinstance(overrides, dict) else overrides.model_dump(exclude_none=True)
    return PricingGuardrails.model_validate(base.model_dump() | {k: v for k, v in changes.items() if v is not None})


class CompetitorRule(Section):
    """Include or exclude a competitor's offers, for all categories or one."""

    competitor: str
    category: str | None = None
    include: bool = False


class PricingSettings(Section):
    market_analysis_interval: Duration = Field(timedelta(hours=1), description="How often PPIS runs.")
    competitor_tracking: bool = Field(True, description="Collect competitor feeds; off = analyse own data only.")
    pricing_optimization: Literal["dynamic", "advisory", "off"] = Field(
        "dynamic", description="dynamic: apply approved changes; advisory: only recommend; off: no recommendations."
    )
    feeds: list[str] = Field(default_factory=list, description="Names of CompetitorFeed blocks to collect.")
    feed_host_allowlist: list[str] = Field(
        default_factory=list,
        description="If set, feeds may only point at these hosts (name or name:port). Feeds on private, loopback "
        "or link-local addresses are refused unless the feed URL names the IP address and it (or its network, "
        "10.0.0.0/8) is listed here; a host name never reaches an internal address.",
    )
    feed_max_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1024,
        description="Largest feed body in bytes, counted after decompression; a larger feed fails (not retried).",
    )
    max_snapshot_age: Duration = Field(
        timedelta(hours=6), description="A failed feed's last good snapshot is used if younger than this."
    )
    feed_retries: int = Field(2, ge=0, le=10, description="Retries of a feed that timed out or answered 5xx/429.")
    feed_retry_delay: Duration = Field(
        timedelta(seconds=10), description="First retry delay; each further retry waits twice as long."
    )
    history_days: int = Field(90, ge=7, description="Days of sales history the elasticity is estimated from.")
    offer_price_ratio_limit: float = Field(
        10.0, gt=1, description="Offers priced beyond our price x/÷ this are quarantined as absurd."
    )
    undercut_alert_pct: float = Field(
        0.15, gt=0, lt=1, description="Alert when a competitor is this much below our price."
    )
    approval_wait: Duration = Field(
        timedelta(minutes=50), description="How long a run waits for approval; then the changes stay pending."
    )
    guardrails: PricingGuardrails = PricingGuardrails()
    competitor_rules: list[CompetitorRule] = Field(default_factory=list)


class ProjectOpsSettings(Section):
    project_threshold: int = Field(10, ge=1, description="Projects tracked before the portfolio view paginates.")
    prediction_accuracy: float = Field(95, ge=0, le=100, description="Target calibration (%) of slip predictions.")
    resource_optimization: bool = True
    health_weights: dict[str, float] | None = Field(
        None, description="Weights of the health components (framework2/tasks/portfolio/health.py); unset: defaults."
    )
    project_apps: dict[str, list[str]] = Field(
        default_factory=dict, description="Project key -> PLOS app names whose releases count toward its health."
    )
    slip_days: int = Field(10, ge=1, le=365, description="A project 'slips' when it finishes this many days late.")
    allocation_weeks: int = Field(6, ge=1, le=26, description="Weeks the resource allocation plans ahead.")

    @field_validator("health_weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        from framework2.tasks.portfolio.health import resolve_weights

        if value is not None:
            resolve_weights(value)
        return value


class LaunchApp(Section):
    """An app PLOS watches (release status in every PLOS system run)."""

    app: str = Field(..., min_length=1)
    namespace: str = "default"
    image: str | None = Field(None, description="Image the plan shows when no cluster is configured.")


class LaunchSettings(Section):
    deployment_strategy: Literal["blue-green"] = "blue-green"
    rollback_threshold: float = Field(
        0.1, ge=0, le=1, description="Error-rate bound after promotion; above it the release rolls back."
    )
    auto_scaling: bool = Field(True, description="Create/retarget the HPA for the new colour after promotion.")
    cluster_block: str = Field("plos", description="Name of the kubernetes-cluster block; missing: plans only.")
    prometheus_url: str | None = Field(None, description="Prometheus base URL for release analysis.")
    success_threshold: float = Field(
        0.7, ge=0, le=1, description="Below this predicted launch success a release waits for approval."
    )
    apps: list[LaunchApp] = Field(default_factory=list, description="Apps whose release status PLOS reports.")


class ContextSettings(Section):
    context_evolution_rate: Literal["adaptive", "fixed"] = "adaptive"
    stakeholder_notifications: bool = True
    change_impact_analysis: bool = True
    requirements_sources: list[str] = Field(
        default_factory=list, description="Names of requirements-source blocks PCES reads on every ingest."
    )
    components: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Components requirements link to: {name, owner, services} (services = PLOS apps they ship in).",
    )
    impact_policy: dict[str, Any] = Field(
        default_factory=dict, description="Thresholds of the change-impact policy (framework2/tasks/context/impact.py)."
    )
    approval_wait: Duration = Field(
        timedelta(hours=4), description="How long a change waits for approval in the UI; then it stays pending."
    )

    message_retry: Duration = Field(
        timedelta(minutes=5),
        description="First wait before a message a channel refused is tried again; doubled each round, at most 1h.",
    )
    message_expiry: Duration = Field(
        timedelta(days=3), description="A message still undelivered this long after it was queued is given up on."
    )
    stakeholders: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per handle: {mode = 'immediate' | 'digest', channel = 'custom-webhook/name'}; others: digest.",
    )

    @field_validator("message_retry", "message_expiry")
    @classmethod
    def _positive_wait(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return value

    @model_validator(mode="after")
    def _valid_policy_and_components(self) -> ContextSettings:
        # The tables are checked (and their keys put in snake_case) by the models that use them, which live
        # with the code; kept as plain dicts here so reading settings does not import the impact analysis.
        from framework2.tasks.context.impact import Component, ImpactPolicy
        from framework2.tasks.context.stakeholders import Preference

        def checked(where: str, model: type[BaseModel], data: Any, **extra: Any) -> dict[str, Any]:
            if not isinstance(data, dict):
                raise ValueError(f"{where} must be a table of keys, got {data!r}")
            try:
                return model(**data, **extra).model_dump(exclude=set(extra))
            except ValidationError as exc:
                problems = "; ".join(
                    (f"{'.'.join(str(p) for p in e['loc'])}: " if e["loc"] else "")
                    + e["msg"].removeprefix("Value error, ")
                    for e in exc.errors(include_url=False)
                )
                raise ValueError(f"{where}: {problems}") from None

        self.impact_policy = checked("impactPolicy", ImpactPolicy, self.impact_policy)
        self.components = [checked(f"components[{i}]", Component, c) for i, c in enumerate(self.components)]
        for handle, preference in self.stakeholders.items():
            if isinstance(preference, dict) and "handle" in preference:
                raise ValueError(
                    f"stakeholders.{handle}: leave 'handle' out: the table's name ({handle}) is the handle"
                )
        self.stakeholders = {
            handle: checked(f"stakeholders.{handle}", Preference, p, handle=handle)
            for handle, p in self.stakeholders.items()
        }
        return self


class JourneySettings(Section):
    name: str = Field(min_length=1, description="What the funnel is called in reports (e.g. checkout).")
    steps: list[str] = Field(min_length=2, description="Event names of the funnel's steps, in order.")
    window: Duration = Field(timedelta(days=7), description="Time from the first step within which the rest count.")
    segment_by: str | None = Field("segment", description="Events column the funnel is split by (None: no split).")


class PerformanceTarget(Section):
    url: str = Field(min_length=1, description="URL probed with repeated requests.")
    app: str | None = Field(None, description="PLOS app serving it: its autoscaler is raised when it is slow.")
    namespace: str = "default"


class ExperienceSettings(Section):
    ab_testing_enabled: bool = True
    accessibility_checks: bool = True
    performance_monitoring: bool = True
    experiments_file: Path | None = Field(
        None, description="YAML or TOML file of experiments (key, variations, expected_split, metrics, ...)."
    )
    exposures: str | None = Field(
        None, description="Exposures: a CSV/Parquet file, or 'table:NAME' in experimentsDatabase (or the store)."
    )
    events: str | None = Field(
        None, description="Metric events (user, event, timestamp, value): a file or 'table:NAME', as exposures."
    )
    experiments_database: str | None = Field(
        None, description="SQLAlchemy URL of the database holding 'table:' exposures/events (default: the store)."
    )
    journey_events: str | None = Field(
        None, description="Events for the journeys (user, event, timestamp[, segment, session]); default: events."
    )
    journeys: list[JourneySettings] = Field(default_factory=list, description="Funnels puxt-journeys analyses.")
    accessibility_urls: list[str] = Field(default_factory=list, description="Pages puxt-accessibility scans.")
    wcag_level: Literal["A", "AA"] = Field("AA", description="WCAG conformance level the scans check.")
    performance_targets: list[PerformanceTarget] = Field(
        default_factory=list, description="URLs puxt-performance probes, each with the PLOS app that serves it."
    )
    probe_samples: int = Field(50, ge=5, le=10_000, description="Requests per synthetic probe.")
    rum_sources: list[str] = Field(
        default_factory=list, description="CSV/Parquet files of real-user measurements (page, release, metric, value)."
    )
    baseline_release: str | None = Field(None, description="Release compared against (default: the previous one).")


class ProjectManagementSettings(Section):
    task_automation: bool = True
    predictive_timelines: bool = True
    stakeholder_communication: Literal["auto", "manual"] = "auto"
    github_sources: list[str] = Field(default_factory=list, description="Names of github-source blocks to read.")
    jira_sources: list[str] = Field(default_factory=list, description="Names of jira-source blocks to read.")
    tasks_csv: Path | None = Field(None, description="A CSV of tasks to read on every sync.")
    people_csv: Path | None = Field(None, description="A CSV of people (skills, weekly capacity, time off).")
    priority_method: Literal["wsjf", "rice"] = Field("wsjf", description="How the backlog is scored.")
    assignment_horizon_days: int = Field(10, ge=1, le=90, description="Working days an assignment plans ahead.")
    forecast_trials: int = Field(10_000, ge=100, le=1_000_000, description="Monte Carlo trials per forecast.")
    min_history_items: int = Field(30, ge=5, description="Completed tasks needed before history drives forecasts.")
    backtest_every_days: int = Field(14, ge=1, le=90, description="Spacing of the past moments the backtest replays.")
    backtest_refresh_days: int = Field(
        7, ge=0, le=90, description="Days before the system run re-runs the backtest (0: every run)."
    )


class WebhookSettings(Section):
    secret_block: str = Field(
        "framework2-webhook", description="Prefect Secret block holding the shared HMAC secret of POST /webhook/..."
    )
    github_secret_block: str | None = Field(None, description="Secret block of the GitHub webhook's secret.")
    jira_secret_block: str | None = Field(None, description="Secret block of the Jira webhook's secret.")
    tolerance: Duration = Field(timedelta(minutes=5), description="How old a signed timestamp may be (replays).")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger bodies are refused with 413.")
    rate_limit_per_minute: int = Field(600, ge=1, description="Requests per minute per source before 429.")
    relay_interval: Duration = Field(timedelta(seconds=2), description="How often the relay hands the outbox on.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For names the real client (rate limits use it). "
        "Empty: the header is ignored, so a caller cannot pick the address it is counted under.",
    )


class ApiSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8200, ge=1, le=65535, description="Port of the webhook, dashboard, health and metrics service.")


class AlertSettings(Section):
    health_score_below: float = Field(95, ge=0, le=100, description="Notify when a system's health is below this.")
    response_time_above_ms: float = Field(100, gt=0, description="Scale up when response time exceeds this.")
    deployment_success_rate_below: float = Field(99, ge=0, le=100, description="Roll back below this success rate.")


class ScaleSettings(Section):
    runner: Literal["in-process", "dask"] = Field(
        "in-process", description="Where the heavy flows' partitions run: in the flow run's process, or on Dask."
    )
    dask_address: str | None = Field(None, description="Dask scheduler, e.g. tcp://dask-scheduler:8786.")
    partitions: int = Field(
        0, ge=0, le=1024, description="Pieces to cut the work into; 0: 1 in process, twice the Dask threads."
    )


def _config_path() -> Path:
    return Path(os.environ.get("FRAMEWORK2_CONFIG", "framework2.toml"))


class Settings(BaseSettings):
    """All of Framework Set 2's settings."""

    model_config = SettingsConfigDict(
        env_prefix="FRAMEWORK2_",
        env_nested_delimiter="__",
        # No alias generator here: an aliased top-level field would be read from the unprefixed
        # environment (``HOME``), not from ``FRAMEWORK2_HOME``.
        extra="forbid",
    )

    home: Path = Field(Path(".framework2"), description="Where the default SQLite store and demo data live.")
    tier: Literal["professional"] = "professional"
    store: StoreSettings = StoreSettings()
    notifications: NotificationSettings = NotificationSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    alerts: AlertSettings = AlertSettings()
    webhooks: WebhookSettings = WebhookSettings()
    api: ApiSettings = ApiSettings()
    scale: ScaleSettings = ScaleSettings()
    ppis: PricingSettings = PricingSettings()
    ppos: ProjectOpsSettings = ProjectOpsSettings()
    plos: LaunchSettings = LaunchSettings()
    pces: ContextSettings = Field(default_factory=ContextSettings)  # its validator imports the impact models
    puxt: ExperienceSettings = ExperienceSettings()
    ppms: ProjectManagementSettings = ProjectManagementSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=_config_path()))

    @property
    def store_url(self) -> str:
        """The store URL from settings (a block, when named, is resolved by ``store.engine``)."""
        return self.store.url or f"sqlite:///{(self.home / 'store.db').resolve()}"


def load_settings(path: Path | None = None) -> Settings:
    """Read settings, turning any problem into a ConfigError that names the key and the file."""
    if path is not None:
        os.environ["FRAMEWORK2_CONFIG"] = str(path)
    config = _config_path()
    if "FRAMEWORK2_CONFIG" in os.environ and not config.exists():
        raise ConfigError(
            f"config file {config} does not exist",
            hint="create it (see framework2.example.toml) or unset FRAMEWORK2_CONFIG to use defaults",
        )
    try:
        return Settings()
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config} is not valid TOML: {exc}", hint="fix the syntax at the line shown") from exc
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors(include_url=False))
        raise ConfigError(
            f"invalid configuration in {config} or FRAMEWORK2_* environment: {problems}",
            hint="correct the key(s) named; `framework2.example.toml` documents every key and its unit",
        ) from exc


def _problem(err: Any) -> str:
    """One validation error as 'where: what', an unknown section with the known ones."""
    where = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
        return f"unknown section {where!r}; known sections: {', '.join(sorted(Settings.model_fields))}"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings for this process, read once."""
    return load_settings()
