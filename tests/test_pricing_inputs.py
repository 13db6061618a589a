"""Our own inputs: bad catalogue and sales rows are quarantined with a reason a person can act on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework2.config import GuardrailOverrides
from framework2.tasks.pricing.inputs import validate_catalogue, validate_sales


def test_per_sku_guardrails_out_of_range_are_quarantined() -> None:
    catalogue = pd.DataFrame(
        {
            "sku": ["A", "B", "C", "D", "E"],
            "category": "kitchen",
            "cost": "1.0",
            "price": "2.0",
            "max_change_pct": ["0.05", "10%", "5", None, ""],
            "min_markup": ["0.1", None, None, "-3", None],
            "max_markup": [None, None, None, None, "0.5"],
        }
    )
    catalogue.loc[4, "min_markup"] = "0.6"  # max_markup 0.5 below it
    valid, bad = validate_catalogue(catalogue)
    assert valid["sku"].tolist() == ["A"]
    assert valid.loc[0, "max_change_pct"] == 0.05 and valid.loc[0, "min_markup"] == 0.1
    assert bad.set_index("sku")["reason"].to_dict() == {
        "B": "max_change_pct must be a fraction in (0, 1] (0.1 = 10 %) (got '10%')",
        "C": "max_change_pct must be a fraction in (0, 1] (0.1 = 10 %) (got '5')",
        "D": "min_markup must be a number from 0 to 100 (0.05 = cost + 5 %) (got '-3')",
        "E": "max_markup must exceed min_markup",
    }


def test_the_same_day_written_two_ways_is_a_duplicate() -> None:
    sales = pd.DataFrame({"sku": ["A", "A"], "day": ["2026-01-05", "2026-1-5"], "price": 1.0, "units": 1})
    valid, bad = validate_sales(sales, pd.Index(["A"]))
    assert len(valid) == 1 and bad["reason"].tolist() == ["duplicate day for this sku"]


def test_guardrail_overrides_accept_seed_keys_and_refuse_typos() -> None:
    assert GuardrailOverrides.model_validate({"maxChangePct": 0.2}).max_change_pct == 0.2
    with pytest.raises(ValueError, match="max_change"):
        GuardrailOverrides.model_validate({"max_change": 0.3})


# --- promotion days ----------------------------------------------------------------------------------------


def test_a_promo_column_is_stored_and_read_back_and_a_bad_flag_is_quarantined(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from framework2.store import pricing as store
    from framework2.tasks.pricing.loading import load_sales_csv
    from tests.test_pricing_hostile_input import fresh_engine, reasons, seed_product

    engine = fresh_engine(tmp_path)
    seed_product(engine, "GOOD-1")
    path = tmp_path / "s.csv"
    path.write_text(
        "sku,day,price,units,promo\n"
        "GOOD-1,2026-01-05,9.99,4,0\n"
        "GOOD-1,2026-01-06,7.99,9,yes\n"
        "GOOD-1,2026-01-07,9.99,5,\n"
        "GOOD-1,2026-01-08,9.99,5,maybe\n",
        encoding="utf-8",
    )
    report = load_sales_csv(engine, path)
    assert (report.loaded, report.quarantined) == (3, 1)
    assert "promo must be 1/0, true/false, yes/no or empty" in reasons(engine, report.run_id)[0]
    promo = store.load_sales(engine, date(2026, 1, 1)).set_index("day")["promo"]
    assert promo[pd.Timestamp("2026-01-05")] == 0 and promo[pd.Timestamp("2026-01-06")] == 1
    assert np.isnan(promo[pd.Timestamp("2026-01-07")])  # not said


def test_without_any_promo_flag_the_sales_carry_no_promo_column(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from framework2.store import pricing as store
    from framework2.tasks.pricing.loading import load_sales_csv
    from tests.test_pricing_hostile_input import fresh_engine, seed_product

    engine = fresh_engine(tmp_path)
    seed_product(engine, "GOOD-1")
    path = tmp_path / "s.csv"
    path.write_text("sku,day,price,units\nGOOD-1,2026-01-05,9.99,4\n", encoding="utf-8")
    load_sales_csv(engine, path)
    assert "promo" not in store.load_sales(engine, date(2026, 1, 1)).columns  # temporary cuts are found instead


def test_sales_dated_after_tomorrow_are_quarantined(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from framework2.tasks.pricing.loading import load_sales_csv
    from tests.test_pricing_hostile_input import fresh_engine, reasons, seed_product

    engine = fresh_engine(tmp_path)
    seed_product(engine, "GOOD-1")
    path = tmp_path / "s.csv"
    path.write_text("sku,day,price,units\nGOOD-1,2099-01-01,19.00,3\nGOOD-1,2026-01-05,9.99,4\n", encoding="utf-8")
    report = load_sales_csv(engine, path)
    assert (report.loaded, report.quarantined) == (1, 1)
    assert "day is in the future" in reasons(engine, report.run_id)[0]


def test_a_semicolon_separated_catalogue_is_refused_with_the_separator_named(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from framework2.errors import DataError
    from framework2.tasks.pricing.loading import load_catalogue_csv
    from tests.test_pricing_hostile_input import fresh_engine

    path = tmp_path / "catalogue.csv"
    path.write_text("sku;name;category;cost;price\nA-1;Apple;fruit;1,20;2,50\n", encoding="utf-8")
    with pytest.raises(DataError) as refused:
        load_catalogue_csv(fresh_engine(tmp_path), path)
    assert "separated by semicolons" in refused.value.hint
    assert "sku, category, cost, price" in refused.value.hint


def test_an_empty_sales_file_says_which_columns_the_header_needs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from framework2.errors import DataError
    from framework2.tasks.pricing.loading import load_sales_csv
    from tests.test_pricing_hostile_input import fresh_engine

    path = tmp_path / "sales.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DataError) as refused:
        load_sales_csv(fresh_engine(tmp_path), path)
    assert "is empty or has no header row" in str(refused.value)
    assert "sku, day, price, units" in refused.value.hint
