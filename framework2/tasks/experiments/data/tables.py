"""Loading exposure and event tables from CSV, Parquet/Arrow or SQL, bounded and normalised to one shape."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.tasks.experiments.data.columns import (
    _KEY_COLUMNS,
    _REQUIRED,
    _TEXT_COLUMNS,
    _UTC_NS,
    TableKind,
    _timestamps_ns,
    _values,
)

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
