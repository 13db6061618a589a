"""PUXT experiment analysis cut into partitions of experiments, in process or on Dask.

An experiment's statistics come from its own exposure rows and the events of its users, so analysing a
subset of the experiments over the same tables gives each exactly what the whole run would. Each partition
reads the tables itself (files or ``table:NAME``), so tens of millions of rows never travel through the
flow run or the Dask scheduler: a Dask worker needs the same files or database the flow would read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from framework2.scale import ScaleOut, balanced_partitions, partition_count, run_partitions
from framework2.tasks.experiments.specs import ExperimentSpec

TABLE_PREFIX = "table:"


class ExperimentSources(BaseModel):
    """Where the exposures and events are: CSV/Parquet paths, or ``table:NAME`` in ``database_url``."""

    exposures: str
    events: str
    database_url: str | None = None


def read_table_source(source: str, database_url: str | None, *, kind: str) -> pd.DataFrame:
    """A CSV/Parquet file, or ``table:NAME`` read from ``database_url``."""
    from framework2.tasks.experiments.data import load_table, read_sql_table

    if source.startswith(TABLE_PREFIX):
        return read_sql_table(database_url or "", source.removeprefix(TABLE_PREFIX), kind=kind)  # type: ignore[arg-type]
    return load_table(Path(source), kind=kind)  # type: ignore[arg-type]


def read_tables(sources: ExperimentSources) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables; two files share one user dictionary, which makes the aggregation several times faster."""
    from framework2.tasks.experiments.data import load_tables

    if sources.exposures.startswith(TABLE_PREFIX) or sources.events.startswith(TABLE_PREFIX):
        return (
            read_table_source(sources.exposures, sources.database_url, kind="exposures"),
            read_table_source(sources.events, sources.database_url, kind="events"),
        )
    return load_tables(Path(sources.exposures), Path(sources.events))


@task(name="puxt-experiments-partition", cache_policy=NO_CACHE)
def analyse_partition(
    specs: Sequence[ExperimentSpec],
    sources: ExperimentSources,
    previous: Mapping[str, Any],
    as_of: datetime,
) -> tuple[list[tuple[ExperimentSpec, Any, Any]], int, int]:
    """(spec, data, analysis) of each experiment in ``specs``, and the exposure and event rows read."""
    from framework2.tasks.experiments.analysis import analyse
    from framework2.tasks.experiments.data import aggregate_many

    exposures, events = read_tables(sources)
    data = aggregate_many(specs, exposures, events, as_of=as_of)
    analysed = [
        (
            spec,
            data[spec.key],
            analyse(
                spec,
                data[spec.key].stats,
                previous.get(spec.key),
                as_of=as_of,
                users_per_day=data[spec.key].recent_users_per_day,
            ),
        )
        for spec in specs
    ]
    return analysed, len(exposures), len(events)


def analyse_experiments_in_partitions(
    specs: Sequence[ExperimentSpec],
    sources: ExperimentSources,
    previous: Mapping[str, Any],
    as_of: datetime,
    scale: ScaleOut,
) -> tuple[list[tuple[ExperimentSpec, Any, Any]], int, int]:
    """Every experiment analysed in ``scale``'s partitions; results in the order of ``specs``."""
    if not specs:
        exposures, events = read_tables(sources)
        return [], len(exposures), len(events)
    groups = balanced_partitions({s.key: 1.0 for s in specs}, partition_count(scale, len(specs)))
    by_key = {s.key: s for s in specs}
    inputs = [
        {
            "specs": [by_key[k] for k in group],
            "sources": sources,
            "previous": {k: previous[k] for k in group if k in previous},
            "as_of": as_of,
        }
        for group in groups
    ]
    parts = run_partitions("puxt-experiments-partitions", analyse_partition, inputs, scale)
    done = {spec.key: (spec, data, analysis) for analysed, _, _ in parts for spec, data, analysis in analysed}
    return [done[s.key] for s in specs], parts[0][1], parts[0][2]
