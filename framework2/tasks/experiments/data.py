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

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.tasks.experiments.model import ArmStats, ExperimentSpec, MetricSpec

TableKind = Literal["exposures", "events"]

EXPOSURE_COLUMNS: tuple[str, ...] = ("experiment", "user", "variation", "timestamp")
EVENT_COLUMNS: tuple[str, ...] = ("user", "event", "timestamp")
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "table",
    "row",
    "reason",
    "experiment",
    "user",
    "variation",
    "event",
    "timestamp",
    "value",
)
_REQUIRED: dict[str, tuple[str, ...]] = {"exposures": EXPOSURE_COLUMNS, "events": EVENT_COLUMNS}
# Columns read as text from CSV, so that "00123" stays "00123" in both tables and a bad cell keeps its text.
_TEXT_COLUMNS = ("experiment", "user", "variation", "event", "timestamp", "value")
# Id and name columns, returned as pandas categoricals by the loaders (see ``load_table``).
_KEY_COLUMNS = ("experiment", "user", "variation", "event")

_NS_MAX = np.iinfo(np.int64).max
RECENT_DAYS = 7
_NS_MIN = np.iinfo(np.int64).min  # NaT's integer value
_NS_PER_DAY = 86_400 * 10**9
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


class MissingValues(NamedTuple):
    """How many rows with an empty value a metric read (window and covariate window), and what it did."""

    rows: int
    policy: str  # the metric's ``missing``: "zero", "exclude" or "quarantine"


@dataclass(frozen=True)
class ExperimentData:
    """What ``aggregate`` made of one experiment's rows: the statistics plus the counts behind them.

    ``stats[metric][variation]`` is what ``analyse`` takes. ``users`` counts the analysed users per variation
    (single-variation users with an exposure inside the window). ``exposure_rows`` counts every row of this
    experiment in the exposures table; of those ``outside_window`` were ignored and ``quarantined_exposures``
    quarantined (that count also includes rows naming no experiment). ``events_attributed`` counts event rows
    that fell into some metric's window (each row once, valued or not), ``pre_period_events`` those in a
    covariate window. ``quarantined_events`` counts the bad rows of the shared events table plus this
    experiment's missing-value quarantine.

    ``missing_values[metric]`` is ``MissingValues(rows, policy)`` (a named tuple, so ``rows, policy = ...``
    works) for each mean or ratio metric that read at least one row with a missing value: ``rows`` counts the
    rows of its event(s) (numerator and denominator) in its window or covariate window whose value was empty,
    ``policy`` is the metric's ``missing`` (``"zero"``, ``"exclude"`` or ``"quarantine"``) that said what
    became of them. Metrics that met no missing value (and binomial metrics, which ignore values) are absent.

    ``recent_users_per_day`` is the rate of new analysed users (first exposure) over the last ``RECENT_DAYS``
    days before the window's end (the experiment's end, ``as_of`` or the latest exposure), or over its whole
    span when shorter: what turns "users still needed" into days. None without users.
    """

    key: str
    stats: dict[str, dict[str, ArmStats]]
    exposure_rows: int
    users: dict[str, int]
    multiple_exposures: int
    outside_window: int
    quarantined_exposures: int
    quarantined_events: int
    events_attributed: int
    pre_period_events: int
    quarantined: pd.DataFrame = field(repr=False)
    missing_values: dict[str, MissingValues] = field(default_factory=dict)
    recent_users_per_day: float | None = None

    @property
    def quarantined_rows(self) -> int:
        """All quarantined rows that concern this experiment (exposures and the shared events)."""
        return self.quarantined_exposures + self.quarantined_events


# --------------------------------------------------------------------------------------------------- loading


def load_table(source: str | Path, *, kind: TableKind) -> pd.DataFrame:
    """Read exposures or events from a ``.csv`` (optionally ``.gz``) or ``.parquet``/``.pq`` file.

    ``kind`` says which columns are required. Text id and name columns (experiment, user, variation, event)
    come back as pandas categoricals: encoded once here with pyarrow, a ten-million-row table stays small
    and every later ``aggregate`` call works on the codes instead of hashing strings again. Integer ids stay
    integers. Timestamps become ``datetime64[ns, UTC]`` and ``value`` floats (NaN for an empty cell) when
    every cell parses; otherwise the column is left as text so ``aggregate`` can quarantine the bad rows with
    what they said.
    """
    _check_kind(kind)
    table = _read_arrow(Path(source), kind)
    return normalise_table(pd.DataFrame(_arrow_columns(table)), kind=kind, source=str(source))


