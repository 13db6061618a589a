"""Scale-out: the heavy computations give the same answers in one piece, in partitions, and on a Dask cluster.

The cluster is a real ``distributed.LocalCluster`` with two worker processes on loopback; its workers reach
the session's Prefect server through the environment they inherit, as workers on other machines would through
``PREFECT_API_URL``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter
from sqlalchemy import select

from framework2.config import PricingGuardrails, ScaleSettings, Settings, get_settings
from framework2.errors import Framework2Error
from framework2.flows.pricing import hourly_pricing
from framework2.sample.experience import write_experience_files
from framework2.sample.market import generate_market
from framework2.sample.projects import sample_projects
from framework2.sample.world import sample_market, seed_store
from framework2.scale import ScaleOut, balanced_partitions, partition_count, resolve_scale, run_partitions
from framework2.store.engine import open_store, session_scope
from framework2.store.models import AnalysisRun, PriceRecommendation
from framework2.store.planning import load_dependencies, load_people, load_projects, load_tasks, store_batch
from framework2.tasks.experiments.partitions import ExperimentSources, analyse_experiments_in_partitions
from framework2.tasks.experiments.specs import load_experiments
from framework2.tasks.planning.partitions import forecast_projects, run_seed
from framework2.tasks.pricing import baseline_units, price_positions
from framework2.tasks.pricing.elasticity import PRIOR_MEAN
from framework2.tasks.pricing.partitions import price_catalogue, split_catalogue

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def dask_address(prefect_server: str) -> Iterator[str]:
    """Two single-threaded worker processes, started after the Prefect server so they inherit its URL."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def market() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    """A market with 15 categories (the sample's five, each split in three) and a few odd SKUs."""
    m = generate_market(n_skus=900, n_competitors=3, n_days=120, seed=3)
    catalogue = m.catalogue.copy()
    catalogue["category"] = catalogue["category"] + "-" + (np.arange(len(catalogue)) % 3).astype(str)
    catalogue.loc[catalogue.index[:4], "category"] = None  # uncategorised SKUs pool together as "(none)"
    # A category that sold nothing: its SKUs take the store's estimate in any partition.
    catalogue.loc[catalogue.index[4:8], "category"] = "new-range"
    sales = m.sales[~m.sales["sku"].isin(catalogue["sku"].iloc[4:8])]
    positions = price_positions(catalogue, m.offers, [], "avg")
    return catalogue, sales, positions, baseline_units(sales)


def executed_per_worker(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        return client.run(lambda dask_worker: dask_worker.state.executed_count)


def in_one_piece(market: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]) -> pd.DataFrame:
    catalogue, sales, positions, baseline = market
    return price_catalogue(catalogue, sales, positions, baseline, PricingGuardrails(), ScaleOut(runner="in-process"))


# --- choosing and cutting ----------------------------------------------------------------------------------------


def test_balanced_partitions_keep_every_key_once_and_even_out_the_weights() -> None:
    weights = {f"c{i}": float(w) for i, w in enumerate([90, 10, 40, 40, 30, 30, 20, 5, 5, 1])}
    groups = balanced_partitions(weights, 3)
    assert sorted(k for g in groups for k in g) == sorted(weights)
    loads = [sum(weights[k] for k in g) for g in groups]
    assert max(loads) - min(loads) <= 10  # 271 split as 90 / 91 / 90
    assert groups == balanced_partitions(weights, 3)  # deterministic
    assert all(g == sorted(g, key=list(weights).index) for g in groups)  # original order inside a group
    assert balanced_partitions({"a": 1.0}, 8) == [["a"]]  # never an empty partition
    with pytest.raises(ValueError, match="at least 1"):
        balanced_partitions(weights, 0)


def test_the_runs_choice_overrides_the_config_field_by_field() -> None:
    configured = ScaleSettings(runner="dask", dask_address="tcp://10.0.0.5:8786", partitions=6)
    assert resolve_scale(None, configured) == ScaleOut(runner="dask", dask_address="tcp://10.0.0.5:8786", partitions=6)
    assert resolve_scale(ScaleOut(partitions=2), configured).partitions == 2
    assert resolve_scale(ScaleOut(runner="in-process"), configured).runner == "in-process"
    assert resolve_scale(None, ScaleSettings()) == ScaleOut(runner="in-process", partitions=0)
    assert ScaleOut(dask_address="scheduler:8786").dask_address == "tcp://scheduler:8786"


def test_dask_without_an_address_or_with_a_bad_one_is_refused_with_what_to_do() -> None:
    with pytest.raises(Framework2Error, match="runner 'dask' needs a scheduler address") as missing:
        resolve_scale(ScaleOut(runner="dask"), ScaleSettings())
    assert "daskAddress" in missing.value.hint
    with pytest.raises(Framework2Error, match=r"\[scale\] is invalid: .*must look like tcp://host:8786"):
        resolve_scale(None, ScaleSettings(runner="dask", dask_address="http://scheduler"))


def test_an_unreachable_scheduler_fails_fast_naming_it() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    scale = ScaleOut(runner="dask", dask_address=f"tcp://127.0.0.1:{port}")
    with pytest.raises(Framework2Error, match=f"Dask scheduler at tcp://127.0.0.1:{port} is unreachable") as err:
        run_partitions("x", print, [{}], scale)
    assert "dask scheduler" in err.value.hint
    with pytest.raises(Framework2Error, match="unreachable"):
        partition_count(scale, 10)


def test_partition_count_follows_the_runner() -> None:
    assert partition_count(ScaleOut(runner="in-process"), 50) == 1
    assert partition_count(ScaleOut(runner="in-process", partitions=4), 50) == 4
    assert partition_count(ScaleOut(runner="in-process", partitions=8), 3) == 3  # never more than the work
    assert partition_count(ScaleOut(runner="dask", dask_address="tcp://127.0.0.1:1", partitions=5), 1) == 1


def test_catalogue_partitions_hold_whole_categories_and_every_sales_row_once(market) -> None:  # type: ignore[no-untyped-def]
    catalogue, sales, _, _ = market
    parts = split_catalogue(catalogue, sales, 4)
    assert len(parts) == 4
    cats = [set(c["category"].fillna("(none)")) for c, _ in parts]
    assert all(a.isdisjoint(b) for i, a in enumerate(cats) for b in cats[i + 1 :])
    assert sorted(sku for c, _ in parts for sku in c["sku"]) == sorted(catalogue["sku"])
    assert sum(len(s) for _, s in parts) == len(sales)
    for c, s in parts:
        assert set(s["sku"]) <= set(c["sku"])
        assert s.index.is_monotonic_increasing  # original row order: the fits add up in the same order


# --- same answers --------------------------------------------------------------------------------------------


def test_pricing_in_partitions_equals_pricing_in_one_piece(market) -> None:  # type: ignore[no-untyped-def]
    catalogue, sales, positions, baseline = market
    whole = in_one_piece(market)
    cut = price_catalogue(
        catalogue, sales, positions, baseline, PricingGuardrails(), ScaleOut(runner="in-process", partitions=5)
    )
    assert_frame_equal(cut, whole)
    unsold = whole.loc[catalogue["sku"].iloc[4:8].astype(str), "elasticity"]
    assert unsold.nunique() == 1 and np.isfinite(unsold.iloc[0]) and unsold.iloc[0] != PRIOR_MEAN


def test_pricing_on_a_two_worker_dask_cluster_equals_the_in_process_run(market, dask_address: str) -> None:  # type: ignore[no-untyped-def]
    catalogue, sales, positions, baseline = market
    before = executed_per_worker(dask_address)
    on_dask = price_catalogue(
        catalogue, sales, positions, baseline, PricingGuardrails(), ScaleOut(runner="dask", dask_address=dask_address)
    )
    assert_frame_equal(on_dask, in_one_piece(market))
    # Two single-threaded workers: four partitions (twice the threads), and both workers priced some.
    done = {w: n - before.get(w, 0) for w, n in executed_per_worker(dask_address).items()}
    assert sum(done.values()) == 4 and all(n > 0 for n in done.values()), done


def test_a_failing_partition_on_dask_fails_the_computation_with_its_error(market, dask_address: str) -> None:  # type: ignore[no-untyped-def]
    catalogue, sales, positions, baseline = market
    broken = catalogue.drop(columns=["cost"])  # caught only where the partitions price
    with pytest.raises(Exception, match="catalogue is missing column"):
        price_catalogue(
            broken,
            sales,
            positions,
            baseline,
            PricingGuardrails(),
            ScaleOut(runner="dask", dask_address=dask_address, partitions=3),
        )


def test_ppms_forecasts_on_dask_equal_the_in_process_ones(dask_address: str, tmp_path: Path) -> None:
    now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    engine = open_store(Settings(home=tmp_path, store={"url": f"sqlite:///{tmp_path / 'store.db'}"}))
    store_batch(engine, sample_projects(now=now, seed=4), "sample")  # as the sync stores it: bad rows set aside
    args = (load_projects(engine), load_tasks(engine), load_dependencies(engine), load_people(engine))
    common = {"now": now, "trials": 2_000, "seed": run_seed("run-1"), "min_history_items": 30}
    here = forecast_projects(*args, ScaleOut(runner="in-process"), **common)
    there = forecast_projects(*args, ScaleOut(runner="dask", dask_address=dask_address, partitions=2), **common)

    assert [f.project for f in there] == [p.key for p in args[0]] and len(there) >= 2
    for a, b in zip(here, there, strict=True):
        assert a.model_dump(exclude={"finish"}) == b.model_dump(exclude={"finish"})
        assert (a.finish is None and b.finish is None) or np.array_equal(a.finish, b.finish)
    assert run_seed("run-1") == 1_315_296_251  # the same in every process, unlike hash()


def test_experiments_analysed_on_dask_equal_the_in_process_analysis(dask_address: str, tmp_path: Path) -> None:
    files = write_experience_files(tmp_path, seed=2, n_users=20_000)
    specs = load_experiments(files.experiments_file)
    sources = ExperimentSources(exposures=str(files.exposures), events=str(files.events))
    as_of = datetime(2030, 1, 1, tzinfo=UTC)
    here, x_rows, e_rows = analyse_experiments_in_partitions(specs, sources, {}, as_of, ScaleOut(runner="in-process"))
    there, *rows = analyse_experiments_in_partitions(
        specs, sources, {}, as_of, ScaleOut(runner="dask", dask_address=dask_address, partitions=3)
    )

    assert len(specs) >= 3 and rows == [x_rows, e_rows]
    for (spec_a, data_a, analysis_a), (spec_b, data_b, analysis_b) in zip(here, there, strict=True):
        assert spec_a == spec_b
        assert analysis_a.model_dump() == analysis_b.model_dump()
        assert data_a.stats == data_b.stats and data_a.users == data_b.users
        assert_frame_equal(data_a.quarantined, data_b.quarantined)
    assert any(len(data.quarantined) for _, data, _ in there)  # the dirty rows were seen in the partitions too


def test_hourly_pricing_run_on_dask_stores_what_the_in_process_run_stores(
    dask_address: str, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAMEWORK2_PPIS__PRICING_OPTIMIZATION", "advisory")  # both runs read the same prices
    get_settings.cache_clear()
    engine = open_store()
    seed_store(engine, sample_market(n_skus=120, seed=8))

    here = hourly_pricing(feeds=[], approval_wait_seconds=0)
    there = hourly_pricing(feeds=[], approval_wait_seconds=0, scale=ScaleOut(runner="dask", dask_address=dask_address))

    assert here.status == there.status == "completed"
    columns = [c for c in PriceRecommendation.model_fields if c not in ("id", "run_id", "created_at")]
    stored = {}
    with session_scope(engine) as session:
        for result in (here, there):
            rows = session.scalars(select(PriceRecommendation).where(PriceRecommendation.run_id == result.run_id))
            stored[result.run_id] = sorted(tuple(getattr(r, c) for c in columns) for r in rows)
        run = session.get(AnalysisRun, there.run_id)
        assert run is not None and run.parameters["scale"] == {
            "runner": "dask",
            "dask_address": dask_address,
            "partitions": 0,
        }
    assert len(stored[here.run_id]) >= 100 and stored[here.run_id] == stored[there.run_id]

    async def partition_subflows() -> list[str]:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["ppis-price-partitions"])),
                flow_run_filter=FlowRunFilter(parent_flow_run_id=None),
            )
        return [r.state_name for r in runs]

    assert "Completed" in asyncio.run(partition_subflows())  # the partitions ran as a sub-flow the UI shows
