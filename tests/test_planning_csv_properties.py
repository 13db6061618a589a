"""Property tests of the PPMS task-history CSV boundary (``connectors.read_csv``, ``history.read_history``).

Whatever a row holds (NaN, ±inf, 1e400, non-ASCII digits, dates at the ends of the calendar with offsets, NUL
bytes, quotes, line breaks, extra or missing cells), it is read exactly as written or set aside with a reason;
nothing but ``DataError`` escapes, no number is non-finite and no cell lands in another column.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

from hypothesis import event, given, settings
from hypothesis import strategies as st

from framework2.errors import DataError
from framework2.tasks.planning.connectors import HOURS_PER_DAY, read_csv
from framework2.tasks.planning.history import read_history
from framework2.tasks.planning.records import TaskRecord

COLUMNS = (
    "key",
    "project",
    "title",
    "status",
    "estimate_days",
    "estimate_hours",
    "created_at",
    "started_at",
    "done_at",
    "updated_at",
    "business_value",
    "confidence",
    "depends_on",
)
NUMBER_COLUMNS = ("business_value", "confidence")
T = TypeVar("T")
TIME_COLUMNS = ("created_at", "started_at", "done_at", "updated_at")
UNICODE = st.characters(exclude_categories=("Cs",))
TEXT = st.one_of(
    st.text(UNICODE, max_size=12),
    st.sampled_from(["", "  ", "a,b", 'say "hi"', "new\nline", "cr\rlf\r\n", "nul\x00", "\ufeffbom", "\u2028"]),
)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=0, max_value=4000).map(lambda v: f"{v:.3f}"),
    st.integers(min_value=-(10**25), max_value=10**25).map(str),
    st.sampled_from(["", " 2 ", "inf", "-inf", "Infinity", "NaN", "1e400", "-1e400", "1e-320", "-0", "0x10"]),
    st.sampled_from(["1_000", "1,5", "١٢", "٣.٥", "10%", "5d", "  ", "nan\x00"]),
)
OFFSETS = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
TIMES = st.one_of(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 1, 1)).map(datetime.isoformat),
    st.datetimes(timezones=st.one_of(st.none(), OFFSETS)).map(datetime.isoformat),
    st.dates().map(str),
    st.sampled_from(["0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00", "2026-02-30", "٢٠٢٦-01-01", "yesterday"]),
    TEXT,
)
STATUSES = st.one_of(st.sampled_from(["", "todo", "In Progress", "done", "DONE", "wip", "closed", "blocked"]), TEXT)
CELLS = {
    "key": st.one_of(st.sampled_from(["K-1", "K-2", " K-3 ", "Ünï-✓"]), TEXT),
    "project": st.one_of(st.sampled_from(["P", "shop"]), TEXT),
    "title": TEXT,
    "status": STATUSES,
    "estimate_days": NUMBERS,
    "estimate_hours": st.one_of(st.just(""), NUMBERS),
    "depends_on": st.one_of(st.just(""), st.sampled_from(["K-1", "K-1;K-2", ";;"]), TEXT),
    **dict.fromkeys(NUMBER_COLUMNS, st.one_of(st.just(""), NUMBERS)),
    **dict.fromkeys(TIME_COLUMNS, st.one_of(st.just(""), TIMES)),
}

SMALL = st.floats(min_value=0, max_value=100).map(repr)
GOOD = {
    **dict.fromkeys(COLUMNS, st.just("")),
    "project": st.sampled_from(["P", " shop "]),
    "title": st.text(UNICODE, max_size=8),
    "estimate_days": st.one_of(st.just(""), SMALL),
    "business_value": st.one_of(st.just(""), SMALL),
    "created_at": st.datetimes(datetime(2020, 1, 1), datetime(2022, 1, 1)).map(datetime.isoformat),
    "started_at": st.sampled_from(["", "2023-01-01T09:00:00+02:00"]),
    "done_at": st.sampled_from(["", "2024-01-01"]),
}


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[list[str], list[list[str]], bytes]:
    """(header, rows as written, file bytes): columns in any order, rows with cells missing or added."""
    header = list(draw(st.permutations(COLUMNS)))
    rows = []
    for number in range(draw(st.integers(0, 6))):
        # A good row with up to two hostile cells, or a row of hostile cells.
        good = {**GOOD, "key": st.just(f"K-{number}")}
        hostile = draw(st.one_of(st.just(set(header)), st.sets(st.sampled_from(header), max_size=2)))
        row = [draw(CELLS[column] if column in hostile else good[column]) for column in header]
        change = draw(st.sampled_from([0, 0, 0, 0, -1, -3, 1, 2]))
        row = row[:change] if change < 0 else row + [draw(TEXT) for _ in range(change)]
        rows.append(row)
    out = io.StringIO()
    # Minimal quoting only quotes a CR under CRLF line ends; with LF ones every cell is quoted.
    ending, quoting = draw(st.sampled_from([("\r\n", csv.QUOTE_MINIMAL), ("\n", csv.QUOTE_ALL)]))
    csv.writer(out, lineterminator=ending, quoting=quoting).writerows([header, *rows])
    bom = draw(st.sampled_from([b"", b"\xef\xbb\xbf"]))
    return header, rows, bom + out.getvalue().encode("utf-8")


def _blank(row: list[str], width: int) -> bool:
    """A row ``read_csv`` skips: no more cells than the header and every cell blank."""
    return len(row) <= width and all(not cell.strip() for cell in row)


def _time(text: str) -> datetime | str | None:
    """The cell as read_csv should read it; the text itself (matching no field) when it is no time."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return text


