"""PUXT — user experience: experiments, journeys, accessibility and performance.

Pipeline of ``puxt-user-experience`` (what PSO runs, hourly):

1. ``puxt-experiments`` — validate the experiments file → read exposures and events (files or SQL tables; bad
   rows quarantined with their reason) → per-arm sufficient statistics in one vectorised pass → per experiment:
   SRM check, frequentist, Bayesian and always-valid sequential comparisons with CUPED → ship / keep running /
   stop with the reason, stored → ``framework2.puxt.experiment.decisive`` when an experiment becomes decisive,
   ``framework2.puxt.guardrail.breached`` when a guardrail is, ``framework2.puxt.experiment.srm_detected`` when
   the split stops matching the configuration → one artifact per experiment with a lift chart.
2. ``puxt-journeys`` — per configured funnel: step conversion, drop-off and time to convert by segment, the
   common paths, each step's Markov removal effect → ranked recommendations, stored, with a funnel chart.
3. ``puxt-performance`` — synthetic probes (p50/p95/p99 per phase) of the configured URLs → real-user
   measurements ingested once per file → the newest release against its baseline per page and metric
   (Mann-Whitney U with effect size) → ``framework2.puxt.performance.regressed`` and, when a probe's p95 is over
   the alert threshold, ``framework2.puxt.response_time.exceeded`` (PLOS raises the app's autoscaler on it).
4. ``puxt-accessibility`` (also daily on its own schedule; the system run re-scans when the last scan is
   older than ``ACCESSIBILITY_REFRESH``) — axe-core in Chromium over the configured pages → violations by rule
   and impact stored per page → new violations since the last scan emit ``framework2.puxt.accessibility.regressed``.

A part that is not configured is skipped with what to configure; a part that fails is reported and the others
still run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from framework2.config import JourneySettings, PerformanceTarget, Settings, get_settings
from framework2.errors import DataError
from framework2.events import emit
from framework2.flows.lifecycle import Finish, SystemRun, run_recorded
from framework2.scale import ScaleOut, resolve_scale
from framework2.store import experience as store
from framework2.store.engine import open_store
from framework2.store.runs import jsonable, quarantine
from framework2.systems import SystemResult
from framework2.tasks.experiments.partitions import (
    TABLE_PREFIX,
    ExperimentSources,
    analyse_experiments_in_partitions,
    read_table_source,
)

SYSTEM = "puxt"
MODEL_VERSION = "puxt-1"
ACCESSIBILITY_REFRESH = timedelta(hours=20)
SCAN_BATCH = 10


class ExperienceInputs(BaseModel):
    """What one PUXT run reads; every field left empty comes from ``[puxt]`` in framework2.toml."""

    experiments_file: Path | None = Field(None, description="YAML/TOML file of experiments.")
    exposures: str | None = Field(None, description="Exposures file (CSV/Parquet) or 'table:NAME'.")
    events: str | None = Field(None, description="Metric events file (CSV/Parquet) or 'table:NAME'.")
    journey_events: str | None = Field(None, description="Events for the funnels (default: events).")
    journeys: list[JourneySettings] | None = Field(None, description="Funnels to analyse.")
    accessibility_urls: list[str] | None = Field(None, description="Pages to scan with axe-core.")
    wcag_level: Literal["A", "AA"] | None = Field(None, description="WCAG level the scans check.")
    performance_targets: list[PerformanceTarget] | None = Field(None, description="URLs to probe.")
    rum_sources: list[str] | None = Field(None, description="Files of real-user measurements.")
    baseline_release: str | None = Field(None, description="Release the newest one is compared with.")

    def resolved(self, settings: Settings) -> ExperienceInputs:
        """These inputs with every empty field filled from the settings."""
        puxt = settings.puxt
        return ExperienceInputs(
            experiments_file=self.experiments_file or puxt.experiments_file,
            exposures=self.exposures or puxt.exposures,
            events=self.events or puxt.events,
            journey_events=self.journey_events or puxt.journey_events or self.events or puxt.events,
            journeys=self.journeys if self.journeys is not None else puxt.journeys,
            accessibility_urls=self.accessibility_urls
            if self.accessibility_urls is not None
            else puxt.accessibility_urls,
            wcag_level=self.wcag_level or puxt.wcag_level,
            performance_targets=self.performance_targets
            if self.performance_targets is not None
            else puxt.performance_targets,
            rum_sources=self.rum_sources if self.rum_sources is not None else puxt.rum_sources,
            baseline_release=self.baseline_release or puxt.baseline_release,
        )


def artifact_key(*parts: str) -> str:
    """An artifact key from free text (keys allow lower-case letters, digits and dashes only)."""
    text = "-".join(parts).lower()
    return re.sub(r"[^a-z0-9-]+", "-", text).strip("-") or "puxt"


def read_source(source: str, settings: Settings, *, kind: str) -> pd.DataFrame:
    """A CSV/Parquet file, or ``table:NAME`` in ``[puxt] experimentsDatabase`` (default: the store)."""
    url = (settings.puxt.experiments_database or settings.store_url) if source.startswith(TABLE_PREFIX) else None
    return read_table_source(source, url, kind=kind)


def _run_part(
    step: str, parameters: dict[str, Any], work: Callable[[Engine, Settings, str], dict[str, Any]]
) -> dict[str, Any]:
    """Run one PUXT part as its own recorded run; a part that found nothing to do is recorded as skipped."""
    settings = get_settings()

    def body(run: SystemRun) -> Finish:
        outcome = work(run.engine, settings, run.id)
        return Finish(outcome, status="skipped" if outcome.get("skipped") else "completed", value=outcome)

    end = run_recorded(
        SYSTEM,
        body,
        parameters={"step": step, **jsonable(parameters)},
        engine=open_store(settings),
        model_version=MODEL_VERSION,
    )
    return {"run_id": end.run_id, **end.value}


# --- journeys ---------------------------------------------------------------------------------------------


def journey_record(funnel_result: Any, paths_result: Any, removal_result: Any, recs: list[Any]) -> dict[str, Any]:
    """What the store keeps of one funnel's analysis (tables as records)."""
    return {
        "funnel": {
            "steps": funnel_result.steps,
            "window_seconds": funnel_result.window.total_seconds(),
            "users": funnel_result.users_total,
            "table": funnel_result.table.to_dict("records"),
            "by_segment": funnel_result.by_segment.to_dict("records"),
            "flags": funnel_result.flags.to_dict("records"),
            "notes": funnel_result.notes,
        },
        "paths": {
            "top": paths_result.top.to_dict("records"),
            "sessions": paths_result.sessions,
            "conversions": paths_result.conversions,
            "distinct_paths": paths_result.distinct_paths,
        },
        "removal": {
            "effects": removal_result.effects.to_dict("records"),
            "conversion_probability": removal_result.conversion_probability,
            "note": removal_result.note,
        },
        "recommendations": [
            {
                "kind": r.kind,
                "title": r.title,
                "reason": r.reason,
                "impact": r.impact,
                "step": r.step,
                "segment": r.segment,
                "evidence": r.evidence,
            }
            for r in recs
        ],
    }


