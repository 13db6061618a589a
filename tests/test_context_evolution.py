"""PCES evolution: diffs between requirement versions, volatility metrics and the weekly churn chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from framework2.tasks.context.evolution import (
    METRIC_COLUMNS,
    FieldChange,
    RequirementDiff,
    VersionPoint,
    churn,
    churn_chart,
    diff_requirements,
    evolution_metrics,
)
from framework2.tasks.context.requirements import Requirement, parse_requirement

NOW = datetime(2024, 6, 3, 12, tzinfo=UTC)


def req(
    *,
    priority: str = "should",
    owner: str | None = None,
    tasks: str = "[jira:SHOP-1]",
    body: str = "Guests pay without an account.",
    criteria: tuple[str, ...] = ("A guest can pay", "Totals include VAT"),
    source: str = "checkout.md",
) -> Requirement:
    front = ["id: REQ-3", "title: Guest checkout", f"priority: {priority}", f"tasks: {tasks}"]
    if owner:
        front.append(f"owner: {owner}")
    items = "\n".join(f"- {c}" for c in criteria)
    return parse_requirement("---\n" + "\n".join(front) + f"\n---\n{body}\n\n## Acceptance criteria\n{items}\n", source)


# --- diffs ---------------------------------------------------------------------------------------------------


def test_identical_versions_give_no_diff_even_from_another_path() -> None:
    assert diff_requirements(req(), req(source="moved/checkout.md")) is None
    assert diff_requirements(None, None) is None


def test_an_added_requirement_lists_its_set_fields_and_all_criteria() -> None:
    diff = diff_requirements(None, req(owner="alice"))

    assert diff is not None and diff.kind == "added"
    assert diff.fields_added == ["title", "priority", "owner", "tasks", "status"]
    assert diff.fields_removed == [] and diff.fields_changed == []
    assert diff.criteria_added == ["A guest can pay", "Totals include VAT"]
    assert diff.body_diff.splitlines()[2:4] == ["@@ -0,0 +1,5 @@", "+Guests pay without an account."]
    assert diff.summary == 'REQ-3 added: "Guest checkout" (draft, priority should, 2 acceptance criteria)'


def test_a_removed_requirement_lists_its_fields_and_criteria_as_removed() -> None:
    diff = diff_requirements(req(), None)

    assert diff is not None and diff.kind == "removed"
    assert diff.fields_removed == ["title", "priority", "tasks", "status"]
    assert diff.criteria_removed == ["A guest can pay", "Totals include VAT"]
    assert diff.summary == 'REQ-3 removed: "Guest checkout" (had 2 acceptance criteria)'


def test_changed_fields_are_split_into_added_removed_and_changed() -> None:
    diff = diff_requirements(req(owner="alice", tasks="[jira:SHOP-1]"), req(priority="must", tasks="[jira:SHOP-2]"))

    assert diff is not None and diff.kind == "changed"
    assert diff.fields_added == []
    assert diff.fields_removed == ["owner"]
    assert diff.fields_changed == [
        FieldChange(field="priority", before="should", after="must"),
        FieldChange(field="tasks", before=["jira:SHOP-1"], after=["jira:SHOP-2"]),
    ]
    assert diff.body_diff == ""  # the front matter changed, the body did not
    assert diff.summary == "REQ-3: priority should → must; owner removed (was alice); tasks +jira:SHOP-2, -jira:SHOP-1"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("Guests pay wihtout an account.", "typo fix 'wihtout' → 'without'"),
        ("Guests  pay without\nan account", "whitespace, case or punctuation only"),
        ("guests pay without an Account.", "whitespace, case or punctuation only"),
    ],
)
def test_a_typo_or_rewrap_of_the_body_is_a_cosmetic_version(body: str, reason: str) -> None:
    diff = diff_requirements(req(body=body), req())

    assert diff is not None and diff.cosmetic and diff.cosmetic_reason == reason
    assert diff.body_diff  # stored and shown like any version
    assert diff.summary.endswith(f"(cosmetic: {reason})")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"body": "Guests cannot pay without an account."}, "the text changed beyond typos"),  # a word added
        ({"body": "Guests can pay without an account."}, "the text changed beyond typos"),
        ({"body": "Guests pay within an account."}, "the text changed beyond typos"),  # two edits, short word
        ({"body": "Guests pay without an account in 10 days."}, "the text changed beyond typos"),
        ({"criteria": ("A guest can pay", "Totals include VAT", "Receipts by mail")}, "acceptance criteria changed"),
        ({"criteria": ("A guest can pya", "Totals include VAT")}, "acceptance criteria changed"),
        ({"priority": "must"}, "priority changed"),
        ({"owner": "bob"}, "owner changed"),
        ({"tasks": "[jira:SHOP-1, jira:SHOP-2]"}, "tasks changed"),
    ],
)
def test_any_change_of_meaning_links_criteria_or_people_is_substantive(changes: dict, reason: str) -> None:
    diff = diff_requirements(req(), req(**changes))

    assert diff is not None and not diff.cosmetic and diff.cosmetic_reason == reason


def test_a_number_or_a_meaning_word_is_never_a_typo() -> None:
    from framework2.tasks.context.evolution import typo_edits

    assert typo_edits("Pay in 10 days.", "Pay in 100 days.") is None
    assert typo_edits("Only admins may refund.", "Only admins may not refund.") is None
    assert typo_edits("Ship to any country.", "Ship to and country.") is None
    assert typo_edits("Refunds within a week", "Refunds wihtin a week") == [("within", "wihtin")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("Prices increase by five", "Prices decrease by five"),
        ("Totals include VAT", "Totals exclude VAT"),
        ("Show the maximum price", "Show the minimum price"),
        ("Sort in ascending order", "Sort in descending order"),
        ("Store cards encrypted", "Store cards decrypted"),
        ("The badge is visible", "The badge is invisible"),
        ("Use https links", "Use http links"),
        ("Answer within 300 ms", "Answer within 300 s"),
        ("Files up to 10 MB", "Files up to 10 GB"),
        ("Ship plan A", "Ship plan B"),
        ("Totals < 100", "Totals > 100"),
        ("Totals ≤ 100", "Totals ≥ 100"),
        ("Discount 10%", "Discount 10"),
        ("~~Old rule~~ new rule", "Old rule new rule"),
        ("Enable the export", "Unable the export"),
        ("Refund the payment", "Refund the payments"),
        ("Half ½ off", "Half ¼ off"),
    ],
)
def test_a_small_edit_that_flips_the_meaning_is_substantive(old: str, new: str) -> None:
    from framework2.tasks.context.evolution import typo_edits

    assert typo_edits(old, new) is None
    diff = diff_requirements(req(body=old), req(body=new))
    assert diff is not None and not diff.cosmetic


def test_the_typo_check_is_linear_on_huge_bodies_and_words() -> None:
    from framework2.tasks.context.evolution import typo_edits

    body = "word " * 200_000  # 1 MB: position by position, no alignment search
    assert typo_edits(body, body.replace("word", "wrod", 1)) == [("word", "wrod")]
    assert typo_edits("x" * 100_000, "x" * 99_999 + "y") is None  # a "word" that long is data, not a typo


def test_typo_sized_edits_that_add_up_are_substantive_against_the_last_substantive_version() -> None:
    from framework2.tasks.context.evolution import against_last_substantive

    base = req(body="Passwords are hashed with salt, then stored safely.")
    step = [
        "Passwords are hashed wiht salt, then stored safely.",
        "Passwords are hashed wiht slat, then stored safely.",
        "Passwords are hashed wiht slat, thne stored safely.",
        "Passwords are hashed wiht slat, thne stroed safely.",
    ]
    previous = base
    verdicts = []
    for body in step:
        now = req(body=body)
        change = diff_requirements(previous, now)
        assert change is not None and change.cosmetic  # each edit alone is a typo
        verdicts.append(against_last_substantive(change, base, now).cosmetic)
        previous = now
    assert verdicts == [True, True, True, False]  # the fourth slip since the last substantive version is too many


def test_cosmetic_versions_are_not_churn() -> None:
    typo = diff_requirements(req(body="Guests pay wihtout an account."), req())
    real = diff_requirements(req(), req(priority="must"))
    assert typo is not None and real is not None
    points = [
        VersionPoint(id="REQ-3", project="shop", at=NOW - timedelta(days=20), diff=typo),
        VersionPoint(id="REQ-3", project="shop", at=NOW - timedelta(days=2), diff=real),
    ]

    row = evolution_metrics(points, now=NOW).query("level == 'requirement'").iloc[0]
    assert row["changes"] == 1


def test_body_diff_is_a_unified_diff_of_the_body() -> None:
    diff = diff_requirements(req(body="Guests pay.\nFast."), req(body="Guests pay.\nQuickly."))

    assert diff is not None
    assert diff.body_diff.splitlines() == [
        "--- REQ-3 (before)",
        "+++ REQ-3 (after)",
        "@@ -1,5 +1,5 @@",
        " Guests pay.",
        "-Fast.",
        "+Quickly.",
        " ",
        " ## Acceptance criteria",
        " - A guest can pay",
    ]
    assert diff.criteria_added == [] and diff.criteria_removed == []
    assert diff.summary == "REQ-3: body 2 lines changed"


def test_criteria_added_and_removed_ignore_case_and_whitespace() -> None:
    before = req(criteria=("A guest can pay", "Totals include VAT", "Receipt is e-mailed"))
    after = req(criteria=("a  guest CAN pay", "Totals include VAT and duty", "PayPal works"))

    diff = diff_requirements(before, after)

    assert diff is not None
    assert diff.criteria_added == ["Totals include VAT and duty", "PayPal works"]
    assert diff.criteria_removed == ["Totals include VAT", "Receipt is e-mailed"]
    assert churn(diff) == 6 + 4  # 3 body lines out and 3 in, 2 criteria added and 2 removed


def test_reordering_criteria_is_not_a_criteria_change() -> None:
    diff = diff_requirements(req(criteria=("One", "Two")), req(criteria=("Two", "One")))

    assert diff is not None  # the body changed, so it is a new version ...
    assert diff.criteria_added == [] and diff.criteria_removed == []  # ... but no criterion is new or gone
    assert diff.fields_changed == []


def test_summary_is_one_sentence_naming_fields_criteria_and_body_lines() -> None:
    before = req(criteria=("A guest can pay", "Totals include VAT"))
    after = req(priority="must", criteria=("A guest can pay", "Receipt is e-mailed", "PayPal works"))

    diff = diff_requirements(before, after)

    assert diff is not None
    assert diff.summary == "REQ-3: priority should → must; 2 acceptance criteria added, 1 removed; body 3 lines changed"
    one = diff_requirements(before, req(criteria=("A guest can pay",)))
    assert one is not None and one.summary == "REQ-3: 1 acceptance criterion removed; body 1 line changed"


def test_diffing_two_different_requirements_is_refused() -> None:
    other = parse_requirement("---\nid: REQ-4\ntitle: Other\n---\n", "b.md")
    with pytest.raises(ValueError, match="REQ-3 and REQ-4"):
        diff_requirements(req(), other)


# --- metrics -------------------------------------------------------------------------------------------------


def hand_diff(
    id: str, kind: str, *, plus: int = 0, minus: int = 0, added: int = 0, removed: int = 0
) -> RequirementDiff:
    """A diff with ``plus`` body lines added, ``minus`` removed and that many criteria added / removed."""
    lines = ["--- before", "+++ after", f"@@ -1,{minus} +1,{plus} @@"]
    lines += [f"-old {i}" for i in range(minus)] + [f"+new {i}" for i in range(plus)]
    return RequirementDiff(
        id=id,
        kind=kind,
        body_diff="\n".join(lines) if plus or minus else "",
        criteria_added=[f"new {i}" for i in range(added)],
        criteria_removed=[f"old {i}" for i in range(removed)],
    )


def point(
    id: str, project: str | None, days_ago: float, diff: RequirementDiff, started: float | None = None
) -> VersionPoint:
    return VersionPoint(
        id=id,
        project=project,
        at=NOW - timedelta(days=days_ago),
        diff=diff,
        work_started=None if started is None else NOW - timedelta(days=started),
    )


HISTORY = [
    # REQ-1 (shop): older than the window; three edits, the last after work started 10 days ago.
    point("REQ-1", "shop", 60, hand_diff("REQ-1", "added", plus=5, added=2)),
    point("REQ-1", "shop", 20, hand_diff("REQ-1", "changed", plus=1, minus=1, added=1)),  # week 2, churn 3
    point("REQ-1", "shop", 19, hand_diff("REQ-1", "changed", plus=2)),  # week 2, churn 2
    point("REQ-1", "shop", 3, hand_diff("REQ-1", "changed", plus=1, minus=1), started=10),  # week 0, late, churn 2
    point("REQ-1", "shop", -1, hand_diff("REQ-1", "changed", plus=9)),  # after now: ignored
    # REQ-2 (shop): added 10 days ago (week 1), edited a day later after work had started.
    point("REQ-2", "shop", 10, hand_diff("REQ-2", "added", plus=3, added=1)),
    point("REQ-2", "shop", 9, hand_diff("REQ-2", "changed", removed=1), started=12),  # week 1, late, churn 1
    # REQ-3 (web): removed 5 days ago (week 0) while its tasks were in progress.
    point("REQ-3", "web", 40, hand_diff("REQ-3", "added", plus=4, added=2)),
    point("REQ-3", "web", 5, hand_diff("REQ-3", "removed", minus=4, removed=2), started=30),  # late, churn 6
    # REQ-4 (no project): added 2 days ago, never changed.
    point("REQ-4", None, 2, hand_diff("REQ-4", "added", plus=1)),
    # REQ-5 (web): removed before the window: no row.
    point("REQ-5", "web", 100, hand_diff("REQ-5", "added", plus=1)),
    point("REQ-5", "web", 50, hand_diff("REQ-5", "removed", minus=1)),
    # REQ-6 (web): exists, stable.
    point("REQ-6", "web", 50, hand_diff("REQ-6", "added", plus=1)),
]


def test_evolution_metrics_on_a_small_history() -> None:
    frame = evolution_metrics(HISTORY, now=NOW, window_days=28)  # 4 weeks

    assert list(frame.columns) == list(METRIC_COLUMNS)
    rows = {(r["level"], r["key"]): r for r in frame.to_dict("records")}
    assert list(rows) == [
        ("requirement", "REQ-4"),
        ("requirement", "REQ-1"),
        ("requirement", "REQ-2"),
        ("requirement", "REQ-3"),
        ("requirement", "REQ-6"),
        ("project", "shop"),
        ("project", "web"),
        ("all", "all"),
    ]
    fields = ("requirements", "added", "edited", "removed", "changes", "churn", "late_changes")
    weeks = ("weeks_changed", "weeks_observed", "volatility")
    expected = {
        ("requirement", "REQ-1"): ((1, 0, 3, 0, 3, 7, 1), (2, 4, 0.5)),
        ("requirement", "REQ-2"): ((1, 1, 1, 0, 1, 1, 1), (1, 2, 0.5)),  # watched from its week of adding
        ("requirement", "REQ-3"): ((1, 0, 0, 1, 1, 6, 1), (1, 4, 0.25)),
        ("requirement", "REQ-4"): ((1, 1, 0, 0, 0, 0, 0), (0, 1, 0.0)),  # an addition is no change
        ("requirement", "REQ-6"): ((1, 0, 0, 0, 0, 0, 0), (0, 4, 0.0)),
        ("project", "shop"): ((2, 1, 4, 0, 4, 8, 2), (3, 4, 0.75)),
        ("project", "web"): ((2, 0, 0, 1, 1, 6, 1), (1, 4, 0.25)),
        ("all", "all"): ((5, 2, 4, 1, 5, 14, 3), (3, 4, 0.75)),
    }
    for key, (counts, (changed, observed, volatility)) in expected.items():
        row = rows[key]
        assert tuple(row[f] for f in fields) == counts, key
        assert (row["weeks_changed"], row["weeks_observed"]) == (changed, observed), key
        assert row["volatility"] == pytest.approx(volatility), key
    assert rows[("requirement", "REQ-1")]["project"] == "shop" and rows[("all", "all")]["project"] is None
    assert set(weeks) <= set(frame.columns)


def test_evolution_metrics_of_no_points_is_an_empty_frame_with_the_columns() -> None:
    frame = evolution_metrics([], now=NOW)

    assert frame.empty and list(frame.columns) == list(METRIC_COLUMNS)
    only_gone = [p for p in HISTORY if p.id == "REQ-5"]
    assert evolution_metrics(only_gone, now=NOW, window_days=28).empty


def test_naive_times_are_read_as_utc() -> None:
    naive = VersionPoint(id="REQ-1", at=datetime(2024, 6, 1), diff=hand_diff("REQ-1", "changed", plus=1))
    frame = evolution_metrics([naive], now=NOW.replace(tzinfo=None), window_days=7)

    assert frame.set_index("key").loc["all", "changes"] == 1


# --- chart ---------------------------------------------------------------------------------------------------


def test_churn_chart_is_a_png_data_uri_when_there_are_changes() -> None:
    uri = churn_chart(HISTORY, now=NOW, weeks=12)

    assert uri is not None and uri.startswith("data:image/png;base64,")


def test_churn_chart_is_none_when_there_is_nothing_to_draw() -> None:
    assert churn_chart([], now=NOW) is None
    additions_only = [p for p in HISTORY if p.diff.kind == "added"]
    assert churn_chart(additions_only, now=NOW) is None
    assert churn_chart(HISTORY, now=NOW - timedelta(days=400)) is None  # every change is after that "now"
