"""Loading a user's own catalogue and sales from CSV: validated, bad rows quarantined, the load recorded.

Reading and checking happen before anything is written; then quarantined rows, then the good rows in one
transaction. A file that cannot be read at all is refused before a load run is even recorded, and no failure
reaches the user as a traceback: each is a ``Framework2Error`` saying what was wrong and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from framework2.errors import DataError
from framework2.store import pricing as store
from framework2.store.engine import store_unreachable
from framework2.store.runs import finish_run, quarantine, start_run
from framework2.tasks.boundary import read_csv_rows
from framework2.tasks.pricing.inputs import CATALOGUE_REQUIRED, SALES_REQUIRED, validate_catalogue, validate_sales

# Recorded under its own name so a load never counts as a pricing run in PPIS health.
SYSTEM = "ppis-load"

Validate = Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]
Write = Callable[[pd.DataFrame], int]


@dataclass
class LoadReport:
    run_id: str
    loaded: int
    quarantined: int


def _quarantine_records(misshapen: pd.DataFrame, refused: pd.DataFrame) -> list[dict[str, Any]]:
    # The file line comes first so a person can find the row; a column of the same name in the file wins.
    return [
        {"csv_line": int(line), **row}
        for frame in (misshapen, refused)
        for line, row in zip(frame.index, frame.to_dict("records"), strict=True)
    ]


def _failed(engine: Engine, run_id: str, exc: BaseException) -> None:
    # If the store went away too, the error being raised is the one to report, not this one.
    with contextlib.suppress(SQLAlchemyError):
        finish_run(engine, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")


def _load(engine: Engine, path: Path, what: str, columns: list[str], validate: Validate, write: Write) -> LoadReport:
    rows, misshapen = read_csv_rows(path, what, columns)
    run_id = start_run(engine, SYSTEM, parameters={"load": what, "file": str(path)})
    try:
        valid, refused = validate(rows)
        records = _quarantine_records(misshapen, refused)
        n_bad = quarantine(engine, system=SYSTEM, source=f"load:{what}", rows=records, run_id=run_id)
        loaded = write(valid)
    except OperationalError as exc:
        _failed(engine, run_id, exc)
        raise store_unreachable(engine, exc) from exc
    except SQLAlchemyError as exc:
        _failed(engine, run_id, exc)
        raise DataError(
            f"the store refused the {what} rows of {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            hint="nothing from this file was stored (rows already in the store are unchanged); "
            "the quarantined_row table lists rows refused before writing",
        ) from exc
    except BaseException as exc:
        _failed(engine, run_id, exc)
        raise
    finish_run(
        engine,
        run_id,
        status="completed",
        inputs={"file": str(path), "rows": len(rows) + len(misshapen)},
        outcome={"summary": f"loaded {loaded} {what} rows, quarantined {n_bad}", "load": True},
    )
    return LoadReport(run_id, loaded, n_bad)


def load_catalogue_csv(engine: Engine, path: Path) -> LoadReport:
    """Insert or update products from CSV (sku, name, category, cost, price, optional guardrail columns)."""
    return _load(
        engine,
        path,
        "catalogue",
        CATALOGUE_REQUIRED,
        validate_catalogue,
        lambda valid: store.upsert_catalogue(engine, valid),
    )


def load_sales_csv(engine: Engine, path: Path) -> LoadReport:
    """Insert daily sales from CSV (sku, day, price, units); a re-sent sku and day replaces the stored row."""
    known = pd.Index(store.load_catalogue(engine)["sku"])
    return _load(
        engine,
        path,
        "sales",
        SALES_REQUIRED,
        lambda frame: validate_sales(frame, known),
        lambda valid: store.upsert_sales(engine, valid),
    )