def run_journeys(engine: Engine, settings: Settings, run_id: str, inputs: ExperienceInputs) -> dict[str, Any]:
    """Analyse every configured funnel over the journey events; store and publish each."""
    from framework2.tasks.journeys.funnels import funnel, prepare_events
    from framework2.tasks.journeys.paths import paths
    from framework2.tasks.journeys.recommend import recommend
    from framework2.tasks.journeys.removal import removal_effects
    from framework2.tasks.journeys.report import journeys_markdown

    if not inputs.journeys:
        return {"skipped": True, "summary": "no journeys configured: add [[puxt.journeys]] (name, steps)"}
    if not inputs.journey_events:
        return {"skipped": True, "summary": "no journey events configured: set [puxt] journeyEvents (or events)"}
    prepared = prepare_events(read_source(inputs.journey_events, settings, kind="events"))
    quarantine(
        engine,
        system=SYSTEM,
        source=f"journey-events/{inputs.journey_events}",
        rows=jsonable(prepared.quarantined.to_dict("records")),
        run_id=run_id,
    )
    results = []
    for journey in inputs.journeys:
        segment = journey.segment_by if journey.segment_by in prepared.events.columns else None
        goal = journey.steps[-1]
        f = funnel(prepared, journey.steps, window=journey.window, segment_by=segment)
        p = paths(prepared, goal=goal)
        r = removal_effects(prepared, goal)
        recs = recommend(f, p, r)
        store.save_journey_report(engine, run_id, journey.name, journey_record(f, p, r, recs))
        create_markdown_artifact(
            key=artifact_key("puxt-journey", journey.name),
            markdown=f"# PUXT journey: {journey.name}\n\n" + journeys_markdown(f, p, r, recs),
            description=f"PUXT: the {journey.name} funnel and what to fix first",
        )
        top = recs[0].title if recs else "nothing stands out"
        results.append(
            {
                "journey": journey.name,
                "entered": f.entered,
                "converted": f.converted,
                "recommendations": len(recs),
                "top": top,
            }
        )
    summary = "; ".join(
        f"{r['journey']}: {r['converted']}/{r['entered']} converted, first fix: {r['top']}" for r in results
    )
    return {"journeys": results, "quarantined": len(prepared.quarantined), "summary": summary}


