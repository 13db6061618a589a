"""What a project lead reads: the forecast distribution with its percentiles and the target date, the
burn-up with the forecast cone, and how past forecasts fared (the calibration backtest)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

import numpy as np

from framework2.tasks.charts import figure_to_data_uri, plt
from framework2.tasks.planning.backtest import LIMITS, BacktestCase, BacktestResult, Coverage, judge
from framework2.tasks.planning.montecarlo import MAX_HORIZON_DAYS, Forecast, to_days
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
            shown = when if when is not None else "beyond 5 years"
            ax.axvline(value, color=colour, linestyle="--", linewidth=1.2, label=f"{label} {shown}")
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


def calibration_chart(result: BacktestResult) -> str | None:
    """Past forecasts against what happened (days from each snapshot: P50-P95 bar, P85 tick, actual dot) and
    the nominal vs observed coverage of P50/P85/P95. None without cases."""
    cases = sorted(result.cases, key=lambda c: (c.snapshot, c.project))
    if not cases:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(cases))

    def days(c: BacktestCase, when: date | None) -> int:
        return (when - c.snapshot).days if when is not None else MAX_HORIZON_DAYS

    left.vlines(x, [days(c, c.p50) for c in cases], [days(c, c.p95) for c in cases], color="#9ecae1", linewidth=3)
    left.scatter(x, [days(c, c.p85) for c in cases], marker="_", color="#08519c", s=60, label="P85", zorder=3)
    with_baseline = [i for i, c in enumerate(cases) if c.baseline and c.baseline.get(85)]
    if with_baseline:
        left.scatter(
            with_baseline,
            [days(cases[i], cases[i].baseline[85]) for i in with_baseline],  # type: ignore[index]
            marker="_",
            color="#969696",
            s=60,
            label="throughput baseline P85",
            zorder=3,
        )
    finished = [i for i, c in enumerate(cases) if c.actual is not None]
    held = [i for i in finished if cases[i].covered[85]]
    missed = [i for i in finished if not cases[i].covered[85]]
    for chosen, colour, label in ((held, "#31a354", "finished by P85"), (missed, "#d62728", "finished after P85")):
        if chosen:
            actual = [days(cases[i], cases[i].actual) for i in chosen]  # type: ignore[arg-type]
            left.scatter(chosen, actual, color=colour, s=14, label=label, zorder=4)
    still_open = [i for i, c in enumerate(cases) if c.actual is None]
    if still_open:
        today = result.now.date()
        left.scatter(
            still_open,
            [days(cases[i], today) for i in still_open],
            marker="^",
            color="#756bb1",
            s=18,
            label="still open (today)",
            zorder=4,
        )
    left.set_xlabel(f"{len(cases)} past moments, oldest first (bar: P50-P95)")
    left.set_ylabel("calendar days after the moment")
    left.legend(fontsize=7, loc="upper left")
    left.set_title("Past forecasts and when the work was actually done", fontsize=10)

    nominal, observed, low, high = [], [], [], []
    for c in result.coverage:
        if c.share is not None and c.low is not None and c.high is not None:
            nominal.append(c.quantile / 100)
            observed.append(c.share)
            low.append(c.share - c.low)
            high.append(c.high - c.share)
    right.plot([0.4, 1.0], [0.4, 1.0], color="#969696", linestyle=":", label="calibrated")
    if nominal:
        right.errorbar(nominal, observed, yerr=[low, high], fmt="o", color="#08519c", capsize=3, label="observed")
    right.set_xlim(0.4, 1.0)
    right.set_ylim(0.0, 1.02)
    right.set_xlabel("percentile (P50, P85, P95)")
    right.set_ylabel("share of cases it held")
    right.set_title(f"Coverage: {result.verdict}", fontsize=10)
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return figure_to_data_uri(fig)


def _coverage_rows(coverage: Sequence[Coverage]) -> list[str]:
    return [
        f"| P{c.quantile} | {c.covered} of {c.decided} | "
        + (f"{c.share:.0%} ({c.low:.0%}-{c.high:.0%})" if c.share is not None else "—")
        + f" | {c.undecided} |"
        for c in coverage
    ]


def calibration_markdown(result: BacktestResult, record: Sequence[Coverage], every_days: int, chart: str | None) -> str:
    """The ppms-calibration artifact: the replay's verdict and coverage, per project, and the track record
    of the forecasts actually published."""
    projects = sorted({c.project for c in result.cases})
    per_project = [
        f"| {project} | {len(cases)} | {sum(1 for c in cases if c.covered[85])} | "
        f"{sum(1 for c in cases if c.covered[85] is False)} | {sum(1 for c in cases if c.covered[85] is None)} |"
        for project in projects
        for cases in [[c for c in result.cases if c.project == project]]
    ]
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items())) or "none"
    scores = [
        s
        for s in (result.scores, result.paired if result.paired and result.scores else None, result.baseline)
        if s is not None
    ]
    if len(scores) == 3 and scores[1].cases == scores[0].cases:
        scores = [scores[0], scores[2]]
    score_lines = [
        "| forecaster | cases | P50 held | P85 held | P95 held | pinball P50 (d) | pinball P85 (d) | P50 / actual |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {'PPMS (baseline cases)' if i == 1 and len(scores) == 3 else sc.forecaster} | {sc.cases} | "
            + " | ".join(f"{c.share:.0%}" if c.share is not None else "—" for c in sc.coverage)
            + f" | {sc.pinball.get(50, float('nan')):.1f} | {sc.pinball.get(85, float('nan')):.1f} | "
            + (f"{sc.median_ratio:.2f}" if sc.median_ratio is not None else "—")
            + " |"
            for i, sc in enumerate(scores)
        ),
    ]
    header = ["| percentile | held | share (95 % interval) | undecided |", "|---|---|---|---|"]
    p85 = next((c for c in record if c.quantile == 85), None)
    record_lines = (
        [
            "## Track record of published forecasts",
            "",
            "The first forecast per project and week that PPMS actually published, against what happened: "
            + (judge(p85)[1] if p85 else "none yet")
            + ".",
            "",
            *header,
            *_coverage_rows(record),
        ]
        if p85 is not None and p85.decided + p85.undecided
        else ["## Track record of published forecasts", "", "No published forecast has come due yet."]
    )
    return "\n".join(
        [
            "# PPMS calibration backtest",
            "",
            f"**{result.verdict}** — {result.reason}.",
            "",
            f"Each past moment (every {every_days} days) was forecast again from only what was known then, with "
            "the models trained on the work finished by then, and compared with when that scope was done. The "
            "12-week throughput Monte Carlo practitioners use ran on the same cases. Pinball loss punishes a date "
            "for being late or early as its percentile says (lower is better); P50 / actual is the median ratio of "
            "the P50 horizon to the actual one (1 is right).",
            "",
            *score_lines,
            "",
            *header,
            *_coverage_rows(result.coverage),
            "",
            "| project | moments | P85 held | P85 missed | undecided |",
            "|---|---:|---:|---:|---:|",
            *(per_project or ["| — | 0 | 0 | 0 | 0 |"]),
            "",
            f"Moments not used: {skipped}. Limits: {LIMITS}.",
            *(["", f"![calibration backtest]({chart})"] if chart else []),
            "",
            *record_lines,
        ]
    )
