"""One line per measured workload, for `bench/run_all.py`'s summary table.

Each benchmark prints its own detailed report and calls ``record`` for its headline rows. When
``FRAMEWORK2_BENCH_RESULTS`` names a file (set by ``run_all.py``) the row is appended there as JSON; run on its
own, a benchmark records nothing.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable, Sequence
from pathlib import Path

RESULTS_ENV = "FRAMEWORK2_BENCH_RESULTS"


def record(
    bench: str,
    workload: str,
    size: str,
    seconds: float | None,
    *,
    peak_mb: float | None = None,
    baseline: str = "",
    baseline_seconds: float | None = None,
    target: str = "",
    met: bool | None = None,
    note: str = "",
) -> None:
    """Append one row; ``ratio`` is baseline / ours (how many times faster), when there is a baseline."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    # numpy scalars (a fitted slope, a comparison of arrays) are not JSON: plain floats and bools only.
    seconds = None if seconds is None else float(seconds)
    peak_mb = None if peak_mb is None else float(peak_mb)
    baseline_seconds = None if baseline_seconds is None else float(baseline_seconds)
    met = None if met is None else bool(met)
    ratio = baseline_seconds / seconds if baseline_seconds and seconds else None
    row = {
        "bench": bench,
        "workload": workload,
        "size": size,
        "seconds": seconds,
        "peak_mb": peak_mb,
        "baseline": baseline,
        "baseline_seconds": baseline_seconds,
        "ratio": ratio,
        "target": target,
        "met": met,
        "note": note,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    with Path(path).open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def text_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Left-aligned columns under a header and a rule of dashes, as every benchmark prints its results."""
    body = [tuple(str(cell) for cell in row) for row in rows]
    widths = [max(len(line[i]) for line in [tuple(header), *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*b) for b in body)])
