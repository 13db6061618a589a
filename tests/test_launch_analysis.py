"""PLOS release analysis: conditions, measurement and metric phases, the driver on a fake clock, the judge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from framework2.tasks.launch.analysis import (
    Measurement,
    MetricSpec,
    analysis_phase,
    classify,
    metric_phase,
    next_measurement_delay,
    parse_condition,
    run_analysis,
)
from framework2.tasks.launch.judge import compare_samples

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def spec(**overrides) -> MetricSpec:
    fields = {
        "name": "success-rate",
        "query": "sum(rate(http_requests_total{code!~'5..'}[1m])) / sum(rate(http_requests_total[1m]))",
        "success_condition": "result >= 0.99",
        "failure_condition": "result < 0.95",
    }
    fields.update(overrides)
    return MetricSpec(**fields)


def history(s: MetricSpec, phases: list[str]) -> list[Measurement]:
    return [
        Measurement(metric=s.name, at=T0 + timedelta(seconds=60 * i), value=None, phase=p, message=p)
        for i, p in enumerate(phases)
    ]


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


def scripted(values: dict[str, list]):
    """A measure function returning each metric's values in turn; an Exception instance is raised."""
    calls: dict[str, int] = {}

    def measure(s: MetricSpec) -> float | None:
        i = calls.get(s.name, 0)
        calls[s.name] = i + 1
        series = values[s.name]
        value = series[min(i, len(series) - 1)]
        if isinstance(value, Exception):
            raise value
        return value

    return measure


# --- conditions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("result >= 0.99", 0.99, True),
        ("result >= 0.99", 0.98, False),
        ("result<0.95", 0.9, True),
        ("result != 0", 0.0, False),
        ("result == 200", 200.0, True),
        ("result > -1.5e-3", 0.0, True),
        ("result >= 0.9 and result <= 1", 0.95, True),
        ("result >= 0.9 and result <= 1", 1.5, False),
        ("result < 0.1 or result > 0.9", 0.95, True),
        # "and" binds tighter than "or", as in Python.
        ("result < 0 or result > 5 and result < 10", 7, True),
        ("result < 0 or result > 5 and result < 10", 12, False),
        ("result[0] >= 0.99", 0.995, True),
    ],
)
def test_valid_conditions_evaluate_like_python_comparisons(text, value, expected):
    assert parse_condition(text).holds(value) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "result",
        "result >= ",
        "0.99 <= result",
        "result => 0.99",
        "result >= 0.99 and",
        "result >= 0.99 xor result < 2",
        "__import__('os').system('true')",
        "result >= abc",
        "result >= 0.99; result < 2",
    ],
)
def test_invalid_conditions_are_rejected_with_a_clear_message(text):
    with pytest.raises(ValueError, match="condition"):
        parse_condition(text)


def test_invalid_condition_fails_model_validation():
    with pytest.raises(ValidationError, match="result <op> number"):
        spec(success_condition="result >== 0.99")


def test_a_metric_without_any_condition_is_rejected():
    with pytest.raises(ValidationError, match="needs a success_condition or a failure_condition"):
        spec(success_condition="", failure_condition=None)


def test_spec_defaults_match_argo():
    s = spec()
    assert (s.interval_seconds, s.count, s.initial_delay_seconds) == (60, 5, 0)
    assert (s.failure_limit, s.inconclusive_limit, s.consecutive_error_limit, s.error_retry_seconds) == (0, 0, 4, 10)


# --- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "phase"),
    [(0.995, "successful"), (0.90, "failed"), (0.97, "inconclusive")],
)
def test_classify_with_both_conditions(value, phase):
    assert classify(spec(), value).phase == phase


def test_failure_condition_wins_when_both_hold():
    s = spec(success_condition="result > 0", failure_condition="result > 5")
    assert classify(s, 10).phase == "failed"


def test_classify_error_and_no_data():
    s = spec()
    errored = classify(s, None, error="timeout")
    assert errored.phase == "error" and "timeout" in errored.message
    empty = classify(s, None)
    assert empty.phase == "no_data" and "no data" in empty.message
    assert classify(s, float("nan")).phase == "no_data"


def test_only_success_condition_not_met_is_a_failure():
    s = spec(failure_condition=None)
    assert classify(s, 0.999).phase == "successful"
    missed = classify(s, 0.97)
    assert missed.phase == "failed" and "does not meet success condition" in missed.message


def test_only_failure_condition_not_met_is_a_success():
    s = spec(success_condition=None)
    assert classify(s, 0.97).phase == "successful"
    assert classify(s, 0.90).phase == "failed"


# --- metric phase -----------------------------------------------------------------------------


def test_first_failure_fails_the_metric_with_default_failure_limit():
    s = spec()
    phase, reason = metric_phase(s, history(s, ["successful", "failed"]))
    assert phase == "failed"
    assert "1 of 2 measurements failed" in reason and "failure limit of 0" in reason


def test_failure_limit_two_fails_on_the_third_failure():
    s = spec(failure_limit=2, count=10)
    assert metric_phase(s, history(s, ["failed", "successful", "failed"]))[0] == "running"
    assert metric_phase(s, history(s, ["failed", "successful", "failed", "failed"]))[0] == "failed"