@flow(name="puxt-journeys", description="PUXT: funnels, common paths and which step matters most.")
def journeys(events: str | None = None, funnels: list[JourneySettings] | None = None) -> dict[str, Any]:
    """Analyse the funnels (default ``[[puxt.journeys]]``) over the journey events (default ``[puxt]``)."""
    inputs = ExperienceInputs(journey_events=events, journeys=funnels).resolved(get_settings())
    return _run_part(
        "journeys",
        {"events": inputs.journey_events, "journeys": [j.name for j in inputs.journeys or []]},
        lambda engine, settings, run_id: run_journeys(engine, settings, run_id, inputs),
    )


# --- accessibility ----------------------------------------------------------------------------------------


def run_accessibility(engine: Engine, settings: Settings, run_id: str, inputs: ExperienceInputs) -> dict[str, Any]:
    """Scan the pages, compare with each page's last scan, store, publish, and emit on a regression."""
    from framework2.tasks.accessibility.compare import compare, trend
    from framework2.tasks.accessibility.report import accessibility_markdown, trend_chart
    from framework2.tasks.accessibility.scan import PageScan, scan_pages

    urls = list(dict.fromkeys(inputs.accessibility_urls or []))
    if not urls:
        return {"skipped": True, "summary": "no pages configured: set [puxt] accessibilityUrls"}
    level = inputs.wcag_level or "AA"
    previous = [PageScan.from_dict(s) for s in store.latest_scans(engine, urls)]
    scans: list[PageScan] = []
    progress = create_progress_artifact(0.0, description=f"pages scanned with axe-core (of {len(urls)})")
    # Batches cost a browser start each (about a second) and let a person watch a long scan move.
    for start in range(0, len(urls), SCAN_BATCH):
        scans += scan_pages(urls[start : start + SCAN_BATCH], level)  # type: ignore[arg-type]
        update_progress_artifact(progress, 100.0 * len(scans) / len(urls))
    comparison = compare(scans, previous or None)
    store.save_scans(engine, run_id, [{**s.to_dict(), "scanned_at": s.scanned_at} for s in scans])
    history = [
        (at, [PageScan.from_dict(p) for p in pages])
        for at, pages in store.scan_history(engine, since=datetime.now(UTC) - timedelta(days=90))
    ]
    trend_df = trend(history)
    create_markdown_artifact(
        key="puxt-accessibility",
        markdown="# PUXT accessibility\n\n"
        + accessibility_markdown(scans, comparison, trend_df, chart=trend_chart(trend_df)),
        description="PUXT: accessibility violations, what is new, and the trend",
    )
    new = [
        {"url": c.url, "rule": c.rule_id, "impact": c.impact, "nodes": c.nodes_now}
        for c in comparison.new
        if any(p.url == c.url for p in comparison.regressions)
    ]
    if comparison.regressed:
        emit(
            SYSTEM,
            "accessibility.regressed",
            {
                "pages": [p.url for p in comparison.regressions],
                "new_violations": new,
                "level": level,
                "count": len(new),
            },
        )
    failed = [s for s in scans if not s.ok]
    violations = sum(len(s.violations) for s in scans if s.ok)
    summary = (
        f"{len(scans) - len(failed)} of {len(scans)} pages scanned at WCAG {level}: {violations} violations"
        + (f", {len(new)} new since the last scan" if new else "")
        + (f"; could not scan {', '.join(s.url for s in failed)}" if failed else "")
    )
    return {
        "pages": len(scans),
        "failed": [{"url": s.url, "error": s.error} for s in failed],
        "violations": violations,
        "new": new,
        "summary": summary,
    }