def _number(text: str) -> float | str | None:
    """The cell as read_csv should read it; the text itself (matching no field) when it is no number."""
    try:
        return float(text.strip()) if text.strip() else None
    except ValueError:
        return text


def _read(data: bytes, reader: Callable[[Path], T]) -> T:
    """``reader`` applied to a file holding ``data``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tasks.csv"
        path.write_bytes(data)
        return reader(path)


@settings(max_examples=80, deadline=None)
@given(file=csv_files())
def test_any_task_row_is_read_exactly_or_rejected_with_a_reason(file: tuple[list[str], list[list[str]], bytes]) -> None:
    header, rows, data = file
    batch = _read(data, read_csv)

    event(f"{len(batch.tasks)} task(s)")
    written = [row for row in rows if not _blank(row, len(header))]
    assert len(batch.tasks) + len(batch.rejected) == len(written), "every non-blank row is a task or a rejection"
    for rejection in batch.rejected:
        assert isinstance(rejection["reason"], str) and rejection["reason"].split(": ", 1)[1].strip()
    by_key = {}
    for row in written:
        # read_csv reads the file as text with universal newlines, so a CR inside a quoted cell arrives as LF.
        row = [cell.replace("\r\n", "\n").replace("\r", "\n") for cell in row]
        cells = dict(zip(header, row + [""] * (len(header) - len(row)), strict=False))
        if len(row) == len(header):  # a short row is refused: its cells cannot be placed
            by_key.setdefault(cells["key"].strip(), []).append(cells)
    assert len({t.key for t in batch.tasks}) == len(batch.tasks), "keys are unique"
    for task in batch.tasks:
        # A task comes from a row of at most the header's width whose cells are exactly its fields.
        assert any(_is_read_from(task, cells) for cells in by_key.get(task.key, [])), f"{task!r} matches no row"
        numbers = [task.estimate_days, *(getattr(task, c) for c in NUMBER_COLUMNS)]
        assert all(math.isfinite(n) and n >= 0 for n in numbers if n is not None)


def _is_read_from(task: TaskRecord, cells: dict[str, str]) -> bool:
    """Whether ``task`` holds exactly what ``cells`` (column → cell as written) say."""
    days, hours = _number(cells["estimate_days"]), _number(cells["estimate_hours"])
    estimate = days if days is not None else hours / HOURS_PER_DAY if isinstance(hours, float) else hours
    return (
        (task.title, task.project, task.estimate_days) == (cells["title"].strip(), cells["project"].strip(), estimate)
        and all(getattr(task, column) == _number(cells[column]) for column in NUMBER_COLUMNS)
        and all(getattr(task, column) == _time(cells[column]) for column in ("started_at", "done_at"))
        and (not cells["created_at"].strip() or task.created_at == _time(cells["created_at"]))
        and (not cells["updated_at"].strip() or task.updated_at == _time(cells["updated_at"]))
    )


@settings(max_examples=40, deadline=None)
@given(file=csv_files())
def test_a_history_file_is_read_or_refused_with_a_data_error(file: tuple[list[str], list[list[str]], bytes]) -> None:
    _, _, data = file
    try:
        history = _read(data, read_history)
    except DataError as exc:
        assert exc.message and exc.hint
        return
    assert history.tasks and history.earliest <= history.latest
    assert {t.key for t in history.tasks} <= {t.key for t in _read(data, read_csv).tasks}


def test_a_date_at_the_end_of_the_calendar_with_an_offset_is_rejected_not_an_overflow() -> None:
    text = (
        "key,project,title,created_at,done_at\n"
        "K-1,P,early,0001-01-01T00:00+01:00,\n"
        "K-2,P,late,2026-01-01,9999-12-31T23:59-01:00\n"
        "K-3,P,fine,2026-01-01,\n"
    )
    batch = read_csv(text)
    assert [t.key for t in batch.tasks] == ["K-3"]
    reasons = [r["reason"] for r in batch.rejected]
    assert "created_at '0001-01-01T00:00+01:00'" in reasons[0] and "done_at '9999-12-31T23:59-01:00'" in reasons[1]


def test_a_row_with_fewer_cells_than_the_header_is_rejected_not_read_as_blanks() -> None:
    # "a,p,x,2024-01-05" under a header ending in done_at: a dropped comma would move the date to started_at.
    batch = read_csv("key,project,title,started_at,done_at\na,p,x,2024-01-05\nb,p,y,2024-01-02,2024-01-05\n")
    assert [t.key for t in batch.tasks] == ["b"]
    assert "1 fewer cell(s) than the header has columns" in batch.rejected[0]["reason"]


def test_a_task_row_the_store_cannot_hold_is_rejected_not_left_to_fail_the_write() -> None:
    long_key = "K" * 201
    batch = read_csv(f"key,project,title\n{long_key},p,x\na,p,nul \x00 title\nb,p\u202e,reversed project\nc,p,fine\n")
    assert [t.key for t in batch.tasks] == ["c"]
    reasons = [r["reason"] for r in batch.rejected]
    assert "key is 201 characters long; at most 200 are stored" in reasons[0]
    assert "title holds the control character U+0000" in reasons[1]
    assert "project holds the control character U+202E" in reasons[2]