def test_inconclusive_limit_counts_no_data_too():
    s = spec(inconclusive_limit=1, count=10)
    assert metric_phase(s, history(s, ["inconclusive", "successful"]))[0] == "running"
    phase, reason = metric_phase(s, history(s, ["inconclusive", "successful", "no_data"]))
    assert phase == "inconclusive"
    assert "1 with no data" in reason and "a person must decide" in reason


def test_more_than_four_consecutive_errors_errors_the_metric():
    s = spec()
    assert metric_phase(s, history(s, ["error"] * 4))[0] == "running"
    phase, reason = metric_phase(s, history(s, ["error"] * 5))
    assert phase == "error" and "5 measurements in a row errored" in reason


def test_a_good_measurement_resets_the_consecutive_error_count():
    s = spec(count=10)
    phases = ["error"] * 4 + ["successful"] + ["error"] * 4
    assert metric_phase(s, history(s, phases))[0] == "running"


def test_errors_do_not_count_towards_count():
    s = spec(count=3)
    assert metric_phase(s, history(s, ["successful", "error", "successful"]))[0] == "running"
    assert metric_phase(s, history(s, ["successful", "error", "successful", "successful"]))[0] == "successful"


def test_metric_succeeds_after_count_measurements_within_limits():
    s = spec(count=5, failure_limit=1)
    phase, reason = metric_phase(s, history(s, ["successful", "failed", "successful", "successful", "successful"]))
    assert phase == "successful"
    assert "5 of 5 measurements" in reason and "1 failed (limit 1)" in reason


def test_no_data_never_yields_success():
    s = spec(count=3, inconclusive_limit=5)
    phase, reason = metric_phase(s, history(s, ["no_data"] * 3))
    assert phase == "inconclusive" and "none successful" in reason
    # With the default limit the first empty answer already stops for a person.
    assert metric_phase(spec(), history(spec(), ["no_data"]))[0] == "inconclusive"


def test_a_decision_sticks_when_later_measurements_arrive():
    s = spec(count=2)
    assert metric_phase(s, history(s, ["failed", "successful", "successful"]))[0] == "failed"


# --- analysis phase and scheduling ------------------------------------------------------------


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        ({"a": "successful", "b": "successful"}, "successful"),
        ({"a": "successful", "b": "running"}, "running"),
        ({"a": "inconclusive", "b": "running"}, "inconclusive"),
        ({"a": "inconclusive", "b": "failed"}, "failed"),
        ({"a": "successful", "b": "error"}, "failed"),
        ({"a": "error", "b": "inconclusive", "c": "running"}, "failed"),
        ({}, "inconclusive"),
    ],
)
def test_worst_metric_decides_the_analysis(phases, expected):
    assert analysis_phase(phases)[0] == expected


def test_failed_analysis_reason_names_the_metric_and_the_action():
    phase, reason = analysis_phase({"latency": "successful", "error-rate": "failed"})
    assert phase == "failed" and "error-rate" in reason and "roll back" in reason


def test_next_delay_is_initial_then_interval_and_sooner_after_an_error():
    s = spec(initial_delay_seconds=30, interval_seconds=60, error_retry_seconds=10)
    assert next_measurement_delay(s, []) == 30
    assert next_measurement_delay(s, history(s, ["successful"])) == 60
    assert next_measurement_delay(s, history(s, ["successful", "error"])) == 10


# --- driver -----------------------------------------------------------------------------------


def test_analysis_stops_at_the_first_failing_measurement_within_one_interval():
    clock = FakeClock()
    fast = spec(name="success-rate", count=5)
    slow = spec(name="latency-p99", success_condition="result < 0.3", failure_condition=None, interval_seconds=300)
    measure = scripted({"success-rate": [0.999, 0.998, 0.90, 0.999, 0.999], "latency-p99": [0.1]})

    result = run_analysis([fast, slow], measure, clock=clock, sleep=clock.sleep)

    assert result.phase == "failed"
    assert result.metric_phases == {"success-rate": "failed", "latency-p99": "running"}
    own = [m for m in result.measurements if m.metric == "success-rate"]
    assert [m.phase for m in own] == ["successful", "successful", "failed"]
    first_failure = own[2].at
    assert (result.finished - first_failure).total_seconds() < fast.interval_seconds
    assert result.finished == T0 + timedelta(seconds=120)
    assert "success-rate" in result.reason and "roll back" in result.reason


def test_errors_are_retried_after_error_retry_seconds_not_the_interval():
    clock = FakeClock()
    s = spec(count=3, interval_seconds=60, error_retry_seconds=10)
    measure = scripted({"success-rate": [0.999, ConnectionError("prometheus down"), 0.999, 0.999]})

    result = run_analysis([s], measure, clock=clock, sleep=clock.sleep)

    assert result.phase == "successful"
    times = [(m.at - T0).total_seconds() for m in result.measurements]
    assert [m.phase for m in result.measurements] == ["successful", "error", "successful", "successful"]
    assert times == [0, 60, 70, 130]
    assert "ConnectionError: prometheus down" in result.measurements[1].message