def load_tables(exposures: str | Path, events: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the exposures and the events files (as ``load_table``), text user ids encoded as one dictionary.

    Sharing the user dictionary means ``aggregate`` matches events to exposures by integer code alone: for
    ten million rows this saves a second or more on every ``aggregate`` call.
    """
    import pyarrow as pa

    x_table = _read_arrow(Path(exposures), "exposures")
    e_table = _read_arrow(Path(events), "events")
    x_user, e_user = x_table.column("user"), e_table.column("user")
    if _is_arrow_text(x_user.type) and x_user.type == e_user.type:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # pyarrow encodes without holding the GIL, so the other columns are converted meanwhile.
            job = pool.submit(_categorical, pa.chunked_array(x_user.chunks + e_user.chunks, type=x_user.type))
            x_columns, e_columns = _arrow_columns(x_table, skip="user"), _arrow_columns(e_table, skip="user")
            both = job.result()
        x_columns["user"], e_columns["user"] = both[: len(x_user)], both[len(x_user) :]
    else:
        x_columns, e_columns = _arrow_columns(x_table), _arrow_columns(e_table)
    x = pd.DataFrame({name: x_columns[name] for name in x_table.column_names})
    e = pd.DataFrame({name: e_columns[name] for name in e_table.column_names})
    return normalise_table(x, kind="exposures", source=str(exposures)), normalise_table(
        e, kind="events", source=str(events)
    )


def load_exposures(source: str | Path) -> pd.DataFrame:
    """``load_table(source, kind="exposures")``."""
    return load_table(source, kind="exposures")


def load_events(source: str | Path) -> pd.DataFrame:
    """``load_table(source, kind="events")``."""
    return load_table(source, kind="events")


def read_sql_table(url: str, table: str, *, kind: TableKind) -> pd.DataFrame:
    """Read a whole table of exposures or events through SQLAlchemy (any database URL it understands)."""
    import sqlalchemy as sa

    _check_kind(kind)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_table(table, conn)
    except ValueError as exc:  # pandas raises ValueError for a table that does not exist
        raise DataError(f"{_safe_url(url)}: table {table!r} cannot be read: {exc}", "check the table name") from None
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"{_safe_url(url)}: reading table {table!r} failed: {exc}", "check the database") from None
    finally:
        engine.dispose()
    return normalise_table(frame, kind=kind, source=f"{_safe_url(url)} table {table}")


def read_sql_query(url: str, query: str, *, kind: TableKind) -> pd.DataFrame:
    """Read exposures or events with a SQL query (its result must have the required column names)."""
    import sqlalchemy as sa

    _check_kind(kind)
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(query), conn)
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"{_safe_url(url)}: the {kind} query failed: {exc}", "check the SQL") from None
    finally:
        engine.dispose()
    return normalise_table(frame, kind=kind, source=f"{_safe_url(url)} query")


def normalise_table(frame: pd.DataFrame, *, kind: TableKind, source: str = "table") -> pd.DataFrame:
    """Check the required columns, make text ids categorical, convert timestamps and values when all parse."""
    _check_kind(kind)
    _require_columns(frame.columns, kind, source)
    frame = frame.copy(deep=False)
    for column in _KEY_COLUMNS:
        if column in frame.columns and frame[column].dtype == object:
            # Categories in order of first appearance (as pyarrow's dictionary encoding gives them), so a
            # table aggregates to bit-identical sums whichever loader read it.
            codes, uniques = pd.factorize(frame[column])
            frame[column] = pd.Categorical.from_codes(codes, categories=pd.Index(uniques))
    if frame["timestamp"].dtype != _UTC_NS:
        ns, missing, bad = _timestamps_ns(frame["timestamp"], f"{source} timestamp")
        if not bad.any():
            frame["timestamp"] = pd.DatetimeIndex(ns.view("M8[ns]")).tz_localize("UTC")  # NaT stays NaT
    if kind == "events" and "value" in frame.columns:
        values, bad_values = _values(frame["value"])
        if not bad_values.any():
            frame["value"] = values
    return frame


def normalise_tables(exposures: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``normalise_table`` for both tables, text user ids encoded as one shared dictionary.

    The in-memory counterpart of ``load_tables``: the strings are hashed once here, so any number of later
    ``aggregate`` calls (for example one per ``as_of`` day) match events to exposures by code alone.
    """
    _require_columns(exposures.columns, "exposures", "exposures")
    _require_columns(events.columns, "events", "events")
    x_user, e_user = exposures["user"], events["user"]
    if x_user.dtype == object and e_user.dtype == object:
        codes, uniques = pd.factorize(np.concatenate([x_user.to_numpy(), e_user.to_numpy()]))
        dtype = pd.CategoricalDtype(pd.Index(uniques))
        n = len(x_user)
        exposures = exposures.assign(user=pd.Categorical.from_codes(codes[:n], dtype=dtype, validate=False))
        events = events.assign(user=pd.Categorical.from_codes(codes[n:], dtype=dtype, validate=False))
    return normalise_table(exposures, kind="exposures", source="exposures"), normalise_table(
        events, kind="events", source="events"
    )


def _read_arrow(path: Path, kind: TableKind):  # type: ignore[no-untyped-def]
    """The file as a pyarrow table, its required columns checked."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes[-1:] == [".gz"]:
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in {".csv", ".parquet", ".pq"}:
        raise DataError(
            f"{path}: cannot tell the format from the suffix {path.suffix or '(none)'!r}",
            "give the file a .csv, .csv.gz, .parquet or .pq suffix",
        )
    if not path.is_file():
        raise DataError(f"{kind} file {path} does not exist", "check the path in the configuration")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import csv

    try:
        if suffix == ".csv":
            # Ids stay text ("00123" must not become 123) and so do timestamps and values, so that a bad cell
            # reaches the quarantine with what it said.
            types = {c: pa.string() for c in _TEXT_COLUMNS}
            table = csv.read_csv(path, convert_options=csv.ConvertOptions(column_types=types, strings_can_be_null=True))
        else:
            # Low-cardinality names are read straight into dictionaries (Parquet usually stores them that
            # way): cheaper than materialising ten million strings and encoding them again.
            schema = pq.read_schema(path)
            names = [c for c in ("experiment", "variation", "event") if c in schema.names]
            table = pq.read_table(path, read_dictionary=[c for c in names if _is_arrow_text(schema.field(c).type)])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path} is not readable as {suffix[1:].upper()}: {exc}", "re-export the file") from None
    _require_columns(table.column_names, kind, str(path))
    return table


def _is_arrow_text(arrow_type) -> bool:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return bool(pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type))


def _categorical(column) -> pd.Categorical:  # type: ignore[no-untyped-def]
    """A pyarrow text column as a pandas categorical, dictionary-encoded by pyarrow (C++, no Python strings)."""
    import pyarrow.compute as pc

    # Encoding the chunks as they are (no combined copy) uses one memo table across them, so every chunk ends
    # up with the same dictionary; if a pyarrow version ever did otherwise, fall back to one combined chunk.
    encoded = pc.dictionary_encode(column)
    chunks = encoded.chunks
    if not chunks or any(len(c.dictionary) != len(chunks[-1].dictionary) for c in chunks):
        chunks = [pc.dictionary_encode(column.combine_chunks())]
    codes = np.concatenate([c.indices.fill_null(-1).to_numpy(zero_copy_only=False) for c in chunks])
    dtype = pd.CategoricalDtype(pd.Index(chunks[-1].dictionary.to_numpy(zero_copy_only=False)))
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)  # pyarrow's codes are valid


def _arrow_columns(table, skip: str = "") -> dict[str, object]:  # type: ignore[no-untyped-def]
    """A pyarrow table's columns for pandas; text id and name columns become categoricals."""
    columns: dict[str, object] = {}
    for name in table.column_names:
        column = table.column(name)
        if name == skip:
            continue
        if name in _KEY_COLUMNS and _is_arrow_text(column.type):
            columns[name] = _categorical(column)
        else:
            columns[name] = column.to_pandas()
    return columns


def _engine(url: str):  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
        # SQLite would silently create an empty database for a mistyped path; say what is wrong instead.
        database = parsed.database or ""
        if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).is_file():
            raise DataError(f"SQLite database {parsed.database} does not exist", "check the path in the URL")
        return sa.create_engine(parsed)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise DataError(
            f"{_safe_url(url)} is not a usable database URL: {exc}", "use e.g. sqlite:///experiments.db"
        ) from None


