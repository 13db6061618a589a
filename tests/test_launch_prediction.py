"""PLOS launch-success prediction: prior fallback, calibrated model, drivers, input guards, history features."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from framework2.errors import DataError
from framework2.tasks.launch.prediction import (
    HISTORY_COLUMNS,
    ReleaseFeatures,
    features_from_history,
    fit_success_model,
    predict_success,
    synthetic_history,
)

NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)

RISKY = ReleaseFeatures(
    change_size_lines=5000,
    files_changed=120,
    test_pass_rate=0.6,
    hours_since_last_release=2.0,
    recent_failure_rate=0.6,
    hour_of_day=17,
    day_of_week=4,  # Friday
)
SAFE = ReleaseFeatures(
    change_size_lines=20,
    files_changed=2,
    test_pass_rate=1.0,
    hours_since_last_release=24.0,
    recent_failure_rate=0.0,
    hour_of_day=10,
    day_of_week=1,  # Tuesday
)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return synthetic_history(400, seed=0, now=NOW)


def outcomes(successes: int, failures: int) -> pd.DataFrame:
    """A history with the given outcomes and otherwise unremarkable releases."""
    return synthetic_history(successes + failures, seed=3, now=NOW).assign(
        succeeded=[True] * successes + [False] * failures
    )


def test_prior_is_used_below_min_history_and_reason_gives_the_counts() -> None:
    result = predict_success(outcomes(10, 2), SAFE)

    assert result.method == "prior"
    assert (result.history_size, result.successes) == (12, 10)
    assert "only 12 releases of history (need 30)" in result.reason
    assert "Beta(8,2) updated with the 12 outcomes (10 succeeded)" in result.reason
    assert result.drivers == [] and result.brier_score is None
    assert result.base_rate == pytest.approx(10 / 12)


@pytest.mark.parametrize(("successes", "failures"), [(10, 2), (3, 9), (20, 0)])
def test_prior_posterior_mean_is_the_beta_update(successes: int, failures: int) -> None:
    result = predict_success(outcomes(successes, failures), SAFE, prior_alpha=8.0, prior_beta=2.0)

    assert result.probability == pytest.approx((8 + successes) / (8 + 2 + successes + failures), abs=1e-12)


def test_prior_is_used_with_too_few_of_one_outcome_even_with_long_history() -> None:
    result = predict_success(outcomes(97, 3), SAFE)

    assert result.method == "prior"
    assert "only 3 failed releases in 100" in result.reason
    assert result.probability == pytest.approx((8 + 97) / (10 + 100))


@pytest.mark.parametrize("empty", [pd.DataFrame(), pd.DataFrame(columns=HISTORY_COLUMNS)])
def test_empty_history_gives_the_prior_mean(empty: pd.DataFrame) -> None:
    result = predict_success(empty, SAFE, threshold=0.85)

    assert result.method == "prior"
    assert result.probability == pytest.approx(0.8)
    assert result.history_size == 0 and result.base_rate is None
    assert result.needs_approval  # 0.80 < 0.85
    assert "no release history" in result.reason


def test_app_without_history_gets_the_prior_even_when_other_apps_have_plenty(history: pd.DataFrame) -> None:
    result = predict_success(history, SAFE, app="brand-new-app")

    assert result.method == "prior"
    assert result.probability == pytest.approx(0.8)
    assert "no release history for app 'brand-new-app' (400 releases of other apps)" in result.reason


def test_model_ranks_risky_release_below_safe_one_and_only_risky_needs_approval(history: pd.DataFrame) -> None:
    risky = predict_success(history, RISKY, threshold=0.7)
    safe = predict_success(history, SAFE, threshold=0.7)

    assert risky.method == safe.method == "model"
    assert risky.probability < safe.probability
    assert risky.needs_approval and not safe.needs_approval
    assert f"{risky.history_size} releases" in risky.reason and f"({risky.successes} succeeded)" in risky.reason
    assert "sigmoid calibration" in risky.reason
    assert "needs approval" in risky.summary() and "no approval needed" in safe.summary()


def test_model_reports_cross_validated_brier_that_beats_the_base_rate(history: pd.DataFrame) -> None:
    result = predict_success(history, SAFE)

    assert result.brier_score is not None and result.base_rate_brier is not None
    assert result.brier_score < result.base_rate_brier
    assert f"Brier {result.brier_score:.3f} vs {result.base_rate_brier:.3f}" in result.reason
    assert "NOT" not in result.reason


def test_drivers_of_risky_release_include_change_size_and_tests_pushing_down(history: pd.DataFrame) -> None:
    drivers = {d.feature: d for d in predict_success(history, RISKY).drivers}

    for feature in ("change_size_lines", "test_pass_rate"):
        assert drivers[feature].direction == "lowers" and drivers[feature].effect < 0
    assert drivers["change_size_lines"].value == 5000
    assert "lowers P(success)" in drivers["test_pass_rate"].describe()


def test_predicted_probabilities_are_calibrated_on_a_large_held_out_sample() -> None:
    # One fleet (same per-app effects), randomly split: 2,000 releases to train, 20,000 held out.
    releases = synthetic_history(22_000, seed=1, now=NOW)
    order = np.random.default_rng(1).permutation(len(releases))
    train, held_out = releases.iloc[order[:2000]], releases.iloc[order[2000:]]
    model = fit_success_model(train)
    predicted = model.probabilities(held_out)
    observed = held_out["succeeded"].to_numpy()

    # Ten equal-count bins of 2,000 releases: an observed frequency then has a sampling standard error of
    # at most sqrt(0.25 / 2000) = 0.011, and a model trained on 2,000 rows adds estimation error of about
    # as much again; 0.05 leaves room for both while catching a miscalibration of a few points.
    tolerance = 0.05
    bins = np.array_split(np.argsort(predicted, kind="stable"), 10)
    gaps = [abs(predicted[b].mean() - observed[b].mean()) for b in bins]
    assert max(gaps) < tolerance, gaps

    brier = np.mean((predicted - observed) ** 2)
    base_rate_brier = np.mean((train["succeeded"].mean() - observed) ** 2)
    assert brier < base_rate_brier - 0.02


def test_isotonic_calibration_is_chosen_for_large_histories() -> None:
    result = predict_success(synthetic_history(6000, seed=2, now=NOW), SAFE)

    assert "isotonic calibration" in result.reason
    assert result.brier_score is not None and result.brier_score < result.base_rate_brier


def test_reason_says_when_the_model_does_not_beat_the_base_rate(history: pd.DataFrame) -> None:
    # Shuffled outcomes carry no signal, so no model can beat "always predict the base rate".
    noise = history.head(80).assign(succeeded=np.random.default_rng(0).permutation(history["succeeded"].head(80)))
    result = predict_success(noise, SAFE)

    assert result.method == "model"
    assert result.brier_score >= result.base_rate_brier
    assert "does NOT beat the base rate" in result.reason


def test_prediction_is_deterministic_for_a_fixed_random_state(history: pd.DataFrame) -> None:
    first = predict_success(history, RISKY, random_state=7)
    second = predict_success(history, RISKY, random_state=7)

    assert first.model_dump() == second.model_dump()


def test_missing_history_column_is_a_data_error_naming_it(history: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="test_pass_rate") as caught:
        predict_success(history.drop(columns=["test_pass_rate"]), SAFE)

    assert caught.value.hint


@pytest.mark.parametrize("values", [[1, 0] * 20, ["yes", "no"] * 20, [True, None] * 20])
def test_non_boolean_succeeded_is_a_data_error(history: pd.DataFrame, values: list) -> None:
    bad = history.head(40).assign(succeeded=pd.Series(values, index=history.index[:40], dtype=object))

    with pytest.raises(DataError, match="succeeded must be boolean"):
        predict_success(bad, SAFE)


def test_out_of_range_history_values_are_a_data_error(history: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="hour_of_day"):
        predict_success(history.assign(hour_of_day=24), SAFE)


def test_missing_optional_history_values_are_imputed(history: pd.DataFrame) -> None:
    gappy = history.assign(hours_since_last_release=np.nan, recent_failure_rate=np.nan)
    first_release = SAFE.model_copy(update={"hours_since_last_release": None, "recent_failure_rate": None})

    result = predict_success(gappy, first_release)

    assert result.method == "model" and 0 < result.probability < 1


@pytest.mark.parametrize(("field", "value"), [("test_pass_rate", 1.5), ("hour_of_day", 24), ("day_of_week", 7)])
def test_release_features_reject_out_of_range_values(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        ReleaseFeatures(**{**SAFE.model_dump(), field: value})


def test_features_from_history_uses_the_apps_earlier_releases_only() -> None:
    starts = [NOW - timedelta(hours=h) for h in (100, 80, 60, 50, 40, 30, 25, 20, 15, 12, 10, 6)]
    outcomes_ = [False, False, True, True, True, False, True, True, True, True, True, True]
    rows = pd.DataFrame({"app": "shop", "started_at": pd.to_datetime(starts, utc=True), "succeeded": outcomes_})
    others = pd.DataFrame(
        {
            "app": ["other", "shop"],
            # Another app's later release and a shop release after now do not count.
            "started_at": pd.to_datetime([NOW - timedelta(hours=1), NOW + timedelta(hours=1)], utc=True),
            "succeeded": [False, False],
        }
    )
    history = pd.concat([others, rows], ignore_index=True)

    features = features_from_history(
        history, "shop", now=NOW, change_size_lines=40, files_changed=3, test_pass_rate=0.98
    )

    assert features.hours_since_last_release == pytest.approx(6.0)
    # The last ten of twelve: the two oldest failures drop out, one failure remains.
    assert features.recent_failure_rate == pytest.approx(0.1)
    assert (features.hour_of_day, features.day_of_week) == (12, 0)
    assert features.change_size_lines == 40


def test_features_from_history_for_an_unknown_app_leaves_history_features_empty(history: pd.DataFrame) -> None:
    features = features_from_history(
        history, "nobody", now=NOW, change_size_lines=1, files_changed=1, test_pass_rate=1.0
    )

    assert features.hours_since_last_release is None and features.recent_failure_rate is None


def test_features_from_history_rejects_naive_start_times(history: pd.DataFrame) -> None:
    naive = history.assign(started_at=history["started_at"].dt.tz_localize(None))

    with pytest.raises(DataError, match="no time zone"):
        features_from_history(naive, "search", now=NOW, change_size_lines=1, files_changed=1, test_pass_rate=1.0)


def test_synthetic_history_has_the_documented_shape(history: pd.DataFrame) -> None:
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["succeeded"].dtype == bool
    assert 0.7 < history["succeeded"].mean() < 0.9
    assert (history["started_at"] < NOW).all()
    # Failures concentrate in big changes and failing tests, as the generating model says.
    failed = history[~history["succeeded"]]
    assert failed["test_pass_rate"].mean() < history["test_pass_rate"].mean()
    assert failed["change_size_lines"].median() > history["change_size_lines"].median()
