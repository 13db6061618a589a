"""PUXT experiments benchmark: exposures and events to per-arm statistics and analyses, vs plain pandas.

Usage: .venv/bin/python bench/experiments_bench.py [--rows 10000000 --experiments 5] [--events N] [--quick]

Workload (``framework2.sample.experiments.large_dataset``): ``--rows`` exposure rows over ``--experiments``
experiments (2 or 3 arms; a binomial, a mean and a ratio metric each; 14-day CUPED pre-period) from a
population of rows/4 users, and ``--events`` events (default rows/2: 10 % purchases, 40 % sessions, 40 %
clicks, 10 % page views no metric uses). Timed: ``aggregate_many`` over all experiments plus ``analyse`` of
each, from in-memory DataFrames (best of ``--repeat``), for three representations of the same data:

- **categorical**: every text column a pandas categorical, user ids sharing one dictionary between the two
  tables: what ``load_tables`` returns for Parquet/CSV files (and ``normalise_tables`` for frames). This is
  the row held to the target;
- **int64 ids**: integer user ids, text names;
- **text ids**: every text column Python strings (a DataFrame built by hand or read without the loaders).

A separate row writes both tables to Parquet in a temporary directory (not timed) and times ``load_tables``
(reading plus dictionary encoding) followed by the same aggregation and analyses, end to end.

The baseline is the straightforward pandas version, run on the text-id frames: per experiment, filter the
exposures, group by user for the first exposure and variation (dropping users seen in two), merge the
metric events on user, filter the metric window and the pre-period, group by user for per-user values, then
group by variation for mean and variance (plus the covariate moments, the same work CUPED needs). Its arm
means are checked against ours.

Each row runs in a fresh Python process so that its peak memory (``getrusage`` max RSS, which includes the
input frames, also shown alone) belongs to that row only. Exits non-zero only when something crashes;
missing the target is reported, not fatal.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from results import record, text_table  # bench/results.py: a row for run_all.py's summary, the tables

TARGET_SECONDS = 10.0


def rss_mb() -> float:
    """Current resident memory of this process."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def ours(specs, exposures, events):  # type: ignore[no-untyped-def]
    """The system's path: one aggregation pass, then one analysis per experiment."""
    from framework2.tasks.experiments.analysis import analyse
    from framework2.tasks.experiments.data import aggregate_many

    data = aggregate_many(specs, exposures, events)
    return data, {s.key: analyse(s, data[s.key].stats) for s in specs}


def baseline(specs, exposures, events):  # type: ignore[no-untyped-def]
    """Plain pandas: merges and groupbys per experiment, arm means/variances (and covariate moments)."""
    import pandas as pd

    means = {}
    for spec in specs:
        start, end = pd.Timestamp(spec.start), pd.Timestamp(spec.end)
        pre = pd.Timedelta(days=spec.pre_period_days)
        x = exposures[exposures["experiment"] == spec.key]
        x = x[(x["timestamp"] >= start) & (x["timestamp"] < end)]
        users = x.groupby("user").agg(
            first=("timestamp", "min"), variation=("variation", "first"), arms=("variation", "nunique")
        )
        users = users.loc[users["arms"] == 1, ["first", "variation"]]
        names = sorted({m.event for m in spec.metrics} | {m.denominator_event for m in spec.metrics} - {None})
        ev = events[events["event"].isin(names)].merge(users, left_on="user", right_index=True)
        post = ev[(ev["timestamp"] >= ev["first"]) & (ev["timestamp"] < end)]
        prior = ev[(ev["timestamp"] < ev["first"]) & (ev["timestamp"] >= ev["first"] - pre)]
        per_user = {}
        for label, part in (("post", post), ("pre", prior)):
            agg = part.groupby(["user", "event"])["value"].agg(["count", "sum"]).unstack("event", fill_value=0)
            per_user[label] = agg.reindex(users.index, fill_value=0)
        for metric in spec.metrics:
            post_u, pre_u = per_user["post"], per_user["pre"]
            count, total = post_u.get(("count", metric.event), 0), post_u.get(("sum", metric.event), 0)
            frame = pd.DataFrame({"variation": users["variation"]})
            if metric.kind == "binomial":
                frame["y"] = (count > 0) * 1.0
                frame["x"] = (pre_u.get(("count", metric.event), 0) > 0) * 1.0
            elif metric.kind == "mean":
                frame["y"], frame["x"] = total, pre_u.get(("sum", metric.event), 0)
                if metric.missing == "exclude":
                    frame = frame[count > 0]
            else:
                frame["y"], frame["x"] = total, pre_u.get(("sum", metric.event), 0)
                frame["d"] = post_u.get(("sum", metric.denominator_event), 0)
                frame = frame[frame["d"] != 0]
            frame["xy"] = frame["x"] * frame["y"]
            stats = frame.groupby("variation").agg(["mean", "var"])
            for variation, row in stats.iterrows():
                y_mean = row[("y", "mean")]
                if metric.kind == "ratio":
                    y_mean /= row[("d", "mean")]
                means[(spec.key, metric.name, str(variation))] = float(y_mean)
    return means