@flow(name="puxt-accessibility", description="PUXT: axe-core scans of the configured pages, with regressions.")
def accessibility(urls: list[str] | None = None, level: Literal["A", "AA"] | None = None) -> dict[str, Any]:
    """Scan the pages (default ``[puxt] accessibilityUrls``) at the WCAG level (default ``[puxt] wcagLevel``)."""
    inputs = ExperienceInputs(accessibility_urls=urls, wcag_level=level).resolved(get_settings())
    return _run_part(
        "accessibility",
        {"urls": inputs.accessibility_urls, "level": inputs.wcag_level},
        lambda engine, settings, run_id: run_accessibility(engine, settings, run_id, inputs),
    )


# --- performance ------------------------------------------------------------------------------------------


def ingest_rum_sources(engine: Engine, run_id: str, sources: list[str]) -> dict[str, int]:
    """Store each measurement file once (by content hash); bad rows are quarantined with their reason."""
    from framework2.tasks.performance.rum import prepare_rum

    added = skipped = bad = 0
    for source in sources:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"real-user measurements file {path} does not exist", "fix [puxt] rumSources")
        digest = store.file_digest(path)
        if store.rum_batch_known(engine, digest):
            skipped += 1
            continue
        data = prepare_rum(path)
        bad += quarantine(
            engine,
            system=SYSTEM,
            source=f"rum/{path.name}",
            rows=jsonable(data.quarantined.to_dict("records")),
            run_id=run_id,
        )
        added += store.ingest_rum(engine, digest, str(path), data.valid, run_id)
    return {"measurements_added": added, "files_already_ingested": skipped, "quarantined": bad}


def probe_targets(settings: Settings, targets: list[PerformanceTarget]) -> list[tuple[PerformanceTarget, Any, Any]]:
    """Probe every URL; each with its response-time alert (the seed's rule: over the threshold → scale up)."""
    from framework2.tasks.performance.compare import response_time_alert
    from framework2.tasks.performance.synthetic import probe

    threshold = settings.alerts.response_time_above_ms
    out = []
    progress = create_progress_artifact(0.0, description=f"URLs probed (of {len(targets)})") if targets else None
    for target in targets:
        result = probe(target.url, samples=settings.puxt.probe_samples)
        out.append((target, result, response_time_alert(result, threshold)))
        update_progress_artifact(progress, 100.0 * len(out) / len(targets))  # type: ignore[arg-type]
    return out


