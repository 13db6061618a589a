"""From raw exposure and event rows to the per-arm sufficient statistics (``ArmStats``) the analysis works on.

Inputs (from ``load_table``/``load_tables``, ``read_sql_table``/``read_sql_query`` or any DataFrame):

- exposures: ``experiment, user, variation, timestamp`` - one row per time a user saw an experiment;
- events: ``user, event, timestamp`` and optionally ``value``. An event name none of whose rows holds a
  number in ``value`` (no value column, or every cell of that name empty) is a *count event*: each row is
  worth 1.0, so a ``session`` row needs no value. An event name with a number in some rows is *measured*
  (``purchase`` carries its amount, ``load_time`` its milliseconds): there an empty cell is a *missing value*,
  never 1.0, and each mean or ratio metric reading that event handles it by its ``MetricSpec.missing``
  policy (below). Binomial metrics ignore values: a conversion is the event happening.

Timestamps are UTC: text is parsed as ISO 8601 (an offset is honoured, none means UTC) and naive datetimes
are taken as UTC. The loaders return text ids and names as pandas categoricals (user ids of both tables
sharing one dictionary with ``load_tables``/``normalise_tables``), which is what makes repeated aggregation
of ten million rows cheap; plain string, integer or mixed id columns work too.

Validation never stops the run for single bad rows and never drops them silently: they come back as
``ExperimentData.quarantined``, a DataFrame with one row per bad input row and the columns
``table`` (``"exposures"``/``"events"``), ``row`` (0-based position in the table as passed), ``reason`` and the
row's own values (``experiment, user, variation, event, timestamp, value``; as given, so a bad timestamp
shows its text). Each row gets the first reason that applies, in the order: missing experiment, missing user,
missing variation/event, missing timestamp, unparsable timestamp, unknown variation, non-numeric value,
non-finite value. Missing means null or an empty string. The events table is shared by all experiments, so
each experiment's ``quarantined`` holds its own bad exposure rows, exposure rows naming no experiment, every
bad event row, and its own missing-value quarantine (below). A user's other, valid rows still count. Only a
table that is unusable as a whole (missing columns, no parsable timestamp at all, numbers for timestamps,
unreadable file) raises ``DataError``.

Semantics of ``aggregate``/``aggregate_many``:

- exposures outside ``[spec.start, min(spec.end, as_of))`` are ignored and counted (``outside_window``);
  everything below uses the remaining exposures only;
- a user exposed to more than one variation of an experiment is excluded from it and counted
  (``multiple_exposures``); repeated exposures to the same variation are normal;
- a user's metric window starts at their first exposure: events with ``first <= t < min(spec.end, as_of)``
  count; the covariate window for CUPED is ``first - pre_period_days <= t < first``;
- binomial: 1 when the user has any event in the window; mean: sum of event values (0 without events, or
  not analysed when ``missing="exclude"``); ratio: per-user numerator and denominator sums, users whose
  denominator sum is 0 not analysed;
- a missing value (empty cell of a measured event, see above) in a row a mean or ratio metric reads (its
  window or its covariate window) follows the metric's ``missing``: ``"zero"`` counts the row with value 0;
  ``"exclude"`` ignores the row, so a mean's user whose only rows in the window are valueless is not analysed
  (a ratio keeps its rule: analysed when the denominator sum is not 0); ``"quarantine"`` ignores the row and
  adds it to the experiment's ``quarantined`` (and ``quarantined_events``) with the reason ``no value for
  'purchase', which metric 'revenue' measures (missing = quarantine)``, while users without the event count 0
  as with ``"zero"``. The policy is per metric: a row several metrics read is quarantined (listed once, naming
  every quarantine metric) and left out of those metrics only; a ``"zero"`` metric on the same event still
  counts it as 0, an ``"exclude"`` one ignores it, a binomial one counts it as the event happening. Whatever
  the policy, ``ExperimentData.missing_values`` says how many such rows each metric met;
- the covariate is the same per-user quantity over the pre-period window (for ratios the numerator sum,
  because ``ArmStats`` has no covariate x denominator sum); it is summed over the analysed users only and
  ``has_covariate`` is True for a metric only when ``pre_period_days > 0`` and at least one user of the
  experiment has a pre-period event of that metric (numerator or denominator; a valued one unless the
  metric's ``missing`` is ``"zero"``).

Speed: ids and names become integer codes once (a categorical's codes, dense integer ids minus their
minimum, or one ``pd.factorize`` over both tables' text ids); first exposures and the multiple-exposure check
are ``np.minimum.at``/``np.maximum.at`` over user codes; events are sorted once by event name; every
per-user and per-arm sum is a ``np.bincount``. No Python loop runs per user or per row. Ten million
exposures and five million events over five experiments take ~2-3 s from categorical or integer ids on a
2-core machine; from Python-string ids ~10 s, most of it hashing the 15 million strings (``bench/``).
"""

from __future__ import annotations

from framework2.tasks.experiments.data.aggregation import (
    ExperimentData,
    MissingValues,
    aggregate,
    aggregate_many,
)
from framework2.tasks.experiments.data.columns import (
    EVENT_COLUMNS,
    EXPOSURE_COLUMNS,
    QUARANTINE_COLUMNS,
    RECENT_DAYS,
    TableKind,
)
from framework2.tasks.experiments.data.tables import (
    load_events,
    load_exposures,
    load_table,
    load_tables,
    normalise_table,
    normalise_tables,
    read_sql_query,
    read_sql_table,
)

__all__ = [
    "EVENT_COLUMNS",
    "EXPOSURE_COLUMNS",
    "ExperimentData",
    "MissingValues",
    "QUARANTINE_COLUMNS",
    "RECENT_DAYS",
    "TableKind",
    "aggregate",
    "aggregate_many",
    "load_events",
    "load_exposures",
    "load_table",
    "load_tables",
    "normalise_table",
    "normalise_tables",
    "read_sql_query",
    "read_sql_table",
]
