"""The store: migrations equal the models, upgrades keep rows, failures leave nothing half-written."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlmodel import SQLModel

from framework2.errors import StoreError
from framework2.store import models
from framework2.store.engine import check_connection, make_engine, open_store, session_scope
from framework2.store.migrate import current_revision, head_revision, upgrade
from framework2.store.runs import finish_run, quarantine, recent_runs, start_run


def schema_diff(engine) -> list:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)


def test_migrations_produce_exactly_the_models_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []


def test_migrations_produce_exactly_the_models_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert schema_diff(engine) == []


def _fill_core(engine) -> str:  # type: ignore[no-untyped-def]
    run_id = start_run(engine, "ppis", parameters={"feeds": ["a"]})
    quarantine(engine, system="ppis", source="feed:a", rows=[{"sku": "X", "reason": "unknown sku"}], run_id=run_id)
    finish_run(engine, run_id, status="completed", outcome={"quality": 0.9})
    return run_id


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_from_previous_schema_keeps_every_row(backend: str, tmp_path, request) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'old.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    upgrade(engine, "0002_pricing")  # the previous release's schema
    assert "release" not in inspect(engine).get_table_names()
    run_id = _fill_core(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO product (sku, name, category, cost, price, currency, active, updated_at) "
                "VALUES ('SKU-1', 'Kettle', 'kitchen', 10, 20, 'EUR', true, '2026-11-01 00:00:00+00')"
            )
        )

    upgrade(engine)  # what `framework2 init` / every run does on start

    assert current_revision(engine) == head_revision()
    runs = recent_runs(engine, "ppis")
    assert [r.id for r in runs] == [run_id]
    assert runs[0].quarantined == 1 and runs[0].outcome == {"quality": 0.9}
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM quarantined_row")).scalar() == 1
        assert conn.execute(text("SELECT price FROM product WHERE sku = 'SKU-1'")).scalar() == 20
    assert "release" in inspect(engine).get_table_names()


def test_failed_write_leaves_nothing_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        session.add(models.Product(sku="A", category="c", cost=1, price=2))
        session.flush()
        raise RuntimeError("crash mid-write")
    with session_scope(engine) as session:
        assert session.scalars(select(models.Product)).all() == []


def test_unreachable_database_error_names_it_without_password() -> None:
    engine = make_engine("postgresql+psycopg://user:s3cret@127.0.0.1:1/nowhere")
    with pytest.raises(StoreError) as err:
        check_connection(engine)
    assert "127.0.0.1:1/nowhere" in err.value.message
    assert "s3cret" not in str(err.value)
    assert "is running" in err.value.hint


def test_garbage_url_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        make_engine("not a url at all")


def test_open_store_creates_and_migrates_a_new_sqlite_file(store_url: str) -> None:
    engine = open_store()
    assert current_revision(engine) == head_revision()


def test_sales_of_inactive_products_are_not_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datetime as dt

    import pandas as pd

    from framework2.store.pricing import load_sales, replace_sales, upsert_catalogue

    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine)
    upsert_catalogue(engine, pd.DataFrame({"sku": ["A", "B"], "category": "c", "cost": 1.0, "price": 2.0}))
    replace_sales(engine, pd.DataFrame({"sku": ["A", "B"], "day": ["2026-11-01"] * 2, "price": 2.0, "units": 1}))
    with session_scope(engine) as session:
        session.get(models.Product, "B").active = False  # discontinued: its history must not read as "unknown"
    assert load_sales(engine, dt.date(2026, 1, 1))["sku"].tolist() == ["A"]


def test_threads_opening_the_store_at_once_all_get_a_migrated_store(store_url: str) -> None:
    """Alembic's context lives in module globals: concurrent migrations in one process must take turns (two
    flows started together each open the store)."""
    import threading

    from framework2.store.engine import dispose_all, open_store

    dispose_all()
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_once() -> None:
        try:
            barrier.wait(timeout=30)
            open_store()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