def run_performance(engine: Engine, settings: Settings, run_id: str, inputs: ExperienceInputs) -> dict[str, Any]:
    """Probe, ingest measurements, compare the newest release with its baseline; store, publish, emit."""
    from framework2.tasks.performance.compare import compare_rum, regressions_first
    from framework2.tasks.performance.report import performance_chart, performance_markdown
    from framework2.tasks.performance.rum import rum_summary

    targets, sources = list(inputs.performance_targets or []), list(inputs.rum_sources or [])
    if not targets and not sources and not store.releases_by_recency(engine):
        return {"skipped": True, "summary": "nothing to measure: set [puxt] performanceTargets or rumSources"}
    logger = get_run_logger()
    probed = probe_targets(settings, targets)
    ingested = ingest_rum_sources(engine, run_id, sources)
    releases = store.releases_by_recency(engine)
    comparisons, summary_df, candidate, baseline = [], None, None, None
    if releases:
        candidate = releases[0]
        baseline = inputs.baseline_release or (releases[1] if len(releases) > 1 else None)
        if baseline == candidate:
            baseline = None
        measured = store.rum_measurements(engine, [r for r in (baseline, candidate) if r])
        summary_df = rum_summary(measured)
        if baseline:
            comparisons = regressions_first(compare_rum(measured, baseline, candidate))
    alerts = [alert for _, _, alert in probed]
    findings = [
        {
            "kind": "probe",
            "target": t.url,
            "metric": "total",
            "verdict": "failed" if p.status == "failed" else ("slow" if a.fired else "ok"),
            "value": a.observed_ms,
            "details": {**p.to_dict(), "alert": a.to_dict(), "app": t.app},
        }
        for t, p, a in probed
    ] + [
        {
            "kind": "comparison",
            "target": c.page or "",
            "metric": c.metric,
            "release": candidate,
            "baseline": baseline,
            "verdict": c.verdict,
            "value": c.p75_change,
            "details": c.to_dict(),
        }
        for c in comparisons
    ]
    store.save_perf_results(engine, run_id, findings)
    create_markdown_artifact(
        key="puxt-performance",
        markdown="# PUXT performance\n\n"
        + performance_markdown(
            [p for _, p, _ in probed],
            summary_df,
            comparisons,
            alerts=alerts,
            chart=performance_chart(comparisons) if comparisons else None,
            threshold_ms=settings.alerts.response_time_above_ms,
        ),
        description="PUXT: response times, real-user measurements and the release comparison",
    )
    for target, _, alert in probed:
        if not alert.fired:
            continue
        if target.app is None:
            logger.warning("%s is slow (%s) but no PLOS app is configured to scale for it", target.url, alert.message)
            continue
        emit(
            SYSTEM,
            "response_time.exceeded",
            {
                "url": target.url,
                "app": target.app,
                "namespace": target.namespace,
                "p95_ms": round(alert.observed_ms, 1),
                "threshold_ms": alert.threshold_ms,
                "reason": f"{alert.statistic} {alert.observed_ms:.0f} ms > {alert.threshold_ms:g} ms on {target.url}",
            },
        )
    regressions = [c for c in comparisons if c.regression]
    if regressions:
        emit(
            SYSTEM,
            "performance.regressed",
            {
                "release": candidate,
                "baseline": baseline,
                "count": len(regressions),
                "regressions": [
                    {"page": c.page, "metric": c.metric, "p75_change": c.p75_change, "explanation": c.explanation}
                    for c in regressions
                ],
            },
        )
    slow = [t.url for t, _, a in probed if a.fired]
    parts = [f"{len(probed)} URLs probed" + (f" ({len(slow)} over {alerts[0].threshold_ms:g} ms)" if slow else "")]
    if candidate:
        parts.append(
            f"{candidate} vs {baseline}: {len(regressions)} regressions in {len(comparisons)} page metrics"
            if baseline
            else f"only one release measured ({candidate}): nothing to compare yet"
        )
    return {
        "probes": [{"url": t.url, "status": p.status, "p95_ms": a.observed_ms, "slow": a.fired} for t, p, a in probed],
        "rum": ingested,
        "release": candidate,
        "baseline": baseline,
        "regressions": [f"{c.page} {c.metric}" for c in regressions],
        "summary": "; ".join(parts),
    }


@flow(name="puxt-performance", description="PUXT: synthetic probes, real-user measurements, release vs baseline.")
def performance(
    targets: list[PerformanceTarget] | None = None,
    rum_sources: list[str] | None = None,
    baseline_release: str | None = None,
) -> dict[str, Any]:
    """Probe the URLs (default ``[puxt] performanceTargets``), ingest measurements, compare releases."""
    inputs = ExperienceInputs(
        performance_targets=targets, rum_sources=rum_sources, baseline_release=baseline_release
    ).resolved(get_settings())
    return _run_part(
        "performance",
        {"targets": [t.url for t in inputs.performance_targets or []], "rum_sources": inputs.rum_sources},
        lambda engine, settings, run_id: run_performance(engine, settings, run_id, inputs),
    )


# --- experiments ------------------------------------------------------------------------------------------


