"""PLOS release analysis: when a new colour may be promoted, when it must be rolled back.

The semantics follow Argo Rollouts' AnalysisRun, so people who know Argo read the results the same way:

* Each measurement of a metric is classified by its conditions. With both conditions, the failure
  condition wins when both hold and "inconclusive" means neither held. With only a success condition,
  not meeting it is a failure; with only a failure condition, not meeting it is a success.
* A metric fails when its failed measurements exceed ``failure_limit``, is inconclusive when its
  inconclusive measurements exceed ``inconclusive_limit``, errors when more than
  ``consecutive_error_limit`` measurements in a row errored, and succeeds after ``count`` non-error
  measurements that tripped none of these. The defaults (0, 0, 4) are Argo's.
* The worst metric decides the analysis (see :func:`analysis_phase`).

Decisions of our own, where Argo has nothing to copy or where copying it would hide a problem:

* **no_data** is its own measurement phase: a query that returned no series (or NaN, Prometheus' answer
  to 0/0 when there is no traffic) did not show that the release is healthy. For the limits it counts
  as *inconclusive*, so with the default ``inconclusive_limit`` of 0 the first empty answer pauses the
  release for a person instead of promoting or rolling back on no evidence.
* A metric whose ``count`` is reached without a single successful measurement is inconclusive, not
  successful; that is what keeps "no data" and "inconclusive" (within their limits) from adding up to
  a pass.
* A metric must have at least one condition; Argo treats a metric without conditions as always
  successful, which in a release gate is a silent pass.

Conditions are a deliberately tiny language parsed without ``eval``: ``result <op> number`` with
``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``, joined by ``and``/``or`` (``and`` binds tighter, as in
Python). ``result[0]`` is accepted as a synonym of ``result`` because Argo's Prometheus examples use it.
"""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MeasurementPhase = Literal["successful", "failed", "inconclusive", "error", "no_data"]
MetricPhase = Literal["running", "successful", "failed", "inconclusive", "error"]
AnalysisPhase = Literal["running", "successful", "failed", "inconclusive"]

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
# Longer operators first so "<=" is not read as "<" followed by "=".
_TOKEN = re.compile(
    r"\s*(?:(?P<result>result\b(?:\s*\[\s*0\s*\])?)"
    r"|(?P<op><=|>=|==|!=|<|>)"
    r"|(?P<number>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<word>[A-Za-z_]\w*))",
)
_FORM = "expected 'result <op> number' with <op> one of < <= > >= == !=, optionally joined by 'and'/'or'"


@dataclass(frozen=True)
class Comparison:
    """One ``result <op> number`` clause."""

    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Condition:
    """A parsed condition: an ``or`` of ``and``-groups of comparisons."""

    text: str
    groups: tuple[tuple[Comparison, ...], ...]

    def holds(self, value: float) -> bool:
        return any(all(c.holds(value) for c in group) for group in self.groups)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"condition {text!r}: cannot read {stripped[pos:].strip()!r}; {_FORM}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


@lru_cache(maxsize=256)
def parse_condition(text: str) -> Condition:
    """Parse a condition such as ``"result >= 0.99"``; a ValueError says what is wrong with it."""
    tokens = _tokens(text)
    if not tokens:
        raise ValueError(f"condition {text!r} is empty; {_FORM}")
    groups: list[tuple[Comparison, ...]] = []
    current: list[Comparison] = []
    i = 0
    while True:
        clause = tokens[i : i + 3]
        kinds = [kind for kind, _ in clause]
        if kinds != ["result", "op", "number"]:
            got = " ".join(value for _, value in clause) or "the end"
            raise ValueError(f"condition {text!r}: got {got!r} where a comparison belongs; {_FORM}")
        threshold = float(clause[2][1])
        if not math.isfinite(threshold):
            raise ValueError(f"condition {text!r}: threshold {clause[2][1]!r} is not a finite number")
        current.append(Comparison(clause[1][1], threshold))
        i += 3
        if i == len(tokens):
            break
        kind, word = tokens[i]
        if kind != "word" or word.lower() not in ("and", "or"):
            raise ValueError(f"condition {text!r}: expected 'and' or 'or' after a comparison, got {word!r}")
        if word.lower() == "or":
            groups.append(tuple(current))
            current = []
        i += 1
        if i == len(tokens):
            raise ValueError(f"condition {text!r} ends with {word!r}; {_FORM}")
    groups.append(tuple(current))
    return Condition(text=text, groups=tuple(groups))