def _safe_url(url: str) -> str:
    # Never echo a password from the URL into a message or a log.
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by the caller
        return "database URL"


def _check_kind(kind: str) -> None:
    if kind not in _REQUIRED:
        raise DataError(f"unknown table kind {kind!r}", "use kind='exposures' or kind='events'")


def _require_columns(columns: Iterable[object], kind: str, source: str) -> None:
    columns = list(columns)
    missing = [c for c in _REQUIRED[kind] if c not in columns]
    if missing:
        found = ", ".join(map(str, columns)) or "none"
        raise DataError(
            f"{source}: {kind} lack the column(s) {', '.join(missing)} (found: {found})",
            f"{kind} need the columns {', '.join(_REQUIRED[kind])}"
            + (" and optionally value" if kind == "events" else ""),
        )


# ----------------------------------------------------------------------------------------- column decoding


def _timestamps_ns(col: pd.Series, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nanoseconds since the epoch (UTC) plus masks of missing and unparsable cells."""
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
        idx = pd.DatetimeIndex(col)
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        ns = idx.as_unit("ns").asi8
        missing = ns == _NS_MIN
        return ns, missing, np.zeros(len(ns), dtype=bool)
    if isinstance(dtype, pd.ArrowDtype) and dtype.kind == "M":
        return _timestamps_ns(pd.Series(pd.to_datetime(col, utc=True)), what)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        if col.isna().all():
            n = len(col)
            return np.full(n, _NS_MIN, dtype=np.int64), np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        raise DataError(
            f"{what} holds numbers, not timestamps",
            "store ISO 8601 text (2025-03-03T10:00:00Z) or a timestamp type; epoch numbers are ambiguous",
        )
    missing = _missing_mask(col)
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format="ISO8601")
    ns = pd.DatetimeIndex(parsed).as_unit("ns").asi8
    bad = (ns == _NS_MIN) & ~missing
    if bad.any() and bad.sum() == (~missing).sum():
        sample = col[bad].iloc[0]
        raise DataError(
            f"{what}: no timestamp parses (for example {sample!r})",
            "write timestamps as ISO 8601, e.g. 2025-03-03T10:00:00Z",
        )
    return ns, missing, bad


def _values(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Event values as floats (NaN for an empty cell or one that is not a number) and a mask of the latter.

    The array may share memory with ``col``: callers copy before writing to it.
    """
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.zeros(len(values), dtype=bool)
    else:
        missing = _missing_mask(col)
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & ~missing
    return values, bad


def _missing_mask(col: pd.Series) -> np.ndarray:
    """Null cells and empty strings (what a CSV cell with nothing in it becomes)."""
    missing = col.isna().to_numpy(dtype=bool)
    if col.dtype == object or isinstance(col.dtype, pd.StringDtype | pd.ArrowDtype | pd.CategoricalDtype):
        missing |= (col == "").to_numpy(dtype=bool, na_value=False)
    return missing


def _codes(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = missing, including empty strings) and the distinct values they index."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy().astype(np.int64)
        uniques = np.asarray(col.cat.categories)
    else:
        codes, uniques = pd.factorize(col, use_na_sentinel=True)
        codes = codes.astype(np.int64, copy=False)
        uniques = np.asarray(uniques)
    if uniques.dtype == object:
        empty = np.flatnonzero(uniques == "")
        if len(empty):
            codes = np.where(codes == empty[0], -1, codes)
    return codes, uniques


def _text_keys(uniques: np.ndarray) -> np.ndarray:
    """Distinct ids as text, so 123 in one table matches "123" in the other."""
    if uniques.dtype.kind == "f" and np.all(np.isfinite(uniques)) and np.all(uniques == np.round(uniques)):
        uniques = uniques.astype(np.int64)
    return uniques.astype(str).astype(object)


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "iufb"


def _user_codes(x_col: pd.Series, e_col: pd.Series) -> tuple[np.ndarray, np.ndarray, int]:
    """Exposure and event user ids as codes in one space of ``n`` users.

    Exposure codes are -1 for a missing id; event codes -1 for a missing id and -2 for a user who appears in
    no exposure row (such events can never count).
    """
    if (
        pd.api.types.is_integer_dtype(x_col.dtype)
        and pd.api.types.is_integer_dtype(e_col.dtype)
        and not x_col.hasnans
        and not e_col.hasnans
        and len(x_col)
    ):
        # Dense integer ids need no hashing at all: the id minus the smallest id is the code.
        x_ids = x_col.to_numpy(dtype=np.int64)
        e_ids = e_col.to_numpy(dtype=np.int64)
        lo, hi = int(x_ids.min()), int(x_ids.max())
        if hi - lo < max(len(x_ids) + len(e_ids), 1_000_000):
            e_codes = e_ids - lo
            e_codes[(e_ids < lo) | (e_ids > hi)] = -2
            return x_ids - lo, e_codes, hi - lo + 1
    if x_col.dtype == object and e_col.dtype == object:
        # Text ids in both tables: one factorize over both columns hashes every id once.
        both, uniques = pd.factorize(np.concatenate([x_col.to_numpy(), e_col.to_numpy()]), use_na_sentinel=True)
        both = both.astype(np.int64, copy=False)
        empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "")
        if len(empty):
            both[both == empty[0]] = -1
        x_codes, e_codes = both[: len(x_col)], both[len(x_col) :]
        exposed = np.zeros(len(uniques) + 1, dtype=bool)  # the extra slot absorbs code -1
        exposed[x_codes] = True
        exposed[-1] = False
        return x_codes, np.where(e_codes < 0, -1, np.where(exposed[e_codes], e_codes, -2)), len(uniques)
    x_codes, x_uniques = _codes(x_col)
    n = len(x_uniques)
    if isinstance(e_col.dtype, pd.CategoricalDtype):
        if isinstance(x_col.dtype, pd.CategoricalDtype) and _same_categories(x_col, e_col):
            return x_codes, e_col.cat.codes.to_numpy().astype(np.int64), n
        e_codes, e_values = _codes(e_col)  # map the (distinct) categories, then gather by code
    else:
        e_codes, e_values = np.empty(0, dtype=np.int64), e_col.to_numpy()  # map every row directly
    e_missing = None
    if _is_numeric(x_uniques) != (e_values.dtype.kind in "iufb"):
        # An int column against a text column: compare as text. The exposures' distinct ids are converted
        # and the exposures re-coded through them, so that equal texts share one code. Missing ids would
        # turn into text too, so they are noted first.
        e_missing = pd.isna(e_values)
        remap, x_text = pd.factorize(_text_keys(x_uniques))
        x_codes = np.append(remap, -1)[x_codes]
        x_uniques, e_values = np.asarray(x_text), _text_keys(e_values)
        n = len(x_uniques)
    # One factorize over the exposures' distinct ids followed by the event ids: the former are distinct, so
    # they keep codes 0..n-1, and an event id gets its exposure code or a new code >= n (never exposed).
    both, uniques = pd.factorize(np.concatenate([x_uniques, e_values]), use_na_sentinel=True)
    mapped = both[n:].astype(np.int64)
    missing = mapped < 0
    empty = np.flatnonzero(np.asarray(uniques, dtype=object) == "") if uniques.dtype == object else []
    if len(empty):
        missing |= mapped == empty[0]
    mapped[mapped >= n] = -2
    mapped[missing] = -1
    if e_missing is not None:
        mapped[e_missing] = -1
    if len(e_codes) or isinstance(e_col.dtype, pd.CategoricalDtype):
        mapped = np.append(mapped, -1)[e_codes]  # a missing category (code -1) picks the appended -1
    return x_codes, mapped, n