def test_initial_delay_is_honoured_before_the_first_measurement():
    clock = FakeClock()
    s = spec(count=2, initial_delay_seconds=45, interval_seconds=60)
    result = run_analysis([s], scripted({"success-rate": [0.999]}), clock=clock, sleep=clock.sleep)
    assert [(m.at - T0).total_seconds() for m in result.measurements] == [45, 105]
    assert clock.sleeps[0] == 45
    assert result.phase == "successful" and result.started == T0


def test_persistent_errors_fail_the_analysis_after_the_consecutive_limit():
    clock = FakeClock()
    s = spec()
    result = run_analysis([s], scripted({"success-rate": [TimeoutError("slow")]}), clock=clock, sleep=clock.sleep)
    assert result.phase == "failed" and result.metric_phases["success-rate"] == "error"
    assert len(result.measurements) == 5
    assert (result.finished - T0).total_seconds() == 40


def test_empty_query_answers_pause_the_analysis_instead_of_passing():
    clock = FakeClock()
    s = spec(count=2)
    result = run_analysis([s], scripted({"success-rate": [None]}), clock=clock, sleep=clock.sleep)
    assert result.phase == "inconclusive"
    assert [m.phase for m in result.measurements] == ["no_data"]


def test_without_stop_on_decision_the_other_metrics_finish():
    clock = FakeClock()
    bad = spec(name="bad", count=3)
    good = spec(name="good", count=3)
    measure = scripted({"bad": [0.5], "good": [0.999]})
    result = run_analysis([bad, good], measure, clock=clock, sleep=clock.sleep, stop_on_decision=False)
    assert result.phase == "failed"
    assert result.metric_phases == {"bad": "failed", "good": "successful"}


def test_unbounded_metric_runs_until_the_caller_stops():
    clock = FakeClock()
    s = spec(count=0)
    result = run_analysis(
        [s],
        scripted({"success-rate": [0.999]}),
        clock=clock,
        sleep=clock.sleep,
        should_stop=lambda: clock.now >= T0 + timedelta(minutes=10),
    )
    assert result.phase == "successful"
    assert len(result.measurements) == 11


def test_table_rows_show_metric_time_value_condition_and_phase():
    clock = FakeClock()
    s = spec(count=1)
    result = run_analysis([s], scripted({"success-rate": [0.9951]}), clock=clock, sleep=clock.sleep)
    assert result.table_rows() == [
        {
            "metric": "success-rate",
            "time": "2025-01-01T00:00:00+00:00",
            "value": "0.9951",
            "condition": "success: result >= 0.99; failure: result < 0.95",
            "phase": "successful",
            "note": "0.9951 meets success condition 'result >= 0.99'",
        }
    ]


def test_duplicate_metric_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        run_analysis([spec(), spec()], scripted({"success-rate": [1.0]}))


# --- judge ------------------------------------------------------------------------------------


def test_judge_passes_identical_distributions():
    rng = np.random.default_rng(7)
    baseline = rng.lognormal(mean=np.log(0.12), sigma=0.3, size=200)
    candidate = rng.lognormal(mean=np.log(0.12), sigma=0.3, size=200)
    result = compare_samples(baseline, candidate, higher_is_worse=True)
    assert result.phase == "successful"
    assert result.p_value is not None and result.p_value > 0.05


def test_judge_fails_a_clear_latency_regression_beyond_tolerance():
    rng = np.random.default_rng(11)
    baseline = rng.lognormal(mean=np.log(0.12), sigma=0.3, size=100)
    candidate = rng.lognormal(mean=np.log(0.18), sigma=0.3, size=100)
    result = compare_samples(baseline, candidate, higher_is_worse=True)
    assert result.phase == "failed"
    assert result.p_value < 0.001 and result.relative_change > 0.3
    assert "exceeds the tolerance" in result.reason


def test_judge_passes_a_significant_shift_within_tolerance():
    rng = np.random.default_rng(13)
    baseline = rng.normal(100.0, 1.0, size=2000)
    candidate = rng.normal(102.0, 1.0, size=2000)
    result = compare_samples(baseline, candidate, higher_is_worse=True, effect_tolerance=0.1)
    assert result.phase == "successful"
    assert result.p_value < 0.05 and 0 < result.relative_change < 0.1
    assert "within the tolerance" in result.reason


def test_judge_ignores_an_improvement_in_the_better_direction():
    rng = np.random.default_rng(17)
    baseline = rng.normal(0.99, 0.002, size=50)
    candidate = rng.normal(0.80, 0.002, size=50)
    assert compare_samples(baseline, candidate, higher_is_worse=True).phase == "successful"
    assert compare_samples(baseline, candidate, higher_is_worse=False).phase == "failed"


def test_judge_is_inconclusive_with_too_few_samples():
    rng = np.random.default_rng(19)
    result = compare_samples(rng.normal(1, 0.1, 4), rng.normal(5, 0.1, 30), higher_is_worse=True)
    assert result.phase == "inconclusive" and result.p_value is None
    assert "too few samples" in result.reason and "baseline 4" in result.reason
