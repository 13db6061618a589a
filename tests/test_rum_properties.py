"""Property tests of the PUXT real-user-monitoring boundary (``rum.prepare_rum``, from a CSV file or a table).

Whatever a beacon row holds (NaN, ±inf, 1e400, huge epochs, non-ASCII digits, NUL bytes, quotes, line breaks,
a BOM, CRLF, cells missing or added), it is kept exactly as written or quarantined with a reason; nothing but
``DataError`` escapes, no kept value is non-finite, and no cell lands in another column.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from framework2.errors import DataError
from framework2.tasks.performance.rum import METRICS, PLAUSIBLE_MAX, prepare_rum

HEADER = ["n", "page", "release", "metric", "value", "timestamp", "device"]
UNICODE = st.characters(exclude_categories=("Cs",))
TEXT = st.one_of(
    st.text(UNICODE, max_size=10),
    st.sampled_from(["", "  ", "/a,b", 'say "hi"', "new\nline", "cr\r\nlf", "nul\x00", "\ufeffbom", "NA", "1.10"]),
)
METRIC_CELLS = st.one_of(st.sampled_from([*METRICS, " lcp ", "Cls", "FID", ""]), TEXT)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=70_000).map(lambda v: f"{v:.2f}"),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.sampled_from(["", "inf", "-inf", "Infinity", "NaN", "1e400", "-1e400", "1e-320", "-0", "0x10", "١٢", "1,5"]),
)
STAMPS = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)).map(datetime.isoformat),
    st.sampled_from(["", "2025-03-03T10:00:00Z", "1741000000", "1741000000000", "1e400", "0001-01-01", "9999-12-31"]),
    TEXT,
)


@st.composite
def rum_files(draw: st.DrawFn) -> tuple[list[list[str]], bytes]:
    """(data rows as written, file bytes); each row starts with its number, some miss or add cells."""
    rows = []
    for number in range(draw(st.integers(0, 6))):
        row = [str(number), draw(TEXT), draw(TEXT), draw(METRIC_CELLS), draw(VALUES), draw(STAMPS), draw(TEXT)]
        if draw(st.booleans()):  # a good row with up to two of those hostile cells
            good = [
                "/a",
                " v1 ",
                draw(st.sampled_from([*METRICS, " lcp "])),
                draw(st.floats(0, 10).map(repr)),
                "1741000000",
                "mobile",
            ]
            keep = draw(st.sets(st.integers(1, 6), max_size=2))
            row = [str(number)] + [row[i] if i in keep else good[i - 1] for i in range(1, 7)]
        change = draw(st.sampled_from([0, 0, 0, 0, -1, -2, 1, 2]))
        rows.append(row[:change] if change < 0 else row + [draw(TEXT) for _ in range(change)])
    out = io.StringIO()
    # Minimal quoting only quotes a CR under CRLF line ends; with LF ones every cell is quoted.
    ending, quoting = draw(st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]))
    csv.writer(out, lineterminator=ending, quoting=quoting).writerows([HEADER, *rows])
    return rows, draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + out.getvalue().encode("utf-8")


def _check_valid(valid: pd.DataFrame) -> None:
    """Kept rows: a known metric, a finite plausible value and a timestamp."""
    assert valid["metric"].isin(METRICS).all()
    for metric, value in zip(valid["metric"], valid["value"], strict=True):
        assert isinstance(value, float) and math.isfinite(value) and 0 <= value <= PLAUSIBLE_MAX[metric]
    assert valid["timestamp"].notna().all()


@settings(max_examples=80, deadline=None)
@given(file=rum_files())
def test_any_rum_row_is_kept_exactly_or_quarantined_with_a_reason(file: tuple[list[list[str]], bytes]) -> None:
    rows, data = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rum.csv"
        path.write_bytes(data)
        result = prepare_rum(path)

    event(f"{len(result.valid)} kept")
    assert len(result.valid) + len(result.quarantined) == len(rows), "every row is kept or quarantined"
    assert all(isinstance(r, str) and r.strip() for r in result.quarantined["reason"])
    _check_valid(result.valid)
    for kept in result.valid.to_dict("records"):
        # The row numbered n, written with exactly the header's cells, holds these values in these columns.
        row = rows[int(kept["n"])]
        assert len(row) == len(HEADER), f"row {row!r} has {len(row)} cells but was kept"
        assert kept["page"] == row[1].strip() and kept["release"] == row[2].strip()
        assert kept["metric"] == row[3].strip().upper()
        assert kept["value"] == float(row[4])


TABLE_CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.datetimes(timezones=st.sampled_from([None, UTC])),
    TEXT,
    VALUES,
    STAMPS,
)


@settings(max_examples=80, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.one_of(TEXT, TABLE_CELLS), TEXT, METRIC_CELLS, TABLE_CELLS, TABLE_CELLS).map(list), max_size=6
    )
)
def test_any_rum_table_row_is_kept_with_a_finite_value_or_quarantined_with_a_reason(rows: list[list[object]]) -> None:
    table = pd.DataFrame(rows, columns=["page", "release", "metric", "value", "timestamp"])

    result = prepare_rum(table)

    assert len(result.valid) + len(result.quarantined) == len(rows)
    assert all(isinstance(r, str) and r.strip() for r in result.quarantined["reason"])
    _check_valid(result.valid)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Every row one cell too long: pandas used to make the first column the index and shift the rest left.
        ("page,release,metric,value,timestamp\n/a,v1,LCP,LCP,900,1741000000\n", "6 cells, the header has 5"),
        # One row too long: pandas used to refuse the whole file with its own ParserError.
        (
            "page,release,metric,value,timestamp\n/a,v1,LCP,900,1741000000,x\n/b,v1,LCP,900,1741000000\n",
            "6 cells, the header has 5",
        ),
        ("page,release,metric,value,timestamp\n/a,v1,LCP,900\n/b,v1,LCP,900,1741000000\n", "4 cells"),
    ],
)
def test_a_rum_row_with_more_or_fewer_cells_than_the_header_is_quarantined_not_shifted(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "rum.csv"
    path.write_text(text, encoding="utf-8")

    result = prepare_rum(path)

    assert reason in result.quarantined["reason"].iloc[0]
    assert list(result.valid["page"]) == ([] if text.count("\n") == 2 else ["/b"])


def test_a_rum_file_that_is_not_utf8_or_is_empty_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "rum.csv"
    path.write_bytes(b"page,release,metric,value,timestamp\n/\xff,v1,LCP,900,1741000000\n")
    with pytest.raises(DataError, match="not UTF-8"):
        prepare_rum(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        prepare_rum(path)


def test_a_kept_rum_value_is_the_number_written_to_the_last_digit(tmp_path: Path) -> None:
    path = tmp_path / "rum.csv"
    path.write_text("page,release,metric,value,timestamp\n/a,v1,LCP,36029.432725478444,1741000000\n", encoding="utf-8")

    assert prepare_rum(path).valid["value"].tolist() == [36029.432725478444]


def test_a_rum_row_with_a_nul_byte_is_quarantined_not_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "rum.csv"
    path.write_text("page,release,metric,value,timestamp\n/a,v1\x00,LCP,900,1741000000\n", encoding="utf-8")

    result = prepare_rum(path)

    assert result.valid.empty and "NUL byte" in result.quarantined["reason"].iloc[0]


def test_a_kept_rum_value_given_as_text_in_a_table_is_the_number_written_to_the_last_digit() -> None:
    table = pd.DataFrame([["/a", "v1", "LCP", "7.3756045517187605", 1741000000], ["/a", "v1", "LCP", "x", 1741000000]])
    table.columns = ["page", "release", "metric", "value", "timestamp"]

    assert prepare_rum(table).valid["value"].tolist() == [7.3756045517187605]