def _same_categories(a: pd.Series, b: pd.Series) -> bool:
    # Comparing the categories element-wise is cheaper than hashing both sets to map one onto the other.
    ca, cb = a.cat.categories, b.cat.categories
    return ca is cb or (len(ca) == len(cb) and ca.dtype == cb.dtype and bool(ca.equals(cb)))


def _utc_ns(moment: datetime | None, default: int) -> int:
    if moment is None:
        return default
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(pd.Timestamp(moment).as_unit("ns").value)


# ------------------------------------------------------------------------------------------------ validation


@dataclass
class _Exposures:
    """The exposure table as code arrays (one entry per row) and what was set aside."""

    exp: np.ndarray  # spec index; -1 not analysed, -2 no experiment named
    user: np.ndarray
    var: np.ndarray  # variation index within its spec
    ts: np.ndarray
    ok: np.ndarray  # rows of analysed experiments that passed validation
    rows: np.ndarray  # exposure rows per spec in the table (all of them)
    quarantine: list[pd.DataFrame]  # per spec
    unattributed: pd.DataFrame  # rows naming no experiment


@dataclass
class _Events:
    """Valid events that can count (exposed user, used event name) as code arrays, sorted by event name."""

    user: np.ndarray
    ts: np.ndarray
    value: np.ndarray  # 1.0 for a count event's row, 0.0 for a missing value
    bounds: dict[str, tuple[int, int]]  # event name -> its slice of the arrays
    quarantine: pd.DataFrame
    # Only when some kept row has a missing value (None otherwise, the common case): the mask of those rows,
    # every kept row's position in the table (for the quarantine) and the event names concerned.
    missing: np.ndarray | None = None
    pos: np.ndarray | None = None
    missing_names: frozenset[str] = frozenset()


