"""Scale-out benchmark: PPIS pricing in one piece in process vs in partitions on a local Dask cluster.

Usage: .venv/bin/python bench/scale_bench.py [--skus 40000 --days 120 --workers 2] [--quick]

The same market is priced twice with ``price_catalogue`` (elasticities, pooling, guarded optimum, projection):
once in the flow's process in one piece (the baseline), once cut into whole categories on a
``distributed.LocalCluster`` of ``--workers`` single-threaded worker processes (started and warmed up before
the clock runs, as a standing cluster would be). The two results must be identical; the ratio says what the cluster
buys on this machine, partition overhead and data transfer to the workers included. On a 2-core machine two
workers can at best halve the time, and the transfer of the sales rows to the workers eats into that: the
point of the figure is that partitioning costs little, so more machines help.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from results import record  # bench/results.py: a row for run_all.py's summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=40_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="10,000 SKUs")
    args = parser.parse_args()
    skus = 10_000 if args.quick else args.skus

    home = Path(tempfile.mkdtemp(prefix="f2-scale-bench-"))
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

    from distributed import LocalCluster
    from pandas.testing import assert_frame_equal
    from prefect.testing.utilities import prefect_test_harness

    from framework2.config import PricingGuardrails
    from framework2.sample.market import generate_market
    from framework2.scale import ScaleOut
    from framework2.tasks.pricing import baseline_units, price_positions
    from framework2.tasks.pricing.partitions import price_catalogue

    t0 = time.perf_counter()
    market = generate_market(n_skus=skus, n_competitors=3, n_days=args.days, seed=1)
    catalogue = market.catalogue.copy()
    # The sample's five categories, each split in eight: a catalogue's departments rather than its aisles.
    catalogue["category"] = catalogue["category"] + "-" + (np.arange(len(catalogue)) % 8).astype(str)
    positions = price_positions(catalogue, market.offers, [], "avg")
    baseline = baseline_units(market.sales)
    print(f"market: {skus:,} SKUs, {len(market.sales):,} sales rows, generated in {time.perf_counter() - t0:.1f} s")

    policy = PricingGuardrails()
    with prefect_test_harness(server_startup_timeout=60):
        t0 = time.perf_counter()
        here = price_catalogue(catalogue, market.sales, positions, baseline, policy, ScaleOut(runner="in-process"))
        in_process = time.perf_counter() - t0
        print(f"in process, one piece: {in_process:.2f} s")

        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            scale = ScaleOut(runner="dask", dask_address=cluster.scheduler_address)
            # A standing cluster's workers have imported framework2 long ago: warm them up off the clock.
            price_catalogue(catalogue, market.sales, positions, baseline, policy, scale)
            t0 = time.perf_counter()
            there = price_catalogue(catalogue, market.sales, positions, baseline, policy, scale)
            on_dask = time.perf_counter() - t0
    print(f"Dask, {args.workers} workers, {2 * args.workers} partitions: {on_dask:.2f} s")
    identical = True
    try:
        assert_frame_equal(there, here)
    except AssertionError as exc:
        identical = False
        print(f"RESULTS DIFFER: {exc}")
    print(f"identical results: {identical}; {in_process / on_dask:.2f}x the in-process time")
    record(
        "scale",
        f"PPIS pricing on Dask ({args.workers} workers)",
        f"{skus:,} SKUs, {len(market.sales) / 1e6:.1f} M sales rows",
        on_dask,
        baseline="in process, one piece",
        baseline_seconds=in_process,
        target="identical to in process",
        met=identical,
        note="partition overhead and transfer included",
    )
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
