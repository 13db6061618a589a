"""The PUXT part of the sample world: experiments, journeys and real-user measurements written as files, and the
two loopback servers the demo needs (sample pages for the accessibility scan, a small app to probe).

    inputs = write_experience_files(home)
    with serve_pages() as pages, serve_slow_app(SAMPLE_APP_DELAYS_MS) as app:
        user_experience(experience_inputs(inputs, pages, app))
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from framework2.sample.experiments import sample_experiments
from framework2.sample.journeys import STEPS, sample_journeys
from framework2.sample.performance import sample_rum

# Response times the demo app adds per path: the checkout page is slow enough (p95 > 100 ms) to trip the
# seed's "response time over 100 ms -> scale up" rule; the others are not.
SAMPLE_APP_DELAYS_MS: dict[str, float] = {"/": 15.0, "/product": 40.0, "/checkout": 160.0}
SAMPLE_PAGES = ("index.html", "checkout.html", "signup.html")


@dataclass(frozen=True)
class ExperienceFiles:
    """Where the sample world's PUXT inputs were written."""

    experiments_file: Path
    exposures: Path
    events: Path
    journey_events: Path
    rum: Path


def write_experience_files(home: Path, *, seed: int = 0, n_users: int = 60_000) -> ExperienceFiles:
    """Write the sample experiments (YAML + Parquet), journeys (Parquet) and measurements (CSV) under
    ``home/puxt``; the same files for the same seed."""
    folder = Path(home) / "puxt"
    folder.mkdir(parents=True, exist_ok=True)
    specs, exposures, events = sample_experiments(n_users=n_users, seed=seed, dirty=True)
    files = ExperienceFiles(
        experiments_file=folder / "experiments.yaml",
        exposures=folder / "exposures.parquet",
        events=folder / "events.parquet",
        journey_events=folder / "journeys.parquet",
        rum=folder / "rum.csv",
    )
    files.experiments_file.write_text(
        yaml.safe_dump({"experiments": [s.model_dump(mode="json", exclude_none=True) for s in specs]}, sort_keys=False)
    )
    exposures.to_parquet(files.exposures, index=False)
    events.to_parquet(files.events, index=False)
    sample_journeys(n_users=5000, seed=seed).to_parquet(files.journey_events, index=False)
    sample_rum(seed=seed).to_csv(files.rum, index=False)
    return files


def experience_inputs(files: ExperienceFiles, pages_url: str | None, app_url: str | None) -> dict[str, Any]:
    """The ``user_experience`` flow's inputs for the sample world (as plain data, for a flow parameter)."""
    return {
        "experiments_file": str(files.experiments_file),
        "exposures": str(files.exposures),
        "events": str(files.events),
        "journey_events": str(files.journey_events),
        "journeys": [{"name": "checkout", "steps": list(STEPS), "window": timedelta(days=1), "segment_by": "segment"}],
        "accessibility_urls": [f"{pages_url}/{page}" for page in SAMPLE_PAGES] if pages_url else [],
        "wcag_level": "AA",
        "performance_targets": [
            {"url": f"{app_url}{path}", "app": "web", "namespace": "shop"} for path in SAMPLE_APP_DELAYS_MS
        ]
        if app_url
        else [],
        "rum_sources": [str(files.rum)],
    }