def analyse_experiments(
    engine: Engine, settings: Settings, run_id: str, inputs: ExperienceInputs, scale: ScaleOut
) -> tuple[list[Any], dict[str, Any]]:
    """Read, aggregate and analyse every experiment where ``scale`` says; the analyses (with their data) and
    the counts. Bad rows are quarantined once."""
    from framework2.tasks.experiments.specs import load_experiments

    specs = load_experiments(inputs.experiments_file)  # type: ignore[arg-type]
    tables = inputs.exposures.startswith(TABLE_PREFIX) or inputs.events.startswith(TABLE_PREFIX)  # type: ignore[union-attr]
    sources = ExperimentSources(
        exposures=inputs.exposures,  # type: ignore[arg-type]
        events=inputs.events,  # type: ignore[arg-type]
        database_url=(settings.puxt.experiments_database or settings.store_url) if tables else None,
    )
    previous = {r["experiment"]: r["analysis"] for r in store.latest_experiment_results(engine)}
    analysed, exposure_rows, event_rows = analyse_experiments_in_partitions(
        specs, sources, previous, datetime.now(UTC), scale
    )
    seen: set[tuple[str, int]] = set()
    for _, d, _ in analysed:  # the shared events' bad rows appear under every experiment: keep them once
        rows = [
            r
            for r in d.quarantined.to_dict("records")
            if (r.get("table"), r.get("row")) not in seen and not seen.add((r.get("table"), r.get("row")))
        ]
        quarantine(engine, system=SYSTEM, source=f"experiments/{d.key}", rows=jsonable(rows), run_id=run_id)
    return analysed, {"specs": len(specs), "exposure_rows": exposure_rows, "event_rows": event_rows}


def run_experiments(
    engine: Engine, settings: Settings, run_id: str, inputs: ExperienceInputs, scale: ScaleOut | None = None
) -> dict[str, Any]:
    """Analyse, store, publish one artifact per experiment, and emit on decisive changes and guardrail breaches."""
    from framework2.tasks.experiments.report import experiment_markdown, history_chart

    missing = [
        name
        for name, value in (
            ("experimentsFile", inputs.experiments_file),
            ("exposures", inputs.exposures),
            ("events", inputs.events),
        )
        if not value
    ]
    if missing:
        return {"skipped": True, "summary": f"no experiments configured: set [puxt] {', '.join(missing)}"}
    before = store.experiment_decisions(engine)
    latest = store.latest_experiment_results(engine)
    breached_before = {
        r["experiment"]: {(b["metric"], b["variation"]) for b in r["guardrails_breached"]} for r in latest
    }
    srm_before = {r["experiment"] for r in latest if r["srm_flagged"]}
    analysed, counts = analyse_experiments(engine, settings, run_id, inputs, resolve_scale(scale, settings.scale))
    store.save_experiment_results(
        engine,
        run_id,
        [
            {
                "spec": spec.model_dump(mode="json"),
                "users": a.users,
                "srm_p_value": a.srm.p_value,
                "srm_flagged": a.srm.flagged,
                "decision": a.decision,
                "reason": a.reason,
                "decisive": a.decisive,
                "guardrails_breached": [b.model_dump(mode="json") for b in a.breached_guardrails],
                "analysis": a.model_dump(mode="json"),
            }
            for spec, _, a in analysed
        ],
    )
    results = []
    for spec, data, a in analysed:
        create_markdown_artifact(
            key=artifact_key("puxt-experiment", spec.key),
            markdown=experiment_markdown(a, data, history=history_chart(store.experiment_history(engine, spec.key))),
            description=f"PUXT: {spec.name or spec.key} — {a.decision}",
        )
        payload = {"experiment": spec.key, "decision": a.decision, "reason": a.reason, "winner": a.winner}
        if a.decisive and before.get(spec.key) != a.decision:
            emit(SYSTEM, "experiment.decisive", {**payload, "previous": before.get(spec.key)})
        if a.srm.flagged and spec.key not in srm_before:  # a broken assignment: nobody should read the results
            emit(SYSTEM, "experiment.srm_detected", {**payload, "p_value": a.srm.p_value, "users": a.users})
        # Hourly runs would repeat a standing breach; a person hears about each breach once.
        if {(b.metric, b.variation) for b in a.breached_guardrails} - breached_before.get(spec.key, set()):
            emit(
                SYSTEM,
                "guardrail.breached",
                {**payload, "guardrails": [b.message for b in a.breached_guardrails]},
            )
        results.append(
            {
                "experiment": spec.key,
                "decision": a.decision,
                "reason": a.reason,
                "srm": a.srm.flagged,
                "users": sum(a.users.values()),
            }
        )
    decided = {d: sum(r["decision"] == d for r in results) for d in ("ship", "keep running", "stop")}
    summary = f"{len(results)} experiments: " + ", ".join(f"{n} {d}" for d, n in decided.items() if n)
    return {"experiments": results, **counts, "summary": summary}


