"""Run every benchmark in bench/ and print one table: workload, size, time, peak memory, the baseline measured
in the same run and the ratio, and the target it is held to.

Usage: .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]

Each benchmark runs as its own process (so one's memory does not inflate the next's peak) with its full report
shown as it goes; the table at the end gathers the rows each recorded through ``bench/results.py``. Exits
non-zero when a benchmark crashed or a target was missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import RESULTS_ENV, text_table

HERE = Path(__file__).resolve().parent
# name → (script, arguments for --quick)
BENCHES: dict[str, tuple[str, list[str]]] = {
    "pricing": ("pricing_bench.py", ["--quick"]),
    "pricing_scenarios": ("pricing_scenarios.py", ["--quick"]),
    "pricing_real": ("pricing_real.py", []),
    "rollback": ("rollback_bench.py", ["--runs", "2"]),
    "forecast": ("forecast_bench.py", ["--quick"]),
    "forecast_real": ("forecast_real.py", ["--quick"]),
    "portfolio": ("portfolio_bench.py", ["--quick"]),
    "experiments": ("experiments_bench.py", ["--quick"]),
    "dashboard": ("dashboard_bench.py", ["--quick"]),
    "webhooks": ("webhook_load.py", ["--count", "600"]),
    "orchestration": ("orchestration_bench.py", ["--quick"]),
    "scale": ("scale_bench.py", ["--quick"]),
}


def _cell(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def table(rows: list[dict]) -> str:
    header = ("workload", "size", "seconds", "peak MB", "baseline (same run)", "baseline s", "ratio", "target", "")
    body = [
        (
            r["workload"],
            r["size"],
            _cell(r["seconds"], ",.3f"),
            _cell(r["peak_mb"], ",.0f"),
            r["baseline"],
            _cell(r["baseline_seconds"], ",.2f"),
            f"{r['ratio']:,.1f}x" if r["ratio"] else "",
            r["target"],
            {True: "met", False: "MISSED", None: ""}[r["met"]],
        )
        for r in rows
    ]
    return text_table(header, body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the figures")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), help="run only these")
    args = parser.parse_args(argv)
    names = args.only or list(BENCHES)
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results.jsonl"
        results.touch()
        env = os.environ | {RESULTS_ENV: str(results), "PYTHONPATH": str(HERE)}
        for name in names:
            script, quick = BENCHES[name]
            print(f"\n=== {name}: bench/{script} {' '.join(quick) if args.quick else ''}".rstrip(), flush=True)
            started = time.perf_counter()
            code = subprocess.run(
                [sys.executable, str(HERE / script), *(quick if args.quick else [])], env=env, check=False
            ).returncode
            print(f"=== {name}: exit {code} after {time.perf_counter() - started:.0f} s", flush=True)
            if code != 0:
                failed.append(name)
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    machine = rows[0]["machine"] if rows else ""
    print(f"\nSummary ({machine}; ratio = baseline time / ours)" + (" — QUICK sizes" if args.quick else ""))
    print(table(rows))
    missed = [r["workload"] for r in rows if r["met"] is False]
    if failed:
        print(f"crashed: {', '.join(failed)}")
    if missed:
        print(f"targets missed: {'; '.join(missed)}")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
