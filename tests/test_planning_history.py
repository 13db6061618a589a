"""PPMS on a task history file: the CSV a lead exports, read as it is, and every way it can be wrong."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from framework2.cli import app, main
from framework2.errors import DataError
from framework2.sample.real_history import write_tasks_csv
from framework2.tasks.planning.connectors import read_csv
from framework2.tasks.planning.history import backtest_file, forecast_file, parse_every
from framework2.tasks.planning.synthetic import synthetic_team_history

START = datetime(2025, 1, 6, tzinfo=UTC)


@pytest.fixture(scope="module")
def history_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tasks = []
    for k in range(2):
        made, _ = synthetic_team_history(f"team{k}", waves=16, tasks_per_wave=10, workers=3, start=START, seed=k)
        tasks += made
    return write_tasks_csv(tasks, tmp_path_factory.mktemp("history") / "tasks.csv")


def test_a_dates_only_export_reads_its_status_from_the_dates_and_hours_become_days() -> None:
    batch = read_csv(
        "key,project,title,started_at,done_at,estimate_hours\n"
        "a,p,x,2024-01-01,2024-01-03,16\n"
        "b,p,y,2024-01-02,,4\n"
        "c,p,z,,,\n"
        "d,p,w,,,\n"
    )
    assert [(t.key, t.status, t.estimate_days) for t in batch.tasks] == [
        ("a", "done", 2.0),
        ("b", "in_progress", 0.5),
        ("c", "todo", None),
        ("d", "todo", None),
    ]
    both = read_csv("key,project,title,estimate_days,estimate_hours\na,p,x,1,8\n")
    assert not both.tasks and "both estimate_days and estimate_hours" in both.rejected[0]["reason"]


def test_forecast_as_of_a_past_day_sees_only_what_was_known_then(history_csv: Path) -> None:
    result = forecast_file(history_csv, project="team0", as_of=date(2025, 3, 3), trials=500)

    assert result.as_of == datetime(2025, 3, 3, 23, 59, 59, 999999, tzinfo=UTC)
    assert result.open_tasks > 0 and result.forecast.available
    assert result.forecast.p50_date is not None and result.forecast.p50_date >= date(2025, 3, 4)
    assert result.forecast.model in ("flow", "plan", "throughput") and result.forecast.model_reason
    assert result.rejected_rows == 0


def test_backtest_of_a_file_scores_every_project_beside_the_baseline(history_csv: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = backtest_file(history_csv, every_days=14, trials=300, on_progress=lambda d, t: seen.append((d, t)))

    assert result.projects == ["team0", "team1"] and result.cases
    assert {c.project for c in result.cases} == {"team0", "team1"}
    assert result.scores is not None and result.baseline is not None
    assert result.verdict in ("consistent", "too early", "too late", "too wide", "too narrow", "too few cases")
    assert seen and seen[-1][0] == seen[-1][1]
    # each project is also judged on its own cases, and the parts add up to the whole
    assert [p.project for p in result.by_project] == ["team0", "team1"]
    assert sum(p.cases for p in result.by_project) == len(result.cases)
    for part in result.by_project:
        own = [c for c in result.cases if c.project == part.project]
        assert part.scores is not None and part.scores.cases == len(own)
        held = sum(1 for c in own if c.covered[85])
        decided = sum(1 for c in own if c.covered[85] is not None)
        assert part.scores.coverage[1].quantile == 85 and part.scores.coverage[1].covered == held
        assert part.scores.coverage[1].decided == decided


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ppms", "forecast", "/nowhere/tasks.csv"], "is not a file"),
        (["ppms", "backtest", "{csv}", "--every", "fortnight"], "is not a number of days"),
        (["ppms", "forecast", "{csv}", "--project", "team0", "--as-of", "03/03/2025"], "is not a date"),
        (["ppms", "forecast", "{csv}"], "holds 2 projects: team0, team1"),
        (["ppms", "forecast", "{csv}", "--project", "nope"], "project 'nope' is not in tasks.csv"),
    ],
)
def test_bad_arguments_get_one_error_line_and_a_hint(
    history_csv: Path, args: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("sys.argv", ["framework2", *(a.replace("{csv}", str(history_csv)) for a in args)])
    with pytest.raises(SystemExit) as exit_:
        main()
    captured = capsys.readouterr()
    out = captured.err
    assert exit_.value.code == 1
    assert captured.out == ""  # stdout stays clean for --json readers
    assert "error:" in out and message in out.replace("\n", " ") and "hint:" in out
    assert "Traceback" not in out


def test_a_file_with_no_readable_task_says_which_rows_are_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("key,project,title,created_at\nA-1,p,x,yesterday\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no readable task: .*'yesterday' is not a date"):
        forecast_file(bad)


def test_forecast_json_carries_the_model_the_dates_and_the_left_out_rows(history_csv: Path, tmp_path: Path) -> None:
    text = history_csv.read_text(encoding="utf-8") + "broken,team0,x,todo,,,,,,not-a-date,,,\n"
    path = tmp_path / "tasks.csv"
    path.write_text(text, encoding="utf-8")

    args = ["ppms", "forecast", str(path), "--project", "team1", "--as-of", "2025-03-03", "--json", "--trials", "500"]
    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["project"] == "team1" and report["rejected_rows"] == 1
    assert "not a date" in report["rejected_reasons"][0]
    assert report["forecast"]["model"] and report["forecast"]["trials"] == 500


def test_every_accepts_days_and_weeks() -> None:
    assert (parse_every("28d"), parse_every("4w"), parse_every("14")) == (28, 28, 14)
    with pytest.raises(DataError):
        parse_every("0d")
    assert timedelta(days=parse_every("1w")) == timedelta(weeks=1)


def _rows(*lines: str) -> str:
    return "key,project,title,status,created_at,started_at,done_at,estimate_days,depends_on\n" + "\n".join(lines) + "\n"


def _team(n: int = 40) -> list[str]:
    """n finished tasks of project p over a few months, and three still open."""
    day = date(2024, 1, 1)
    rows = []
    for i in range(n):
        start = day + timedelta(days=2 * i)
        rows.append(f"t{i},p,work {i},done,{start},{start},{start + timedelta(days=1 + i % 5)},1,")
    rows += [f"o{i},p,open {i},in_progress,{day + timedelta(days=80)},{day + timedelta(days=80)},,2," for i in range(3)]
    return rows


def test_placeholder_dates_typos_and_absurd_estimates_are_rejected_per_row_not_crashing(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text(
        _rows(
            *_team(),
            "x1,p,sentinel,done,2024-02-01,2024-02-01,9999-12-31,1,",
            "x2,p,ancient,todo,0001-01-01,,,1,",
            "x3,p,typo,done,2024-02-01,2024-02-01,2204-01-10,1,",
            "x4,p,huge,todo,2024-02-01,,,1e300,",
            "x5,p,open but done,todo,2024-02-01,,2024-02-03,1,",
            "x6,p,no dates,todo,,,,1,",
        ),
        encoding="utf-8",
    )

    result = forecast_file(path, trials=300)

    reasons = " | ".join(result.rejected_reasons)
    assert result.rejected_rows == 6
    assert "9999-12-31' is not a plausible date" in reasons and "0001-01-01' is not a plausible date" in reasons
    assert "2204-01-10' is not a plausible date" in reasons and "is more than 3650" in reasons
    assert "'todo' but done_at is set" in reasons
    assert result.as_of < datetime(2024, 12, 31, tzinfo=UTC)  # the typo and the clock did not move "now"
    assert result.forecast.available and result.open_tasks == 3


def test_a_dependency_cycle_in_the_file_is_set_aside_with_its_reason_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text(
        _rows(
            *_team(),
            "c1,p,a,todo,2024-03-20,,,1,c2",
            "c2,p,b,todo,2024-03-20,,,1,c1",
            "c3,p,c,todo,2024-03-20,,,1,NOPE-1",
        ),
        encoding="utf-8",
    )

    result = forecast_file(path, trials=300)

    reasons = " | ".join(result.rejected_reasons)
    assert result.forecast.available and result.open_tasks == 6
    assert "cycle" in reasons and "NOPE-1" in reasons


def test_as_of_outside_the_file_is_refused_or_said(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text(_rows(*_team()), encoding="utf-8")

    with pytest.raises(DataError, match="before the file's first recorded moment"):
        forecast_file(path, as_of=date(2000, 1, 1), trials=300)
    later = forecast_file(path, as_of="9999-12-31", trials=300)
    assert "as of the file's last recorded moment" in later.note
    with pytest.raises(DataError, match="is not a date"):
        forecast_file(path, as_of="31/12/2024", trials=300)
    for bad in (0, 1.5, "28d", 100_000):
        with pytest.raises(DataError, match="every_days"):
            backtest_file(path, every_days=bad)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="trials"):
        forecast_file(path, trials=1)


def test_a_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tasks.csv"
    path.write_text("key,project,title,done_at,done_at\na,p,x,2024-01-01,2024-01-02\n", encoding="utf-8")
    with pytest.raises(DataError, match="done_at appear more than once"):
        forecast_file(path)


def test_the_plan_model_never_says_a_task_far_over_its_estimate_is_done_in_a_day_or_two(tmp_path: Path) -> None:
    path = tmp_path / "over_plan.csv"
    path.write_text(
        "key,project,title,status,created_at,started_at,done_at,estimate_days\n"
        "A-0,shop,a,done,2024-02-01,2024-02-02,2024-02-05,2\n"
        "A-1,shop,b,done,2024-02-03,2024-02-05,2024-02-07,1\n"
        "A-2,shop,c,done,2024-02-10,2024-02-12,2024-02-14,2\n"
        "A-3,shop,d,in_progress,2024-02-28,2024-03-01,,1\n"  # 1 day estimated, 22 working days running
        "A-4,shop,e,todo,2024-04-02,,,1\n",  # the file's last recorded moment: "now"
        encoding="utf-8",
    )
    result = forecast_file(path, project="shop", as_of=date(2024, 4, 2))
    assert result.forecast.model == "plan"
    assert (result.forecast.p50_date - date(2024, 4, 2)).days >= 3
    assert (result.forecast.p85_date - date(2024, 4, 2)).days >= 10


def test_write_tasks_csv_takes_a_plain_string_path(tmp_path: Path) -> None:
    made, _ = synthetic_team_history("t", waves=1, tasks_per_wave=5, workers=1, start=START, seed=1)
    written = write_tasks_csv(made, str(tmp_path / "t.csv"))
    assert written.read_text(encoding="utf-8").startswith("key,project,")


def test_a_mistyped_year_that_moves_now_is_named_in_the_forecast(tmp_path: Path) -> None:
    path = tmp_path / "typo.csv"
    rows = [
        f"T-{i},shop,t,done,2024-0{1 + i % 5}-0{1 + i % 7},2024-0{1 + i % 5}-1{i % 7},2024-06-2{i % 7}"
        for i in range(8)
    ]
    rows.append("T-9,shop,t,done,2024-05-01,2024-05-02,2029-05-03")  # meant 2024
    rows.append("T-10,shop,t,todo,2024-06-01,,")
    path.write_text("key,project,title,status,created_at,started_at,done_at\n" + "\n".join(rows) + "\n", "utf-8")
    result = forecast_file(path, project="shop", trials=500)
    assert "2029-05-03" in result.note and "typo" in result.note and "--as-of" in result.note
    assert "2029-05-03" in backtest_file(path, trials=200).note
