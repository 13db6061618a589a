"""The programmatic API the seed promised (``framework2.ppis.get_recommendations()``), in snake_case.

Reads go to the store, so they work without a Prefect server; ``run`` starts the flow in this process.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, MarketPosition, PriceRecommendation


def _latest_completed(system: str) -> AnalysisRun | None:
    with session_scope(open_store()) as session:
        return session.scalars(
            select(AnalysisRun)
            .where(AnalysisRun.system == system, AnalysisRun.status == "completed")
            .order_by(AnalysisRun.started_at.desc())
        ).first()


class PricingAPI:
    """PPIS: the latest recommendations and positions, and why."""

    def latest_run(self) -> dict[str, Any] | None:
        """The newest completed pricing run: its inputs' identity, parameters and outcome."""
        run = _latest_completed("ppis")
        return run.model_dump() if run else None

    def get_recommendations(self, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Recommendations of the newest completed run, largest expected profit effect first."""
        run = _latest_completed("ppis")
        if run is None:
            return []
        query = select(PriceRecommendation).where(PriceRecommendation.run_id == run.id)
        if status:
            query = query.where(PriceRecommendation.status == status)
        query = query.order_by(PriceRecommendation.profit_delta.desc().nulls_last()).limit(limit)
        with session_scope(open_store()) as session:
            return [r.model_dump() for r in session.scalars(query).all()]

    def explain(self, sku: str) -> dict[str, Any] | None:
        """The newest recommendation for ``sku`` with the run it came from (the "show me why")."""
        with session_scope(open_store()) as session:
            rec = session.scalars(
                select(PriceRecommendation)
                .where(PriceRecommendation.sku == sku)
                .order_by(PriceRecommendation.created_at.desc())
            ).first()
            if rec is None:
                return None
            run = session.get(AnalysisRun, rec.run_id)
        return {"recommendation": rec.model_dump(), "run": run.model_dump() if run else None}

    def get_market_position(self) -> list[dict[str, Any]]:
        """Price index and position per SKU from the newest completed run."""
        run = _latest_completed("ppis")
        if run is None:
            return []
        with session_scope(open_store()) as session:
            rows = session.scalars(select(MarketPosition).where(MarketPosition.run_id == run.id)).all()
        return [r.model_dump() for r in rows]

    def run(self, **parameters: Any) -> Any:
        """Run the hourly pricing flow now; returns its ``SystemResult``."""
        from framework2.flows.pricing import hourly_pricing

        return hourly_pricing(**parameters)


class OrchestratorAPI:
    """PSO: system health and the master flow."""

    def get_system_health(self) -> dict[str, dict[str, Any]]:
        """The newest health score per system, with its parts and reasons."""
        from framework2.store.runs import latest_health

        return {code: row.model_dump() for code, row in latest_health(open_store()).items()}

    def run(self, **parameters: Any) -> Any:
        """Run the master flow now; returns its ``OrchestrationReport``."""
        import asyncio

        from framework2.flows.orchestrator import orchestrate

        return asyncio.run(orchestrate(**parameters))


class LaunchAPI:
    """PLOS: release plans, history and runs."""

    def generate_deployment_plan(self, app: str, image: str, **request: Any) -> dict[str, Any]:
        """The steps and manifests of a blue-green release of ``image`` (no cluster needed)."""
        from framework2.tasks.launch.plan import release_plan
        from framework2.tasks.launch.release import ReleaseRequest

        return release_plan(ReleaseRequest(app=app, image=image, **request)).model_dump()

    def get_releases(self, app: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Stored releases, newest first, with their decision and evidence."""
        from framework2.store.releases import recent_releases

        return [r.model_dump() for r in recent_releases(open_store(), app, limit)]

    def release(self, app: str, image: str, **request: Any) -> Any:
        """Run a blue-green release now in this process; returns its ``ReleaseOutcome``."""
        from framework2.flows.launch import blue_green_release
        from framework2.tasks.launch.release import ReleaseRequest

        return blue_green_release(ReleaseRequest(app=app, image=image, **request))


class ProjectManagementAPI:
    """PPMS: the latest forecasts, the ranked backlog, and how far past forecasts held."""

    def get_forecasts(self, project: str | None = None) -> list[dict[str, Any]]:
        """The newest forecast of each project (and its milestones), with the risk factors and the reason."""
        from framework2.store.models import PmForecast

        with session_scope(open_store()) as session:
            query = select(PmForecast).order_by(PmForecast.created_at.desc())
            if project:
                query = query.where(PmForecast.project == project)
            rows = session.scalars(query).all()
            newest_run = {}
            for row in rows:
                newest_run.setdefault(row.project, row.run_id)
            return [r.model_dump() for r in rows if newest_run[r.project] == r.run_id]

    def get_backlog(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest ranking of the open backlog, best first, with each score's parts and why."""
        from framework2.store.models import PmBacklogEntry

        with session_scope(open_store()) as session:
            latest = session.scalars(select(PmBacklogEntry.run_id).order_by(PmBacklogEntry.id.desc())).first()
            rows = session.scalars(
                select(PmBacklogEntry).where(PmBacklogEntry.run_id == latest).order_by(PmBacklogEntry.rank).limit(limit)
            ).all()
            return [r.model_dump() for r in rows]

    def get_calibration(self) -> dict[str, Any] | None:
        """The newest calibration backtest: how often past P50/P85/P95 dates held, and the verdict."""
        from framework2.flows.planning import latest_calibration

        return latest_calibration(open_store())

    def forecast(self, projects: list[str] | None = None) -> Any:
        """Forecast now in this process (all projects by default); returns the summary rows."""
        from framework2.flows.planning import forecast

        return forecast(projects)

    def forecast_file(self, path: str, project: str | None = None, as_of: Any = None, *, trials: int = 10_000) -> Any:
        """Forecast a project of a tasks CSV (your own history), as it stood at the end of ``as_of`` (a date;
        default: the file's latest moment). Nothing is stored. Returns a ``FileForecast`` (``.forecast`` has
        P50/P85/P95, the model and why, and the throughput answer)."""
        from framework2.tasks.planning.history import forecast_file

        return forecast_file(path, project=project, as_of=as_of, trials=trials)

    def backtest_file(self, path: str, project: str | None = None, every_days: int = 28, *, trials: int = 2_000) -> Any:
        """Replay the forecast every ``every_days`` days over a tasks CSV and score it against what happened,
        beside the 12-week throughput baseline. Returns a ``FileBacktest`` (every case, scores, verdict)."""
        from framework2.tasks.planning.history import backtest_file

        return backtest_file(path, project=project, every_days=every_days, trials=trials)


class ProjectOpsAPI:
    """PPOS: the newest health, slip risk and allocation of the portfolio."""

    def _latest_run(self) -> AnalysisRun | None:
        return _latest_completed("ppos")

    def get_health(self, project: str | None = None) -> list[dict[str, Any]]:
        """The newest health of every project (and of "portfolio") with its components and top reason."""
        from framework2.store.models import PpHealth

        run = self._latest_run()
        if run is None:
            return []
        with session_scope(open_store()) as session:
            query = select(PpHealth).where(PpHealth.run_id == run.id).order_by(PpHealth.score)
            if project:
                query = query.where(PpHealth.project == project)
            return [r.model_dump() for r in session.scalars(query)]

    def get_risk(self) -> list[dict[str, Any]]:
        """The newest slip-risk predictions, riskiest first, with drivers and mitigations."""
        from framework2.store.models import PpRisk

        run = self._latest_run()
        if run is None:
            return []
        with session_scope(open_store()) as session:
            rows = session.scalars(select(PpRisk).where(PpRisk.run_id == run.id).order_by(PpRisk.probability.desc()))
            return [r.model_dump() for r in rows]

    def get_allocation(self) -> list[dict[str, Any]]:
        """The newest allocation plan: person, project, week, days."""
        from framework2.store.models import PpAllocation

        with session_scope(open_store()) as session:
            latest = session.scalars(select(PpAllocation.run_id).order_by(PpAllocation.id.desc())).first()
            rows = session.scalars(select(PpAllocation).where(PpAllocation.run_id == latest))
            return [r.model_dump() for r in rows]

    def run(self) -> Any:
        """The full PPOS run (health, dependencies, slip risk, allocation) here and now."""
        from framework2.flows.portfolio import project_operations

        return project_operations()


class ExperienceAPI:
    """PUXT: experiment recommendations, journey fixes, accessibility and performance findings."""

    def get_experiments(self) -> list[dict[str, Any]]:
        """The newest analysis of every experiment: decision, reason, SRM and every comparison."""
        from framework2.store.experience import latest_experiment_results

        return latest_experiment_results(open_store())

    def get_optimizations(self, limit: int = 20) -> list[dict[str, Any]]:
        """What to do next, in this order: experiments to ship or stop, performance regressions and slow pages,
        serious or critical accessibility violations, then journey fixes ranked by extra conversions per week."""
        from framework2.store.experience import (
            latest_experiment_results,
            latest_journey_reports,
            latest_perf_results,
            latest_scans,
        )

        engine = open_store()
        out: list[dict[str, Any]] = []
        for r in latest_experiment_results(engine):
            if r["decision"] in ("ship", "stop"):
                out.append({"kind": "experiment", "title": f"{r['decision']} {r['experiment']}", "reason": r["reason"]})
        for f in latest_perf_results(engine):
            if f["verdict"] in ("regression", "slow"):
                what = f"{f['target']} {f['metric']}".strip()
                out.append({"kind": "performance", "title": f"{f['verdict']}: {what}", "reason": f["details"]})
        for scan in latest_scans(engine):
            serious = [v for v in scan["violations"] if v["impact"] in ("critical", "serious")]
            if serious:
                rules = ", ".join(sorted(v["rule_id"] for v in serious))
                out.append(
                    {"kind": "accessibility", "title": f"fix {rules} on {scan['url']}", "reason": scan["violations"]}
                )
        for report in latest_journey_reports(engine):
            for rec in report["recommendations"]:
                out.append({**rec, "kind": "journey", "finding": rec["kind"], "journey": report["name"]})
        return out[:limit]

    def run(self, **inputs: Any) -> Any:
        """The PUXT system run here and now (inputs override ``[puxt]``)."""
        from framework2.flows.experience import ExperienceInputs, user_experience

        return user_experience(ExperienceInputs(**inputs))


ppis = PricingAPI()
ppos = ProjectOpsAPI()
ppms = ProjectManagementAPI()
plos = LaunchAPI()
puxt = ExperienceAPI()
pso = OrchestratorAPI()