class MetricSpec(BaseModel):
    """One thing measured during a release analysis and how its measurements are judged."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="Metric name shown in results, e.g. 'error-rate'.")
    kind: Literal["prometheus", "http"] = Field(
        "prometheus", description="Where the value comes from: a Prometheus query or an HTTP smoke check."
    )
    query: str = Field(..., min_length=1, description="PromQL expression (prometheus) or URL path (http).")
    success_condition: str | None = Field(
        None, description="When a measured value is good, e.g. 'result >= 0.99'. Empty for none."
    )
    failure_condition: str | None = Field(
        None, description="When a measured value is bad, e.g. 'result < 0.95'. Wins over success when both hold."
    )
    interval_seconds: float = Field(60, gt=0, description="Seconds between measurements.")
    count: int = Field(5, ge=0, description="Measurements needed for success; 0 measures until the run is stopped.")
    initial_delay_seconds: float = Field(0, ge=0, description="Seconds to wait before the first measurement.")
    failure_limit: int = Field(0, ge=0, description="Failed measurements tolerated; one more fails the metric.")
    inconclusive_limit: int = Field(
        0, ge=0, description="Inconclusive or no-data measurements tolerated; one more pauses for a person."
    )
    consecutive_error_limit: int = Field(
        4, ge=0, description="Errored measurements in a row tolerated; one more errors the metric."
    )
    error_retry_seconds: float = Field(
        10, gt=0, description="Seconds before retrying after an errored measurement (sooner than the interval)."
    )

    @field_validator("success_condition", "failure_condition", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        # Parameter forms submit an empty string for a field left blank.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("success_condition", "failure_condition")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_condition(value.strip())
            return value.strip()
        return value

    @model_validator(mode="after")
    def _has_a_condition(self) -> MetricSpec:
        if self.success_condition is None and self.failure_condition is None:
            raise ValueError(
                f"metric {self.name!r} needs a success_condition or a failure_condition; "
                "without one every measurement would pass"
            )
        return self

    def conditions_text(self) -> str:
        """Both conditions in one short line, for tables and reasons."""
        parts = []
        if self.success_condition:
            parts.append(f"success: {self.success_condition}")
        if self.failure_condition:
            parts.append(f"failure: {self.failure_condition}")
        return "; ".join(parts)


class Measurement(BaseModel):
    """One measured value of one metric and how it was classified."""

    metric: str = Field(..., description="Name of the metric measured.")
    at: datetime = Field(..., description="When the value was taken.")
    value: float | None = Field(None, description="Measured value; None for an error or an empty answer.")
    phase: MeasurementPhase = Field(..., description="successful, failed, inconclusive, error or no_data.")
    message: str = Field("", description="Why the measurement got its phase.")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def _now() -> datetime:
    return datetime.now(UTC)


def classify(
    spec: MetricSpec, value: float | None, *, error: str | None = None, at: datetime | None = None
) -> Measurement:
    """Classify one measured value of ``spec`` (see the module docstring for the rules)."""
    at = at or _now()
    if error is not None:
        return Measurement(metric=spec.name, at=at, value=None, phase="error", message=f"measurement error: {error}")
    if value is None or math.isnan(value):
        what = "no data (empty result)" if value is None else "NaN (no traffic, e.g. 0/0)"
        return Measurement(
            metric=spec.name,
            at=at,
            value=None,
            phase="no_data",
            message=f"query returned {what}; counted as inconclusive, never as a pass",
        )
    shown = _fmt(value)
    success, failure = spec.success_condition, spec.failure_condition
    failed = failure is not None and parse_condition(failure).holds(value)
    succeeded = success is not None and parse_condition(success).holds(value)
    phase: MeasurementPhase
    if failed:
        phase, message = "failed", f"{shown} meets failure condition '{failure}'"
    elif succeeded:
        phase, message = "successful", f"{shown} meets success condition '{success}'"
    elif failure is None:
        phase, message = "failed", f"{shown} does not meet success condition '{success}'"
    elif success is None:
        phase, message = "successful", f"{shown} does not meet failure condition '{failure}'"
    else:
        phase, message = "inconclusive", f"{shown} meets neither success '{success}' nor failure '{failure}'"
    return Measurement(metric=spec.name, at=at, value=value, phase=phase, message=message)


def metric_phase(spec: MetricSpec, measurements: Iterable[Measurement]) -> tuple[MetricPhase, str]:
    """Phase of one metric after its measurements, with a reason a release manager can act on.

    Measurements are replayed in order and the first decision sticks, so measurements taken after a
    metric was decided (or a run of errors that later ended) cannot undo it.
    """
    own = [m for m in measurements if m.metric == spec.name]
    failed = inconclusive = no_data = successful = taken = consecutive_errors = 0
    last: Measurement | None = None
    for m in own:
        last = m
        if m.phase == "error":
            consecutive_errors += 1
            if consecutive_errors > spec.consecutive_error_limit:
                return "error", (
                    f"{consecutive_errors} measurements in a row errored, more than the limit of "
                    f"{spec.consecutive_error_limit}; last: {m.message}"
                )
            continue
        consecutive_errors = 0
        taken += 1
        if m.phase == "failed":
            failed += 1
        elif m.phase in ("inconclusive", "no_data"):
            inconclusive += 1
            no_data += m.phase == "no_data"
        else:
            successful += 1
        if failed > spec.failure_limit:
            return "failed", (
                f"{failed} of {taken} measurements failed, more than the failure limit of {spec.failure_limit}; "
                f"last: {m.message}"
            )
        if inconclusive > spec.inconclusive_limit:
            return "inconclusive", (
                f"{inconclusive} of {taken} measurements inconclusive ({no_data} with no data), more than the "
                f"inconclusive limit of {spec.inconclusive_limit}; a person must decide; last: {m.message}"
            )
        if spec.count and taken >= spec.count:
            tally = _tally(spec, taken, successful, failed, inconclusive)
            if successful == 0:
                return "inconclusive", f"{tally}, none successful, so nothing shows the release is healthy"
            return "successful", f"{tally}; last: {m.message}"
    if last is None:
        return "running", "no measurement yet"
    tally = _tally(spec, taken, successful, failed, inconclusive)
    errors = f"; {consecutive_errors} error(s) in a row (limit {spec.consecutive_error_limit})"
    return "running", f"{tally}{errors if consecutive_errors else ''}; last: {last.message}"


def _tally(spec: MetricSpec, taken: int, successful: int, failed: int, inconclusive: int) -> str:
    of = f" of {spec.count}" if spec.count else ""
    return (
        f"{taken}{of} measurements: {successful} successful, {failed} failed (limit {spec.failure_limit}), "
        f"{inconclusive} inconclusive/no data (limit {spec.inconclusive_limit})"
    )


# Worst first: a failure or error means roll back, inconclusive means a person decides, and only when
# every metric is done and successful may the release be promoted.
_SEVERITY: tuple[MetricPhase, ...] = ("failed", "error", "inconclusive", "running", "successful")


def analysis_phase(phases: Mapping[str, MetricPhase]) -> tuple[AnalysisPhase, str]:
    """Overall phase from the metrics' phases: the worst metric decides.

    Order, worst first: failed and error (both → "failed", roll back), then inconclusive (pause for a
    person), then running (keep measuring), then successful (promote only if every metric is).
    An analysis with no metrics is inconclusive: it has shown nothing.
    """
    if not phases:
        return "inconclusive", "the analysis has no metrics, so it cannot show the release is healthy"
    for phase in _SEVERITY:
        names = sorted(name for name, p in phases.items() if p == phase)
        if not names:
            continue
        listed = ", ".join(names)
        if phase in ("failed", "error"):
            bad = sorted(name for name, p in phases.items() if p in ("failed", "error"))
            return "failed", f"metric(s) {', '.join(bad)} failed or errored: roll back"
        if phase == "inconclusive":
            return "inconclusive", f"metric(s) {listed} inconclusive: pause for a person to decide"
        if phase == "running":
            return "running", f"metric(s) {listed} still measuring"
        return "successful", f"all {len(names)} metric(s) successful: {listed}"
    raise ValueError(f"unknown metric phase(s): {sorted(set(phases.values()))}")


def next_measurement_delay(spec: MetricSpec, measurements: Sequence[Measurement]) -> float:
    """Seconds until ``spec`` should be measured next, counted from its last measurement (or the start)."""
    own = [m for m in measurements if m.metric == spec.name]
    if not own:
        return float(spec.initial_delay_seconds)
    if own[-1].phase == "error":
        return float(spec.error_retry_seconds)
    return float(spec.interval_seconds)


class AnalysisResult(BaseModel):
    """Outcome of a release analysis: the decision, why, and every measurement behind it."""

    phase: AnalysisPhase = Field(..., description="successful (promote), failed (roll back), inconclusive, running.")
    reason: str = Field(..., description="Why the analysis ended in this phase.")
    measurements: list[Measurement] = Field(default_factory=list, description="All measurements in time order.")
    metric_phases: dict[str, MetricPhase] = Field(default_factory=dict, description="Phase of each metric.")
    metric_reasons: dict[str, str] = Field(default_factory=dict, description="Why each metric is in its phase.")
    conditions: dict[str, str] = Field(default_factory=dict, description="Each metric's conditions, as text.")
    started: datetime = Field(..., description="When the analysis started.")
    finished: datetime = Field(..., description="When the analysis stopped.")

    def table_rows(self) -> list[dict[str, str]]:
        """One row per measurement for a table artifact: metric, time, value, condition, phase, note."""
        return [
            {
                "metric": m.metric,
                "time": m.at.isoformat(timespec="seconds"),
                "value": _fmt(m.value),
                "condition": self.conditions.get(m.metric, ""),
                "phase": m.phase,
                "note": m.message,
            }
            for m in self.measurements
        ]


def run_analysis(
    specs: Sequence[MetricSpec],
    measure: Callable[[MetricSpec], float | None],
    *,
    clock: Callable[[], datetime] = _now,
    sleep: Callable[[float], None] = time.sleep,
    stop_on_decision: bool = True,
    should_stop: Callable[[], bool] | None = None,
) -> AnalysisResult:
    """Measure every metric on its own schedule until the analysis is decided.

    ``measure`` returns the value (None for an empty answer) or raises to report an error; ``clock``
    and ``sleep`` are injected so tests can run on a fake clock. With ``stop_on_decision`` the run ends
    at the measurement that makes the analysis failed or inconclusive, so a rollback starts within one
    interval of the first bad measurement; without it, every metric runs until it is decided itself.
    ``should_stop`` lets the caller end a run, which metrics with ``count=0`` need: such a metric then
    counts as successful if it had a successful measurement and tripped no limit; a metric still short
    of its ``count`` stays running, and so does the analysis, which must not be read as a pass.
    """
    specs = list(specs)
    if not specs:
        raise ValueError("run_analysis needs at least one metric")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"metric names must be unique, got {names}")

    started = clock()
    history: dict[str, list[Measurement]] = {s.name: [] for s in specs}
    due = {s.name: started + timedelta(seconds=s.initial_delay_seconds) for s in specs}
    phases: dict[str, MetricPhase] = {s.name: "running" for s in specs}
    reasons: dict[str, str] = {s.name: "no measurement yet" for s in specs}
    measurements: list[Measurement] = []
    stopped = False

    while True:
        active = [s for s in specs if phases[s.name] == "running"]
        overall, _ = analysis_phase(phases)
        if not active or (stop_on_decision and overall in ("failed", "inconclusive")):
            break
        if should_stop is not None and should_stop():
            stopped = True
            break
        # min() keeps the first of equal due times, so ties go in the order the metrics were given.
        spec = min(active, key=lambda s: due[s.name])
        wait = (due[spec.name] - clock()).total_seconds()
        if wait > 0:
            sleep(wait)
        try:
            raw = measure(spec)
            value = None if raw is None else float(raw)
            error = None
        except Exception as exc:  # the measurement's own failure is data, not a crash of the analysis
            value, error = None, f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        m = classify(spec, value, error=error, at=clock())
        history[spec.name].append(m)
        measurements.append(m)
        phases[spec.name], reasons[spec.name] = metric_phase(spec, history[spec.name])
        due[spec.name] = m.at + timedelta(seconds=next_measurement_delay(spec, history[spec.name]))

    if stopped:
        for spec in specs:
            own = history[spec.name]
            if phases[spec.name] == "running" and spec.count == 0 and any(m.phase == "successful" for m in own):
                phases[spec.name] = "successful"
                reasons[spec.name] = f"stopped by the caller with no limit tripped; {reasons[spec.name]}"

    overall, reason = analysis_phase(phases)
    deciding = [n for n in names if _decides(overall, phases[n])]
    detail = "; ".join(f"{n}: {reasons[n]}" for n in deciding)
    if stopped and overall == "running":
        reason = f"stopped by the caller before the analysis was decided, so do not promote; {reason}"
    return AnalysisResult(
        phase=overall,
        reason=f"{reason} — {detail}" if detail else reason,
        measurements=measurements,
        metric_phases=phases,
        metric_reasons=reasons,
        conditions={s.name: s.conditions_text() for s in specs},
        started=started,
        finished=clock(),
    )


def _decides(overall: AnalysisPhase, phase: MetricPhase) -> bool:
    if overall == "failed":
        return phase in ("failed", "error")
    return phase == overall and overall != "successful"
