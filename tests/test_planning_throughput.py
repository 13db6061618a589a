"""PPMS throughput answer: resampled daily completions, the window it uses, and calendar-to-working days."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from framework2.errors import DataError
from framework2.tasks.planning.throughput import (
    ThroughputRate,
    calendar_to_working,
    daily_throughput,
    recent_rate,
    throughput_forecast,
)

TODAY = date(2024, 6, 30)


def test_throughput_forecast_with_zero_days_kept_is_slower_than_without():
    busy = [2, 3, 1, 4, 2, 1, 3]
    with_zeros = busy + [0] * 7
    fast = throughput_forecast(busy, 60, 5_000, np.random.default_rng(1))
    slow = throughput_forecast(with_zeros, 60, 5_000, np.random.default_rng(1))
    assert slow.mean() > 1.7 * fast.mean()  # half the days are empty: about twice as long
    assert throughput_forecast([1], 7, 10, 0).tolist() == [7] * 10
    assert throughput_forecast([3, 0], 0, 4, 0).tolist() == [0] * 4
    with pytest.raises(DataError, match="no items were completed"):
        throughput_forecast([0, 0, 0], 5, 10, 0)


def test_throughput_forecast_finishes_long_horizons_in_several_blocks():
    days = throughput_forecast([0] * 19 + [1], 30, 2_000, np.random.default_rng(2))
    # Negative binomial: 30 successes at p = 1/20 -> mean 600 days.
    assert days.mean() == pytest.approx(600, rel=0.05)
    assert days.min() >= 30


def test_fractional_rates_reach_their_count():
    assert throughput_forecast([0.25], 3, 5, 0).tolist() == [12] * 5


def test_twelve_weeks_of_the_projects_own_completions_when_it_has_them():
    done = [TODAY - timedelta(days=i) for i in range(0, 120, 3)]  # 40 items over 120 days
    rate = recent_rate(done, [("p", d) for d in done], TODAY)
    assert isinstance(rate, ThroughputRate)
    assert rate.source == "project" and len(rate.counts) == 84 and rate.items == 28
    assert rate.reason == "28 items completed in the last 12 weeks"
    assert daily_throughput(done, TODAY)[-1] == 1


def test_a_young_project_gets_a_shorter_window_said_plainly():
    done = [TODAY - timedelta(days=i % 20) for i in range(15)]
    rate = recent_rate(done, [("p", d) for d in done], TODAY)
    assert isinstance(rate, ThroughputRate)
    assert rate.source == "project (short window)" and len(rate.counts) == 15
    assert "only 15 days of completions (15 items)" in rate.reason and "shorter window" in rate.reason
    slow = [TODAY - timedelta(days=i * 20) for i in range(12)]  # one item every 20 days
    rate = recent_rate(slow, [("p", d) for d in slow], TODAY)
    assert isinstance(rate, ThroughputRate) and rate.source == "project (long window)" and rate.items == 10
    assert len(rate.counts) == 181 and "the last 12 weeks held only 5" in rate.reason


def test_a_new_project_gets_an_average_projects_share_of_the_organisation():
    others = [(f"p{k}", TODAY - timedelta(days=i)) for k in range(4) for i in range(0, 84, 2)]
    rate = recent_rate([], others, TODAY)
    assert isinstance(rate, ThroughputRate)
    assert rate.source == "organisation average"
    assert rate.items == pytest.approx(len(others) / 4)
    assert "over 4 active project(s)" in rate.reason


def test_no_history_anywhere_says_why():
    why = recent_rate([TODAY], [("p", TODAY)], TODAY)
    assert isinstance(why, str) and "needs 10 over at least 14 days" in why


def test_calendar_days_become_working_days_ending_on_the_same_day():
    friday = date(2024, 5, 3)
    # Day 1 = Friday itself (1 working day), day 3 = Sunday (still 1), day 4 = Monday (2).
    assert calendar_to_working(np.array([1, 2, 3, 4, 10]), friday).tolist() == [1, 1, 1, 2, 6]