def our_means(data) -> dict:  # type: ignore[no-untyped-def]
    out = {}
    for key, exp in data.items():
        for metric, arms in exp.stats.items():
            for variation, arm in arms.items():
                if arm.n:
                    out[(key, metric, variation)] = arm.total / (arm.den_total if arm.den_total else arm.n)
    return out


def run_case(case: str, args: argparse.Namespace) -> dict[str, object]:
    """One row of the table, in this (fresh) process."""
    from framework2.sample.experiments import large_dataset

    ids = {"categorical": "category", "int": "int", "text": "text", "parquet": "text", "baseline": "text"}[case]
    start = time.perf_counter()
    specs, exposures, events = large_dataset(
        args.rows, args.experiments, n_events=args.events, seed=args.seed, user_ids=ids
    )
    out: dict[str, object] = {"generate": time.perf_counter() - start}
    ours(specs, exposures.head(1000), events.head(1000))  # warm-up: imports and first calls
    if case == "parquet":
        from framework2.tasks.experiments.data import load_tables

        with tempfile.TemporaryDirectory(prefix="puxt-bench-") as tmp:
            x_path, e_path = Path(tmp) / "exposures.parquet", Path(tmp) / "events.parquet"
            exposures.to_parquet(x_path)
            events.to_parquet(e_path)
            out["file_mb"] = (x_path.stat().st_size + e_path.stat().st_size) / 2**20
            del exposures, events
            gc.collect()
            out["input_mb"] = rss_mb()
            start = time.perf_counter()
            exposures, events = load_tables(x_path, e_path)
            out["load"] = time.perf_counter() - start
            start = time.perf_counter()
            ours(specs, exposures, events)
            out["seconds"] = time.perf_counter() - start + out["load"]  # type: ignore[operator]
    else:
        out["input_mb"] = rss_mb()
        fn = (
            (lambda: baseline(specs, exposures, events))
            if case == "baseline"
            else (lambda: ours(specs, exposures, events))
        )
        out["seconds"], result = best_of(1 if case == "baseline" else args.repeat, fn)
        if case == "baseline":
            data, _ = ours(specs, exposures, events)
            mine = our_means(data)
            out["max_diff"] = max(abs(mine[k] - v) / max(abs(v), 1e-12) for k, v in result.items())  # type: ignore[union-attr]
            out["compared"] = len(result)  # type: ignore[arg-type]
        else:
            from framework2.tasks.experiments.analysis import analyse

            data, _ = result  # type: ignore[misc]
            out["analyse"], _ = best_of(args.repeat, lambda: [analyse(s, data[s.key].stats) for s in specs])
            out["users"] = sum(sum(d.users.values()) for d in data.values())
            out["multiple"] = sum(d.multiple_exposures for d in data.values())
            out["attributed"] = sum(d.events_attributed for d in data.values())
    out["peak_mb"] = peak_mb()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every row in its own process and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="exposure rows")
    parser.add_argument("--experiments", type=int, default=5)
    parser.add_argument("--events", type=int, default=None, help="event rows (default rows/2)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per in-memory row (best is shown)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the (slow) pandas baseline")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200,000 rows, one repeat")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one row, print JSON
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeat = 200_000, 1
    if args.events is None:
        args.events = args.rows // 2
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return 0

    cases = ["categorical", "int", "text", "parquet"] + ([] if args.no_baseline else ["baseline"])
    results = {}
    for case in cases:
        cmd = [sys.executable, __file__, "--case", case, "--rows", str(args.rows), "--events", str(args.events)]
        cmd += ["--experiments", str(args.experiments), "--repeat", str(args.repeat), "--seed", str(args.seed)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        results[case] = json.loads(done.stdout.strip().splitlines()[-1])

    size = f"{args.rows:,} exposures + {args.events:,} events, {args.experiments} experiments"
    base = results.get("baseline", {}).get("seconds")
    labels = {
        "categorical": "aggregate_many + analyse, categorical (as loaded)",
        "int": "aggregate_many + analyse, int64 user ids",
        "text": "aggregate_many + analyse, text ids (Python str)",
        "parquet": "load_tables(Parquet) + aggregate_many + analyse",
    }
    rows = []
    for case, label in labels.items():
        r = results[case]
        verdict = "PASS" if r["seconds"] < TARGET_SECONDS else "MISS"
        target = f"< {TARGET_SECONDS:.0f} s" if case == "categorical" else f"(< {TARGET_SECONDS:.0f} s)"
        ratio = f"{base / r['seconds']:.1f}x" if base else ""
        rows.append(
            (
                label,
                size,
                f"{r['seconds']:.2f}",
                f"{r['input_mb']:,.0f}",
                f"{r['peak_mb']:,.0f}",
                target,
                verdict,
                ratio,
            )
        )
    if base:
        r = results["baseline"]
        rows.append(
            ("plain pandas baseline, text ids", size, f"{base:.2f}", f"{r['input_mb']:,.0f}", f"{r['peak_mb']:,.0f}",
             "", "", "1.0x")
        )  # fmt: skip
    header = ("workload", "size", "seconds", "input MB", "peak MB", "target", "result", "baseline / ours")
    print(text_table(header, rows))
    print()
    cat, pq = results["categorical"], results["parquet"]
    print(
        f"of which analyse (all {args.experiments} experiments): {cat['analyse'] * 1000:.0f} ms; "
        f"Parquet: {pq['file_mb']:.0f} MB on disk, load_tables {pq['load']:.2f} s of the {pq['seconds']:.2f} s"
    )
    print(
        f"analysed {cat['users']:,} user-experiment pairs ({cat['multiple']:,} excluded for multiple exposures), "
        f"{cat['attributed']:,} events attributed; data generation (not timed) {cat['generate']:.1f} s"
    )
    if base:
        r = results["baseline"]
        print(f"baseline vs ours: {r['compared']} arm means compared, max relative difference {r['max_diff']:.1e}")
    print(
        "the target applies to the in-memory categorical row (the frames the loaders return); bracketed targets "
        "are for information. input MB: resident memory with the inputs loaded, before the timed work (for "
        "Parquet: before reading); peak MB: max RSS of the row's process."
    )
    print(f"{os.cpu_count()} CPU(s) visible; numpy and pandas use one, load_tables overlaps pyarrow work on two.")
    for case in ("categorical", "parquet"):
        r = results[case]
        record(
            "experiments",
            f"PUXT experiments: {labels[case]}",
            size,
            r["seconds"],
            peak_mb=r["peak_mb"],
            baseline="plain pandas groupby per experiment" if base else "",
            baseline_seconds=base,
            target=f"< {TARGET_SECONDS:.0f} s" if case == "categorical" else "",
            met=r["seconds"] < TARGET_SECONDS if case == "categorical" else None,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