def _reasons(candidates: np.ndarray, checks: Sequence[tuple[np.ndarray, str]]) -> np.ndarray:
    """The first failing check's reason per candidate row (checks are masks over the candidates)."""
    out = np.full(len(candidates), "", dtype=object)
    for mask, reason in reversed(checks):  # later checks first, so earlier ones overwrite them
        out[mask] = reason
    return out


def _quarantine_frame(table: str, frame: pd.DataFrame, positions: np.ndarray, reasons: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(positions)), columns=list(QUARANTINE_COLUMNS), dtype=object)
    out["table"] = table
    out["row"] = positions.astype(np.int64)
    out["reason"] = reasons
    if len(positions):
        for column in QUARANTINE_COLUMNS[3:]:
            if column in frame.columns:
                out[column] = frame[column].iloc[positions].to_numpy(dtype=object)  # (astype: slow on categoricals)
    return out


def _prepare_exposures(specs: Sequence[ExperimentSpec], exposures: pd.DataFrame, user: np.ndarray) -> _Exposures:
    exp_codes, exp_uniques = _codes(exposures["experiment"])
    spec_index = {spec.key: i for i, spec in enumerate(specs)}
    # -1: an experiment not analysed here (ignored); -2 (what code -1, a missing experiment, picks): none named.
    exp = np.array([spec_index.get(str(u), -1) for u in exp_uniques] + [-2], dtype=np.int64)[exp_codes]
    var_codes, var_uniques = _codes(exposures["variation"])
    ts, ts_missing, ts_bad = _timestamps_ns(exposures["timestamp"], "exposures timestamp")

    # Variation index per (spec, distinct value); the extra row and column (picked by -2/-1 and a missing
    # value's -1) hold -1.
    lookup = np.full((len(specs) + 2, len(var_uniques) + 1), -1, dtype=np.int64)
    for i, spec in enumerate(specs):
        listed = {v: j for j, v in enumerate(spec.variations)}
        lookup[i, :-1] = [listed.get(str(value), -1) for value in var_uniques]
    var = lookup.ravel()[exp * lookup.shape[1] + var_codes]  # flat gather: ~5x faster than 2-D indexing

    # Cheap whole-column checks first; reasons are worked out only for the (normally few) rows that fail.
    problem = (exp == -2) | (user < 0) | (var < 0) | ts_missing | ts_bad
    problem &= exp != -1
    cand = np.flatnonzero(problem)
    c_exp, c_var_code = exp[cand], var_codes[cand]
    reasons = _reasons(
        cand,
        [
            (c_exp == -2, "missing experiment"),
            (user[cand] < 0, "missing user"),
            (c_var_code < 0, "missing variation"),
            (ts_missing[cand], "missing timestamp"),
            (ts_bad[cand], "unparsable timestamp (not ISO 8601)"),
        ],
    )
    unknown = reasons == ""  # what is left failed only the variation lookup
    quarantine: list[pd.DataFrame] = []
    for i, spec in enumerate(specs):
        mine = c_exp == i
        texts = reasons[mine]
        odd = unknown[mine]
        if odd.any():
            # One text per distinct value, gathered by code: a systematic typo can hit millions of rows.
            labels = np.array(
                [f"variation {str(v)!r} is not one of {', '.join(spec.variations)}" for v in var_uniques],
                dtype=object,
            )
            texts[odd] = labels[c_var_code[mine][odd]]
        quarantine.append(_quarantine_frame("exposures", exposures, cand[mine], texts))
    none = c_exp == -2
    unattributed = _quarantine_frame("exposures", exposures, cand[none], reasons[none])

    return _Exposures(
        exp=exp,
        user=user,
        var=var,
        ts=ts,
        ok=~problem & (exp >= 0),
        rows=np.bincount(exp + 2, minlength=len(specs) + 2)[2:],  # +2 shifts the -2/-1 sentinels to 0/1
        quarantine=quarantine,
        unattributed=unattributed,
    )