@flow(name="puxt-experiments", description="PUXT: A/B test analysis with a ship / keep running / stop decision.")
def experiments(
    experiments_file: Path | None = None,
    exposures: str | None = None,
    events: str | None = None,
    scale: ScaleOut | None = None,
) -> dict[str, Any]:
    """Analyse the experiments (default ``[puxt] experimentsFile``) over the exposure and event data, in process
    or on Dask (default ``[scale]``)."""
    settings = get_settings()
    inputs = ExperienceInputs(experiments_file=experiments_file, exposures=exposures, events=events).resolved(settings)
    where = resolve_scale(scale, settings.scale)
    return _run_part(
        "experiments",
        {
            "experiments_file": inputs.experiments_file,
            "exposures": inputs.exposures,
            "events": inputs.events,
            "scale": where.model_dump(exclude_none=True),
        },
        lambda engine, settings, run_id: run_experiments(engine, settings, run_id, inputs, where),
    )


# --- the system run ---------------------------------------------------------------------------------------


def accessibility_due(engine: Engine, now: datetime) -> bool:
    """Whether the newest stored scan is older than ``ACCESSIBILITY_REFRESH`` (or there is none)."""
    scans = store.latest_scans(engine)
    newest = max((s["scanned_at"] for s in scans if s["scanned_at"]), default=None)
    return newest is None or now - newest >= ACCESSIBILITY_REFRESH


@flow(name="puxt-user-experience", description="PUXT system run: experiments, journeys, performance, accessibility.")
def user_experience(inputs: ExperienceInputs | None = None) -> SystemResult:
    """Every PUXT part that is configured and switched on; a failing part is reported and the others still run."""
    settings = get_settings()
    engine = open_store(settings)
    wanted = (inputs or ExperienceInputs()).resolved(settings)
    flags = settings.puxt
    parts: list[tuple[str, bool, Callable[[], dict[str, Any]]]] = [
        (
            "experiments",
            flags.ab_testing_enabled,
            lambda: experiments(wanted.experiments_file, wanted.exposures, wanted.events),
        ),
        ("journeys", True, lambda: journeys(wanted.journey_events, wanted.journeys)),
        (
            "performance",
            flags.performance_monitoring,
            lambda: performance(wanted.performance_targets, wanted.rum_sources, wanted.baseline_release),
        ),
        (
            "accessibility",
            flags.accessibility_checks and accessibility_due(engine, datetime.now(UTC)),
            lambda: accessibility(wanted.accessibility_urls, wanted.wcag_level),
        ),
    ]
    outcomes: dict[str, Any] = {}
    failed: list[str] = []

    def body(_run: SystemRun) -> Finish:
        for name, enabled, run in parts:
            if not enabled:
                outcomes[name] = {"skipped": True, "summary": "switched off or not due"}
                continue
            try:
                outcomes[name] = run()
            except Exception as exc:  # one broken input must not hide the other parts' findings
                get_run_logger().error("PUXT %s failed: %s", name, exc)
                failed.append(f"{name}: {exc}")
                outcomes[name] = {"failed": True, "summary": f"failed: {exc}"}
        ran = [n for n, o in outcomes.items() if not o.get("skipped")]
        return Finish(outcomes, status="failed" if failed and len(failed) == len(ran) else "completed")

    end = run_recorded(
        SYSTEM,
        body,
        parameters={"step": "system", **jsonable(wanted.model_dump(exclude_none=True))},
        engine=engine,
        model_version=MODEL_VERSION,
    )
    run_id, status = end.run_id, end.status
    ran = [n for n, o in outcomes.items() if not o.get("skipped")]
    summary = "; ".join(f"{name}: {o.get('summary', '')}" for name, o in outcomes.items() if not o.get("skipped"))
    summary = summary or "nothing configured: set the [puxt] keys (experimentsFile, journeys, performanceTargets, ...)"
    if status == "failed":
        raise RuntimeError(summary)
    return SystemResult(
        system=SYSTEM,
        run_id=run_id,
        summary=summary,
        quality=1.0 - (len(failed) / len(ran) if ran else 0.0),
        metrics=jsonable(outcomes),
    )
