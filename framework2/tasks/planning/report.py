"""What a project lead reads: the forecast distribution with its percentiles and the target date, and the
burn-up with the forecast cone."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time

import numpy as np

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.planning.montecarlo import Forecast, to_days
from framework2.tasks.planning.records import TaskRecord


def forecast_chart(name: str, forecast: Forecast, finish_days: np.ndarray) -> str:
    """Histogram of the trials' finish (working days from today) with P50/P85/P95 and the target."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    days = np.asarray(finish_days, dtype=float)
    ax.hist(days[np.isfinite(days)], bins=40, color="#9ecae1", edgecolor="#6baed6")
    for label, value, when, colour in (
        ("P50", forecast.p50_days, forecast.p50_date, "#2171b5"),
        ("P85", forecast.p85_days, forecast.p85_date, "#08519c"),
        ("P95", forecast.p95_days, forecast.p95_date, "#08306b"),
    ):
        if value is not None:
            ax.axvline(value, color=colour, linestyle="--", linewidth=1.2, label=f"{label} {when}")
    if forecast.target_date is not None:
        target = to_days(forecast.target_date, forecast.start, workdays=forecast.workdays)
        odds = f" ({forecast.probability_of_target:.0%} on time)" if forecast.probability_of_target is not None else ""
        ax.axvline(target, color="#d62728", linewidth=1.5, label=f"target {forecast.target_date}{odds}")
    unit = "working days" if forecast.workdays else "days"
    ax.set_xlabel(f"{unit} from {forecast.start} until done ({forecast.trials:,} trials, {forecast.method})")
    ax.set_ylabel("trials")
    ax.set_title(name, fontsize=10)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return figure_to_data_uri(fig)


def burnup_chart(name: str, tasks: Sequence[TaskRecord], forecast: Forecast, *, now: datetime) -> str | None:
    """Done tasks over time against the scope (all tasks created by then), with the forecast cone from
    today to the P50/P85/P95 dates. None for a project with no tasks."""
    if not tasks:
        return None
    created = sorted(t.created_at for t in tasks)
    done = sorted(t.done_at for t in tasks if t.done_at is not None)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.step(
        created + [now],
        list(range(1, len(created) + 1)) + [len(created)],
        where="post",
        color="#636363",
        label="scope (tasks created)",
    )
    if done:
        ax.step(done + [now], list(range(1, len(done) + 1)) + [len(done)], where="post", color="#31a354", label="done")
    if forecast.available:
        start = (now, len(done))
        for label, when, style in (
            ("P50", forecast.p50_date, ":"),
            ("P85", forecast.p85_date, "--"),
            ("P95", forecast.p95_date, "-."),
        ):
            if when is not None:
                end = datetime.combine(when, time(18), tzinfo=now.tzinfo)
                ax.plot(
                    [start[0], end], [start[1], len(created)], linestyle=style, color="#3182bd", label=f"{label} {when}"
                )
    if forecast.target_date is not None:
        ax.axvline(
            datetime.combine(forecast.target_date, time(18), tzinfo=now.tzinfo),
            color="#d62728",
            label=f"target {forecast.target_date}",
        )
    ax.set_ylabel("tasks")
    ax.set_title(f"{name}: burn-up and forecast cone", fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    return figure_to_data_uri(fig)