def _prepare_events(events: pd.DataFrame, user: np.ndarray, names_needed: set[str]) -> _Events:
    n = len(events)
    name_codes, name_uniques = _codes(events["event"])
    ts, ts_missing, ts_bad = _timestamps_ns(events["timestamp"], "events timestamp")
    empty: np.ndarray | None = None
    if "value" in events.columns:
        value, value_bad = _values(events["value"])
        nan = np.isnan(value)
        if nan.any():
            value = value.copy()  # may be the caller's column
            # Names with a number in some row (valid or not) are measured; the others count their rows.
            measured = np.bincount(name_codes[~nan] + 1, minlength=len(name_uniques) + 1)[1:] > 0
            blank = np.flatnonzero(nan & ~value_bad)
            missing_at = blank[np.append(measured, False)[name_codes[blank]]]  # no name (-1): False
            value[blank] = 1.0
            if len(missing_at):
                value[missing_at] = 0.0
                empty = np.zeros(n, dtype=bool)
                empty[missing_at] = True
        del nan
    else:
        value, value_bad = np.ones(n), np.zeros(n, dtype=bool)
    infinite = np.isinf(value)
    problem = (user == -1) | (name_codes < 0) | ts_missing | ts_bad | value_bad | infinite
    cand = np.flatnonzero(problem)
    reasons = _reasons(
        cand,
        [
            (user[cand] == -1, "missing user"),
            (name_codes[cand] < 0, "missing event"),
            (ts_missing[cand], "missing timestamp"),
            (ts_bad[cand], "unparsable timestamp (not ISO 8601)"),
            (value_bad[cand], "non-numeric value"),
            (infinite[cand], "non-finite value"),
        ],
    )
    quarantine = _quarantine_frame("events", events, cand, reasons)

    # Only rows that can count: valid, of an exposed user, of an event name some metric uses.
    wanted = np.array([str(u) in names_needed for u in name_uniques] + [False], dtype=bool)
    keep = np.flatnonzero(~problem & (user >= 0) & wanted[name_codes])
    names = name_codes[keep]
    keep = keep[np.argsort(names.astype(np.int16 if len(name_uniques) < 2**15 else np.int64), kind="stable")]
    edges = np.concatenate([[0], np.cumsum(np.bincount(names, minlength=len(name_uniques)))])
    bounds = {str(u): (int(edges[c]), int(edges[c + 1])) for c, u in enumerate(name_uniques) if wanted[c]}
    out = _Events(user=user[keep], ts=ts[keep], value=value[keep], bounds=bounds, quarantine=quarantine)
    if empty is not None:
        missing = empty[keep]
        if missing.any():
            out.missing, out.pos = missing, keep
            out.missing_names = frozenset(str(name_uniques[c]) for c in np.unique(name_codes[keep[missing]]))
    return out


# ----------------------------------------------------------------------------------------------- aggregation


def aggregate(
    spec: ExperimentSpec, exposures: pd.DataFrame, events: pd.DataFrame, *, as_of: datetime | None = None
) -> ExperimentData:
    """Sufficient statistics of one experiment (rows of other experiments in ``exposures`` are ignored)."""
    return aggregate_many([spec], exposures, events, as_of=as_of)[spec.key]


