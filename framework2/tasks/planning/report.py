"""What a project lead reads: the forecast distribution with its percentiles and the target date."""

from __future__ import annotations

import numpy as np

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.planning.montecarlo import Forecast, to_days


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
