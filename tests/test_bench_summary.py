"""`make bench`'s summary: benchmarks record rows only when run_all.py asks, and the table shows each row's
time, baseline, ratio and target."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import results  # noqa: E402
import run_all  # noqa: E402


def test_a_benchmark_run_alone_records_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    results.record("b", "w", "s", 1.0)
    assert list(tmp_path.iterdir()) == []


def test_rows_carry_the_ratio_against_the_baseline_and_render_in_one_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "rows.jsonl"
    monkeypatch.setenv(results.RESULTS_ENV, str(path))
    results.record("pricing", "analysis", "100 SKUs", 2.0, peak_mb=512, baseline="loop", baseline_seconds=50.0,
                   target="< 60 s", met=True)  # fmt: skip
    results.record("webhooks", "load", "600 requests", 4.0, target=">= 150 req/s", met=False)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0]["ratio"] == 25.0 and rows[1]["ratio"] is None
    text = run_all.table(rows)
    header, _rule, first, second = text.splitlines()
    assert header.split()[:2] == ["workload", "size"]
    assert "25.0x" in first and "512" in first and "met" in first
    assert "MISSED" in second


def test_every_benchmark_in_bench_is_run_by_make_bench() -> None:
    scripts = {p.name for p in Path(run_all.HERE).glob("*.py")} - {"results.py", "run_all.py"}
    assert scripts == {script for script, _quick in run_all.BENCHES.values()}


def test_numpy_figures_are_recorded_as_plain_numbers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "rows.jsonl"
    monkeypatch.setenv(results.RESULTS_ENV, str(path))
    slope = np.float64(0.25)
    results.record("orchestration", "per system", "1-6 systems", slope, met=slope < 2.0)
    row = json.loads(path.read_text())
    assert row["seconds"] == 0.25 and row["met"] is True