def aggregate_many(
    specs: Iterable[ExperimentSpec],
    exposures: pd.DataFrame,
    events: pd.DataFrame,
    *,
    as_of: datetime | None = None,
) -> dict[str, ExperimentData]:
    """Sufficient statistics of several experiments in one pass over both tables, keyed by experiment key."""
    specs = list(specs)
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise DataError(f"experiment key(s) {', '.join(dupes)} given twice", "pass each experiment once")
    _require_columns(exposures.columns, "exposures", "exposures")
    _require_columns(events.columns, "events", "events")
    if not specs:
        return {}
    x_user, e_user, n_users = _user_codes(exposures["user"], events["user"])
    xp = _prepare_exposures(specs, exposures, x_user)
    del x_user
    ev = _prepare_events(events, e_user, {name for s in specs for m in s.metrics for name in _metric_events(m)})
    del e_user
    as_of_ns = _utc_ns(as_of, _NS_MAX)

    results: dict[str, ExperimentData] = {}
    for i, spec in enumerate(specs):
        start = _utc_ns(spec.start, _NS_MIN)
        cutoff = min(_utc_ns(spec.end, _NS_MAX), as_of_ns)
        # A mask and its positions per experiment: a few cheap passes, and the gathers then run in row order
        # (sorting ten million rows by experiment first costs more than that).
        mine = xp.ok & (xp.exp == i)
        valid = int(np.count_nonzero(mine))
        if start != _NS_MIN:
            mine &= xp.ts >= start
        if cutoff != _NS_MAX:
            mine &= xp.ts < cutoff
        rows = np.flatnonzero(mine)
        del mine
        outside = valid - len(rows)
        arms = _Arms(xp.user[rows], xp.var[rows], xp.ts[rows], n_users)
        windows = _EventWindows(ev, arms, cutoff, spec.pre_period_days * _NS_PER_DAY)
        k = len(spec.variations)
        users = np.bincount(arms.arm, minlength=k)
        stats = {m.name: _metric_stats(m, spec, arms.arm, windows, users) for m in spec.metrics}
        missing_values, held = _missing_values(spec, windows, events)
        pieces = [q for q in (xp.quarantine[i], xp.unattributed, ev.quarantine, held) if len(q)]
        results[spec.key] = ExperimentData(
            key=spec.key,
            stats=stats,
            exposure_rows=int(xp.rows[i]),
            users={v: int(users[j]) for j, v in enumerate(spec.variations)},
            multiple_exposures=arms.multiple,
            outside_window=outside,
            quarantined_exposures=len(xp.quarantine[i]) + len(xp.unattributed),
            quarantined_events=len(ev.quarantine) + len(held),
            events_attributed=windows.attributed,
            pre_period_events=windows.pre_attributed,
            quarantined=pd.concat(pieces, ignore_index=True) if pieces else xp.quarantine[i],
            missing_values=missing_values,
            recent_users_per_day=_recent_rate(arms.first, cutoff),
        )
    return results


def _recent_rate(first: np.ndarray, cutoff: int) -> float | None:
    """New users per day over the last ``RECENT_DAYS`` before ``cutoff`` (or the latest first exposure)."""
    if not len(first):
        return None
    end = cutoff if cutoff != _NS_MAX else int(first.max()) + 1
    span = min(RECENT_DAYS * _NS_PER_DAY, end - int(first.min()))
    if span <= 0:
        return None
    return float(np.count_nonzero(first >= end - span)) / (span / _NS_PER_DAY)


def _missing_values(
    spec: ExperimentSpec, windows: _EventWindows, events: pd.DataFrame
) -> tuple[dict[str, MissingValues], pd.DataFrame]:
    """Rows with a missing value per mean/ratio metric, and the rows its quarantine metrics quarantine.

    A row is quarantined once per experiment, its reason naming every quarantine metric that reads its event
    (all metrics of an experiment share its windows, so they read the same rows of an event).
    """
    counts: dict[str, MissingValues] = {}
    holders: dict[str, list[str]] = {}  # event name -> quarantine metrics reading it
    for metric in spec.metrics:
        if metric.kind == "binomial":
            continue  # values play no part
        names = list(dict.fromkeys(_metric_events(metric)))
        rows = sum(len(windows.get(name).missing_rows) for name in names)
        if rows:
            counts[metric.name] = MissingValues(rows, metric.missing)
            if metric.missing == "quarantine":
                for name in names:
                    holders.setdefault(name, []).append(metric.name)
    positions, reasons = [np.empty(0, dtype=np.int64)], [np.empty(0, dtype=object)]
    for name, metrics in holders.items():
        rows_at = windows.get(name).missing_rows
        which = (
            f"metric {metrics[0]!r} measures"
            if len(metrics) == 1
            else f"metrics {', '.join(map(repr, metrics))} measure"
        )
        positions.append(rows_at)
        reasons.append(np.full(len(rows_at), f"no value for {name!r}, which {which} (missing = quarantine)", object))
    at = np.concatenate(positions)
    order = np.argsort(at, kind="stable")
    return counts, _quarantine_frame("events", events, at[order], np.concatenate(reasons)[order])


def _metric_events(metric: MetricSpec) -> list[str]:
    return [metric.event] + ([metric.denominator_event] if metric.denominator_event else [])


class _Arms:
    """The analysed users of one experiment: local codes 0..m-1, their arm and first exposure time."""

    def __init__(self, user: np.ndarray, var: np.ndarray, ts: np.ndarray, n_users: int) -> None:
        first = np.full(n_users, _NS_MAX, dtype=np.int64)
        np.minimum.at(first, user, ts)
        low = np.full(n_users, np.iinfo(np.int16).max, dtype=np.int16)
        high = np.full(n_users, -1, dtype=np.int16)
        var16 = var.astype(np.int16)
        np.minimum.at(low, user, var16)
        np.maximum.at(high, user, var16)
        exposed = np.flatnonzero(high >= 0)
        single = low[exposed] == high[exposed]
        members = exposed[single]
        self.multiple = int(len(exposed) - len(members))
        self.arm = high[members].astype(np.int64)
        self.first = first[members]
        # Global code -> local code (or -1): one gather turns an event's user into "analysed here, as whom".
        self.local = np.full(n_users, -1, dtype=np.int64)
        self.local[members] = np.arange(len(members))
        self.m = len(members)


