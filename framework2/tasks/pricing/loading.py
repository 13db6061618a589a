"""Loading a user's own catalogue and sales from CSV: validated, bad rows quarantined, the load recorded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from framework2.errors import DataError
from framework2.store import pricing as store
from framework2.store.runs import finish_run, quarantine, start_run
from framework2.tasks.pricing.inputs import validate_catalogue, validate_sales

# Recorded under its own name so a load never counts as a pricing run in PPIS health.
SYSTEM = "ppis-load"


@dataclass
class LoadReport:
    run_id: str
    loaded: int
    quarantined: int


def read_csv(path: Path, what: str) -> pd.DataFrame:
    """Read a CSV as text columns (validation converts), or raise a DataError that says what to fix."""
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist", hint="check the path")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{path} is not a readable CSV file: {exc}", hint="export it as UTF-8 CSV with a header"
        ) from exc


def _load(engine: Engine, path: Path, what: str, validate, write) -> LoadReport:  # type: ignore[no-untyped-def]
    frame = read_csv(path, what)
    run_id = start_run(engine, SYSTEM, parameters={"load": what, "file": str(path)})
    try:
        valid, bad = validate(frame)
        n_bad = quarantine(engine, system=SYSTEM, source=f"load:{what}", rows=bad.to_dict("records"), run_id=run_id)
        loaded = write(valid)
    except BaseException as exc:
        finish_run(engine, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finish_run(
        engine,
        run_id,
        status="completed",
        inputs={"file": str(path), "rows": len(frame)},
        outcome={"summary": f"loaded {loaded} {what} rows, quarantined {n_bad}", "load": True},
    )
    return LoadReport(run_id, loaded, n_bad)


def load_catalogue_csv(engine: Engine, path: Path) -> LoadReport:
    """Insert or update products from CSV (sku, name, category, cost, price, optional guardrail columns)."""

    def validate(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        valid, bad = validate_catalogue(frame)
        if "name" not in valid.columns:
            valid["name"] = ""
        return valid, bad

    return _load(engine, path, "catalogue", validate, lambda valid: store.upsert_catalogue(engine, valid))


def load_sales_csv(engine: Engine, path: Path) -> LoadReport:
    """Insert daily sales from CSV (sku, day, price, units); a re-sent sku and day replaces the stored row."""
    known = pd.Index(store.load_catalogue(engine)["sku"])

    def validate(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        valid, bad = validate_sales(frame, known)
        valid["price"] = pd.to_numeric(valid["price"])
        valid["units"] = pd.to_numeric(valid["units"]).astype(int)
        return valid, bad

    return _load(engine, path, "sales", validate, lambda valid: store.upsert_sales(engine, valid))
