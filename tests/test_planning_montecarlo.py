"""PPMS forecast engine: schedules through the dependency graph, capacity, percentiles, throughput, calendar."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from scipy.stats import norm

from framework2.errors import DataError
from framework2.tasks.planning.montecarlo import (
    Forecast,
    build_forecast,
    criticality_index,
    group_finish,
    percentiles,
    probability_by,
    simulate_schedule,
    to_dates,
    to_days,
)

FRIDAY = date(2024, 5, 3)


def fixed(durations: list[float], trials: int = 3) -> np.ndarray:
    return np.tile(np.asarray(durations, dtype=float), (trials, 1))


def test_chain_of_three_fixed_tasks_finishes_at_their_sum_and_all_are_critical():
    ids = ["a", "b", "c"]
    sample = simulate_schedule(ids, fixed([2, 3, 4]), [("b", "a"), ("c", "b")])
    assert sample.finish.tolist() == [[2, 5, 9]] * 3
    assert sample.project_finish.tolist() == [9, 9, 9]
    assert sample.critical.all()
    assert criticality_index(sample) == {"a": 1.0, "b": 1.0, "c": 1.0}


def test_of_two_parallel_branches_the_longer_one_is_critical():
    ids = ["a1", "a2", "b", "end"]
    deps = [("a2", "a1"), ("end", "a2"), ("end", "b")]
    sample = simulate_schedule(ids, fixed([2, 3, 4, 1]), deps)
    assert sample.project_finish.tolist() == [6, 6, 6]
    assert criticality_index(sample) == {"a1": 1.0, "a2": 1.0, "b": 0.0, "end": 1.0}


def test_criticality_index_matches_the_analytic_probability_for_random_durations():
    # Branch a = a1 + a2 ~ N(10, 2), branch b ~ N(11, 2): a is critical with P(a > b) = Phi(-1 / 2).
    trials = 20_000
    rng = np.random.default_rng(7)
    durations = np.column_stack(
        [rng.normal(5, 1, trials), rng.normal(5, 1, trials), rng.normal(11, np.sqrt(2), trials), np.ones(trials)]
    ).clip(0)
    sample = simulate_schedule(["a1", "a2", "b", "end"], durations, [("a2", "a1"), ("end", "a2"), ("end", "b")])
    index = criticality_index(sample)
    expected = norm.cdf(-0.5)  # 0.3085; binomial sd at 20,000 trials ~0.003
    assert index["a1"] == pytest.approx(expected, abs=0.015)
    assert index["a2"] == index["a1"]
    assert index["b"] == pytest.approx(1 - expected, abs=0.015)
    assert index["end"] == 1.0


def test_capacity_of_one_serialises_independent_tasks():
    ids = ["a", "b", "c", "d"]
    durations = fixed([1, 2, 3, 4])
    assert simulate_schedule(ids, durations, []).project_finish.tolist() == [4, 4, 4]
    one = simulate_schedule(ids, durations, [], workers=1)
    assert one.project_finish.tolist() == [10, 10, 10]
    # One worker: every task waits for the one before it, so the whole sequence is critical.
    assert one.critical.all()
    two = simulate_schedule(ids, durations, [], workers=2)
    # Longest first on two workers: 4 | 3, then 2 joins the 3 and 1 the 4 -> both finish at 5.
    assert two.project_finish.tolist() == [5, 5, 5]


def test_capacity_respects_dependencies_and_never_runs_more_than_the_workers():
    rng = np.random.default_rng(3)
    n, trials, workers = 40, 50, 3
    ids = [f"t{i}" for i in range(n)]
    deps = [(ids[i], ids[p]) for i in range(5, n) for p in rng.choice(i, size=2, replace=False)]
    durations = rng.lognormal(0, 0.6, size=(trials, n))
    sample = simulate_schedule(ids, durations, deps, workers=workers)
    finish = sample.finish
    start = finish - durations
    pos = {t: i for i, t in enumerate(ids)}
    for task, dep in deps:
        assert (start[:, pos[task]] >= finish[:, pos[dep]] - 1e-9).all()
    for trial in range(trials):
        # At every start instant at most `workers` tasks are running.
        s, f = start[trial], finish[trial]
        running = ((s[:, None] <= s[None, :] + 1e-12) & (f[:, None] > s[None, :] + 1e-9)).sum(axis=0)
        assert running.max() <= workers
    assert (sample.project_finish >= simulate_schedule(ids, durations, deps).project_finish - 1e-9).all()
    assert (sample.project_finish >= durations.sum(axis=1) / workers - 1e-9).all()


def reference_schedule(n, durations, preds, order, offsets, workers):
    """Per-trial loop of the same list-scheduling algorithm, exact floats (what the vectorised one replays)."""
    finish = np.zeros_like(durations)
    for trial in range(durations.shape[0]):
        free = [0.0] * (workers or n)
        for j in order:
            ready = max([offsets[j]] + [finish[trial, p] for p in preds[j]])
            if workers is None:
                start = ready
            else:
                fit = [w for w in range(workers) if free[w] <= ready]
                w = max(fit, key=lambda w: free[w]) if fit else min(range(workers), key=lambda w: free[w])
                start = max(ready, free[w])
            finish[trial, j] = start + durations[trial, j]
            if workers is not None:
                free[w] = finish[trial, j]
    return finish


@pytest.mark.parametrize("workers", [None, 1, 3])
def test_vectorised_schedule_equals_a_per_trial_loop(workers):
    rng = np.random.default_rng(11)
    n, trials = 30, 40
    ids = [f"t{i}" for i in range(n)]
    deps = [(ids[i], ids[p]) for i in range(4, n) for p in rng.choice(i, size=2, replace=False)]
    durations = rng.lognormal(0, 0.5, size=(trials, n))
    offsets = rng.choice([0.0, 0.0, 2.5], size=n)
    sample = simulate_schedule(ids, durations, deps, start_offsets=offsets, workers=workers)
    expected = reference_schedule(n, durations, sample._preds, sample._order, offsets, workers)
    np.testing.assert_allclose(sample.finish, expected, rtol=1e-12)


def test_a_cycle_raises_a_data_error_naming_all_its_members():
    ids = ["a", "b", "c", "d"]
    with pytest.raises(DataError) as info:
        simulate_schedule(ids, fixed([1, 1, 1, 1]), [("b", "a"), ("c", "b"), ("a", "c"), ("d", "a")])
    message = info.value.message
    assert "cycle of 3 task(s)" in message
    path = message.split(": ", 1)[1].split(" (")[0]  # "a -> b -> c -> a": each blocks the next
    assert set(path.split(" -> ")) == {"a", "b", "c"}
    assert "remove one of these dependencies" in info.value.hint


def test_bad_inputs_raise_data_errors():
    with pytest.raises(DataError, match="not in the schedule"):
        simulate_schedule(["a"], fixed([1]), [("a", "gone")])
    with pytest.raises(DataError, match="finite and >= 0"):
        simulate_schedule(["a", "b"], fixed([1, np.nan]), [])
    with pytest.raises(DataError, match="shape"):
        simulate_schedule(["a", "b"], fixed([1]), [])
    with pytest.raises(DataError, match="duplicate"):
        simulate_schedule(["a", "a"], fixed([1, 1]), [])


def test_start_offsets_are_respected_and_end_the_critical_chain():
    ids = ["design", "build", "review"]
    deps = [("review", "build"), ("review", "design")]
    # build cannot start before day 10 (the builder is away); design is already in progress.
    sample = simulate_schedule(ids, fixed([3, 2, 1]), deps, start_offsets=np.array([0.0, 10.0, 0.0]))
    assert sample.finish[0].tolist() == [3, 12, 13]
    assert criticality_index(sample) == {"design": 0.0, "build": 1.0, "review": 1.0}


def test_milestone_finish_and_criticality_are_measured_against_the_milestone():
    ids = ["a", "b", "c"]
    sample = simulate_schedule(ids, fixed([2, 5, 1]), [("c", "a")])
    assert group_finish(sample, ["a", "c"]).tolist() == [3, 3, 3]
    assert criticality_index(sample, within=["a", "c"]) == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert criticality_index(sample) == {"a": 0.0, "b": 1.0, "c": 0.0}


@pytest.mark.parametrize("size", [1, 2, 7, 20, 100, 1001])
def test_probability_by_is_consistent_with_the_percentiles(size):
    rng = np.random.default_rng(size)
    for x in (rng.lognormal(3, 0.4, size), rng.integers(10, 15, size).astype(float)):  # with and without ties
        for q, day in percentiles(x, (50, 85, 95, 99)).items():
            assert probability_by(x, day) >= q / 100
            # ...and it is the smallest such trial value: anything earlier is below q.
            assert probability_by(x, np.nextafter(day, -np.inf)) < q / 100


def test_when_every_trial_misses_the_target_the_probability_is_zero_with_a_clear_message():
    x = np.array([12.0, 15.0, 20.0])
    assert probability_by(x, 5) == 0.0
    forecast = build_forecast(x, method="dependency-graph", start=FRIDAY, target_date=FRIDAY + timedelta(days=7))
    assert forecast.probability_of_target == 0.0
    # Day 12 from Friday 3 May in working days: Fri + 11 working days = Mon 20 May.
    assert forecast.target_note == (
        "no trial finished by the target date 2024-05-10; the earliest trial finished on 2024-05-20"
    )


def test_forecast_dates_agree_with_the_probability_of_their_own_dates():
    rng = np.random.default_rng(5)
    x = rng.lognormal(3, 0.3, 2_000)
    forecast = build_forecast(x, method="dependency-graph", start=FRIDAY, target_date=date(2024, 6, 14))
    assert isinstance(forecast, Forecast) and forecast.available and forecast.trials == 2_000
    assert forecast.p50_days <= forecast.p85_days <= forecast.p95_days
    assert forecast.p85_date == to_dates(forecast.p85_days, FRIDAY)
    by_p85 = build_forecast(x, method="dependency-graph", start=FRIDAY, target_date=forecast.p85_date)
    assert by_p85.probability_of_target >= 0.85
    assert 0 < forecast.probability_of_target < 1
    assert forecast.target_note.endswith("of trials finished by the target date 2024-06-14")


def test_working_day_calendar_skips_weekends_and_holidays():
    assert to_dates(0, FRIDAY) == FRIDAY
    assert to_dates(0.5, FRIDAY) == FRIDAY
    assert to_dates(1, FRIDAY) == FRIDAY
    assert to_dates(1.2, FRIDAY) == date(2024, 5, 6)  # Monday
    assert to_dates(6, FRIDAY) == date(2024, 5, 10)
    holiday = {date(2024, 5, 6)}
    assert to_dates(2, FRIDAY, holidays=holiday) == date(2024, 5, 7)
    assert to_dates(1, date(2024, 5, 4)) == date(2024, 5, 6)  # starting on a Saturday
    assert to_dates(2, FRIDAY, workdays=False) == date(2024, 5, 4)
    # to_days is the inverse for targets: finishing by a date <=> days <= to_days(date).
    for d in np.arange(0.25, 30, 0.25):
        for target in (date(2024, 5, 10), date(2024, 5, 12), date(2024, 5, 20)):
            days = to_days(target, FRIDAY, holidays=holiday)
            assert (to_dates(d, FRIDAY, holidays=holiday) <= target) == (d <= days)


def test_seeded_rng_gives_identical_forecasts():
    ids = [f"t{i}" for i in range(20)]
    deps = [(ids[i], ids[i - 1]) for i in range(1, 20, 2)]
    estimates = np.linspace(1, 5, 20)

    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        durations = estimates * np.random.default_rng(seed).lognormal(0.2, 0.5, (500, 20))
        sample = simulate_schedule(ids, durations, deps, workers=4)
        return sample.finish, sample.critical

    first, again, other = run(42), run(42), run(43)
    for a, b in zip(first, again, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_percentiles_past_the_horizon_get_no_date_and_a_reason_instead_of_a_crash():
    # One trial far past year 9999 used to crash date conversion and the forecast's validation.
    forecast = build_forecast(np.array([1.0, 2.0, 3e6]), method="dependency-graph", start=date(2007, 7, 16))
    assert forecast.p50_date == date(2007, 7, 17)
    assert forecast.p85_date is None and forecast.p95_date is None
    assert forecast.beyond_horizon == [85, 95]
    assert "more than 5 years out" in forecast.horizon_note and "cannot support a date" in forecast.horizon_note
    missed = build_forecast(np.full(10, 1e7), method="dependency-graph", start=FRIDAY, target_date=FRIDAY)
    assert missed.probability_of_target == 0.0 and "more than 5 years out" in missed.target_note


def test_per_trial_start_offsets_hold_each_trial_back_by_its_own_wait():
    durations = np.array([[1.0, 1.0], [1.0, 1.0]])
    offsets = np.array([[0.0, 5.0], [2.0, 0.0]])  # task-major: a waits 0 / 5, b waits 2 / 0
    sample = simulate_schedule(["a", "b"], durations, [("b", "a")], start_offsets=offsets)
    assert sample.finish.tolist() == [[1.0, 3.0], [6.0, 7.0]]
    with pytest.raises(DataError, match="unlimited parallelism"):
        simulate_schedule(["a", "b"], durations, [], start_offsets=offsets, workers=1)
