"""The demo's sample world, built and run: shared by `framework2 demo` and `bench/orchestration_bench.py`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from framework2.config import Settings


def run_sample_world(
    settings: Settings,
    *,
    skus: int = 300,
    seed: int = 7,
    say: Callable[[str], Any] = print,
    status: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
) -> tuple[Any, Engine]:
    """Seed the store with the sample world, serve its feeds, pages and app on loopback, and run the PSO master
    flow (every system, as subflows) over it; return the orchestration report and the store's engine."""
    from framework2.flows.orchestrator import orchestrate
    from framework2.sample.experience import SAMPLE_APP_DELAYS_MS, experience_inputs, write_experience_files
    from framework2.sample.pages import serve_pages
    from framework2.sample.performance import serve_slow_app
    from framework2.sample.world import (
        FeedServer,
        build_routes,
        sample_market,
        save_feed_blocks,
        seed_projects,
        seed_release_history,
        seed_requirements,
        seed_store,
    )
    from framework2.store.engine import open_store, redact

    step = status or (lambda _text: contextlib.nullcontext())
    engine = open_store(settings)
    with step("generating the sample world…"):
        market = sample_market(skus, seed)
        seed_store(engine, market)
        releases = seed_release_history(engine, seed=seed)
        projects = seed_projects(engine)
        routes, feeds = build_routes(market)
    say(
        f"sample world: {len(market.catalogue)} SKUs, {len(market.sales)} sales rows, "
        f"{len(feeds)} competitor feeds, {releases} past releases, {projects} project tasks, "
        f"store {redact(str(engine.url))}"
    )
    with step("writing sample experiments, journeys and real-user measurements…"):
        experience_files = write_experience_files(Path(settings.home), seed=seed)
    with FeedServer(routes) as server, serve_pages() as pages, serve_slow_app(SAMPLE_APP_DELAYS_MS) as app:
        names = save_feed_blocks(feeds, server.base_url)
        requirements = seed_requirements(settings.home)
        with _feeds_allowed(server.base_url):
            report = asyncio.run(
                orchestrate(
                    execution="subflow",
                    system_parameters={
                        "ppis": {"feeds": names, "approval_wait_seconds": 0},
                        "pces": {"sources": [requirements]},
                        "puxt": {"inputs": experience_inputs(experience_files, pages, app)},
                    },
                )
            )
    return report, engine


@contextlib.contextmanager
def _feeds_allowed(base_url: str) -> Iterator[None]:
    """Name the sample feed server (on loopback) in ppis.feed_host_allowlist while the demo runs.

    A feed may reach a loopback address only when the allowlist names its host. Set through the environment so
    the settings the flows read (``get_settings()``) see it; restored afterwards.
    """
    from framework2.config import get_settings

    key = "FRAMEWORK2_PPIS__FEED_HOST_ALLOWLIST"
    before = os.environ.get(key)
    os.environ[key] = json.dumps([*get_settings().ppis.feed_host_allowlist, urlsplit(base_url).netloc])
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
        get_settings.cache_clear()