@dataclass
class _Window:
    """One event name's per-user counts and value sums (local user codes) in the metric and covariate windows.

    ``count``/``pre_count`` count every row, ``valued``/``pre_valued`` only rows with a value (the same
    arrays when no row of the name misses its value); missing values add 0 to the sums. ``missing_rows``
    holds the table positions of the rows with a missing value in either window.
    """

    count: np.ndarray
    valued: np.ndarray
    total: np.ndarray
    pre_count: np.ndarray
    pre_valued: np.ndarray
    pre_total: np.ndarray
    missing_rows: np.ndarray


class _EventWindows:
    """Per analysed user: event counts and value sums in the metric and covariate windows, per event name."""

    def __init__(self, ev: _Events, arms: _Arms, cutoff: int, pre_ns: int) -> None:
        self.ev, self.arms, self.cutoff, self.pre_ns = ev, arms, cutoff, pre_ns
        self.cache: dict[str, _Window] = {}
        self.attributed = 0
        self.pre_attributed = 0

    def get(self, name: str) -> _Window:
        """The name's ``_Window`` (computed once per experiment)."""
        if name not in self.cache:
            lo, hi = self.ev.bounds.get(name, (0, 0))
            local = self.arms.local[self.ev.user[lo:hi]]
            mine = local >= 0
            local, ts, value = local[mine], self.ev.ts[lo:hi][mine], self.ev.value[lo:hi][mine]
            first = self.arms.first[local]
            after = (ts >= first) & (ts < self.cutoff)
            count, total = self._sums(local, value, after)
            self.attributed += int(after.sum())
            if self.pre_ns > 0:
                before = (ts < first) & (ts >= first - self.pre_ns)
                pre_count, pre_total = self._sums(local, value, before)
                self.pre_attributed += int(before.sum())
            else:
                before = None
                pre_count = pre_total = np.zeros(self.arms.m)
            valued, pre_valued, missing_rows = count, pre_count, np.empty(0, dtype=np.int64)
            if self.ev.missing is not None and self.ev.pos is not None and name in self.ev.missing_names:
                missing = self.ev.missing[lo:hi][mine]
                valued = count - np.bincount(local[after & missing], minlength=self.arms.m)
                read = after
                if before is not None:
                    pre_valued = pre_count - np.bincount(local[before & missing], minlength=self.arms.m)
                    read = after | before
                missing_rows = self.ev.pos[lo:hi][mine][read & missing]
            self.cache[name] = _Window(count, valued, total, pre_count, pre_valued, pre_total, missing_rows)
        return self.cache[name]

    def _sums(self, local: np.ndarray, value: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked = local[mask]
        count = np.bincount(picked, minlength=self.arms.m)
        total = np.bincount(picked, weights=value[mask], minlength=self.arms.m)
        return count, total


def _metric_stats(
    metric: MetricSpec, spec: ExperimentSpec, arm: np.ndarray, windows: _EventWindows, users: np.ndarray
) -> dict[str, ArmStats]:
    w = windows.get(metric.event)
    den: np.ndarray | None = None
    # Rows a metric counts as events: all for "zero" (a missing value is 0), valued ones for "exclude" and
    # "quarantine" (the row is ignored). The sums are the same either way: a missing value adds 0.
    zero = metric.missing == "zero"
    has_pre = w.pre_count if zero else w.pre_valued
    if metric.kind == "binomial":
        value, cov = (w.count > 0).astype(np.float64), (w.pre_count > 0).astype(np.float64)
        analysed = None
        has_pre = w.pre_count
    elif metric.kind == "mean":
        value, cov = w.total, w.pre_total
        analysed = w.valued > 0 if metric.missing == "exclude" else None
    else:
        d = windows.get(metric.denominator_event or "")
        value, cov, den = w.total, w.pre_total, d.total
        analysed = den != 0
        has_pre = has_pre + (d.pre_count if zero else d.pre_valued)
    # Whether CUPED has anything to work with is decided per metric across all arms, never per arm.
    has_cov = spec.pre_period_days > 0 and bool(np.any(has_pre > 0))

    k = len(spec.variations)
    a, y = (arm, value) if analysed is None else (arm[analysed], value[analysed])

    def per_arm(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(a, weights=weights, minlength=k)

    n = users if analysed is None else per_arm(None)
    sums = {"total": per_arm(y), "total_sq": per_arm(y * y)}
    if den is not None:
        d = den[analysed]
        sums |= {"den_total": per_arm(d), "den_total_sq": per_arm(d * d), "num_den": per_arm(y * d)}
    if has_cov:
        x = cov if analysed is None else cov[analysed]
        sums |= {"cov_total": per_arm(x), "cov_total_sq": per_arm(x * x), "cov_value": per_arm(x * y)}
    return {
        variation: ArmStats(
            variation=variation,
            users=int(users[j]),
            n=int(n[j]),
            has_covariate=has_cov,
            **{name: float(s[j]) for name, s in sums.items()},
        )
        for j, variation in enumerate(spec.variations)
    }
