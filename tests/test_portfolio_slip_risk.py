"""PPOS slip risk: calibration, drivers and mitigations, the heuristic fallback, missing values, input guards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.tasks.portfolio.slip_risk import (
    FEATURES,
    MITIGATIONS,
    OUTCOME,
    SYNTHETIC_CENTRE,
    SYNTHETIC_COEFFICIENTS,
    SlipModel,
    mitigation_table,
    predict_slip,
    slip_frame,
    synthetic_slip_history,
    synthetic_slip_probability,
    train_slip_model,
)


@pytest.fixture(scope="module")
def trained() -> SlipModel:
    return train_slip_model(synthetic_slip_history(600, seed=0), random_state=0)


def projects(**rows: dict[str, float | None]) -> pd.DataFrame:
    """Prediction input: each project at the synthetic centre (a typical project) except the values given."""
    return slip_frame({name: {**SYNTHETIC_CENTRE, **changes} for name, changes in rows.items()})


def test_probabilities_are_calibrated_on_history_from_a_known_model(trained: SlipModel) -> None:
    assert trained.mode == "model"
    assert trained.calibration == "sigmoid"
    assert trained.training_size == 600
    # Out-of-fold Brier clearly (>= 15 %) below always predicting the base rate.
    assert trained.brier is not None and trained.base_rate_brier is not None
    assert trained.brier < 0.85 * trained.base_rate_brier
    assert trained.beats_base_rate
    # Every well-filled bin agrees with its observed slip rate within 3 binomial standard errors.
    well_filled = [b for b in trained.reliability if b.count >= 30]
    assert len(well_filled) >= 4
    for b in well_filled:
        tolerance = 3 * np.sqrt(b.mean_predicted * (1 - b.mean_predicted) / b.count)
        assert abs(b.mean_predicted - b.observed_rate) <= tolerance, b
    assert trained.calibration_error is not None and trained.calibration_error < 0.06
    assert sum(b.count for b in trained.reliability) == 600


def test_predictions_on_fresh_projects_are_close_to_the_true_probabilities(trained: SlipModel) -> None:
    fresh = synthetic_slip_history(2000, seed=99)[list(FEATURES)]
    fresh.index = [f"P{i}" for i in range(len(fresh))]

    predicted = np.array([p.probability for p in predict_slip(trained, fresh)])
    error = np.abs(predicted - synthetic_slip_probability(fresh))

    # Tolerance: mean absolute error under 6 points, 95 % of projects within 15 points.
    assert error.mean() < 0.06
    assert np.quantile(error, 0.95) < 0.15


def test_learned_directions_match_the_true_coefficients(trained: SlipModel) -> None:
    learned = trained.coefficients()
    # The weakest true effects (scope growth, key person) can be masked by noise at 600 rows; the rest cannot.
    for feature in ("schedule_buffer_days", "probability_on_time", "blocked_ratio", "staffing_gap", "upstream_risk"):
        assert np.sign(learned[feature]) == np.sign(SYNTHETIC_COEFFICIENTS[feature]), feature


def test_top_driver_of_a_blocked_project_is_blocked_ratio_with_the_blocked_work_mitigation(trained: SlipModel) -> None:
    [blocked, typical] = predict_slip(trained, projects(blocked={"blocked_ratio": 0.7}, typical={}))

    assert blocked.basis == "model"
    assert blocked.drivers[0].feature == "blocked_ratio"
    assert blocked.drivers[0].contribution > 1.0
    assert "70% of open tasks wait on open work" in blocked.drivers[0].text
    assert [m.rule for m in blocked.mitigations] == ["blocked_ratio > 0.3"]
    assert blocked.mitigations[0].suggestion.startswith("unblock: escalate the oldest blockers")
    assert blocked.probability > typical.probability + 0.3
    assert all(d.contribution > 0 for d in blocked.drivers)
    assert len(blocked.drivers) <= 3


def test_a_driver_below_its_rule_threshold_gets_no_mitigation(trained: SlipModel) -> None:
    # 28 % blocked is worse than typical (a driver) but under the 30 % rule threshold.
    [project] = predict_slip(trained, projects(somewhat={"blocked_ratio": 0.28}))

    assert "blocked_ratio" in [d.feature for d in project.drivers]
    assert project.mitigations == []


def test_every_feature_has_a_mitigation_rule_and_the_table_serialises_to_json() -> None:
    table = mitigation_table()

    assert {rule["feature"] for rule in table} == set(FEATURES)
    assert len(table) == len(MITIGATIONS)
    restored = json.loads(json.dumps(table))
    assert restored == table
    assert all(rule["suggestion"] and rule["condition"] and rule["rule"] for rule in restored)
    blocked = next(r for r in restored if r["feature"] == "blocked_ratio")
    assert (blocked["direction"], blocked["threshold"]) == ("above", 0.3)


def test_model_record_serialises_to_json(trained: SlipModel) -> None:
    record = json.loads(json.dumps(trained.as_record()))

    assert record["mode"] == "model"
    assert set(record["coefficients"]) == set(FEATURES)
    assert record["reliability"][0].keys() == {"lower", "upper", "count", "mean_predicted", "observed_rate"}


def test_too_little_history_falls_back_to_the_heuristic_and_says_why() -> None:
    model = train_slip_model(synthetic_slip_history(20, seed=1))

    assert model.mode == "heuristic"
    assert "only 20 complete rows of history (need 40)" in model.reason
    assert "heuristic" in model.reason
    [late, safe] = predict_slip(model, projects(late={"probability_on_time": 0.1}, safe={"probability_on_time": 0.9}))
    assert late.basis == safe.basis == "heuristic"
    assert 0.02 <= safe.probability < late.probability <= 0.98
    assert late.drivers[0].feature == "probability_on_time"
    assert late.reason == model.reason


def test_one_class_history_falls_back_to_the_heuristic_with_the_counts() -> None:
    history = synthetic_slip_history(60, seed=2).assign(**{OUTCOME: 0})

    model = train_slip_model(history)

    assert model.mode == "heuristic"
    assert "only 0 of 60 rows slipped more than 10 days and 60 did not (need 8 of each" in model.reason
    [project] = predict_slip(model, projects(p={}))
    assert 0.02 <= project.probability <= 0.98


def test_empty_history_falls_back_to_the_heuristic() -> None:
    model = train_slip_model(pd.DataFrame())

    assert model.mode == "heuristic"
    assert "no history yet" in model.reason
    assert model.brier is None


def test_heuristic_probability_is_clipped_and_its_nudges_are_drivers_with_mitigations() -> None:
    model = train_slip_model(pd.DataFrame())
    worst = {"probability_on_time": 0.0, "blocked_ratio": 1.0, "staffing_gap": 1.0, "upstream_risk": 1.0}
    best = {"probability_on_time": 1.0, "blocked_ratio": 0.0, "staffing_gap": 0.0, "upstream_risk": 0.0}

    [bad, good] = predict_slip(model, projects(bad=worst, good=best))

    assert (bad.probability, good.probability) == (0.98, 0.02)
    assert [d.feature for d in bad.drivers] == ["probability_on_time", "blocked_ratio", "upstream_risk"]
    assert {m.driver for m in bad.mitigations} == {"probability_on_time", "blocked_ratio", "upstream_risk"}
    assert good.drivers == [] and good.mitigations == []


def test_heuristic_treats_missing_values_as_neutral_and_says_so() -> None:
    model = train_slip_model(pd.DataFrame())

    [project] = predict_slip(model, projects(unknown={"probability_on_time": None, "staffing_gap": None}))

    assert project.probability == pytest.approx(0.5 + 0.25 * 0.2 + 0.25 * 0.1)
    assert project.imputed == ["probability_on_time", "staffing_gap"]
    assert "treated as neutral: probability_on_time 50%, staffing_gap 0%" in project.reason
    assert project.mitigations == []  # an assumed value calls for no action


def test_missing_feature_values_are_imputed_with_training_medians_and_said(trained: SlipModel) -> None:
    frame = projects(gappy={"probability_on_time": None, "key_person_share": np.nan}, full={})

    [gappy, full] = predict_slip(trained, frame)

    assert gappy.imputed == ["probability_on_time", "key_person_share"]
    assert "filled with the training medians: probability_on_time" in gappy.reason
    assert full.imputed == [] and "filled" not in full.reason
    assert 0 <= gappy.probability <= 1


def test_history_rows_with_missing_values_are_dropped_and_counted() -> None:
    history = synthetic_slip_history(300, seed=4)
    history.loc[history.index[:20], "staffing_gap"] = np.nan

    model = train_slip_model(history)

    assert model.mode == "model"
    assert (model.training_size, model.dropped_rows) == (280, 20)
    assert "dropped 20 of 300 rows with missing values (staffing_gap 20)" in model.reason


def test_history_with_many_incomplete_rows_falls_back_to_the_heuristic() -> None:
    history = synthetic_slip_history(300, seed=4)
    history.loc[history.index[:90], "probability_on_time"] = np.nan

    model = train_slip_model(history)

    assert model.mode == "heuristic"
    assert "90 of 300 history rows have missing values, more than 20%" in model.reason


def test_few_rows_of_a_class_train_without_platt_calibration_and_say_so() -> None:
    history = synthetic_slip_history(400, seed=5)
    slipped = history.index[history[OUTCOME] > 10]
    history = history.drop(slipped[12:])

    model = train_slip_model(history)

    assert (model.mode, model.calibration, model.slipped) == ("model", "none", 12)
    assert "uncalibrated (Platt calibration needs 20 rows of each class)" in model.reason


def test_bad_history_raises_data_error_saying_what_is_wrong() -> None:
    with pytest.raises(DataError, match="slip history must be a pandas DataFrame, got list"):
        train_slip_model([{"blocked_ratio": 0.1}])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="missing column\\(s\\) slipped_days") as missing:
        train_slip_model(synthetic_slip_history(50).drop(columns=[OUTCOME]))
    assert "slipped_days (actual finish minus target date" in missing.value.hint
    history = synthetic_slip_history(50).astype({"blocked_ratio": object})
    history.loc[3, "blocked_ratio"] = "lots"
    with pytest.raises(DataError, match="column blocked_ratio has 1 invalid value\\(s\\), e.g. \\['lots'\\]"):
        train_slip_model(history)
    with pytest.raises(DataError, match="slipped_days has 1 invalid value"):
        train_slip_model(synthetic_slip_history(50).assign(**{OUTCOME: [np.inf] + [0] * 49}))


def test_bad_features_raise_data_error_saying_what_is_wrong(trained: SlipModel) -> None:
    with pytest.raises(DataError, match="slip features must be a pandas DataFrame"):
        predict_slip(trained, {"p": SYNTHETIC_CENTRE})  # type: ignore[arg-type]
    with pytest.raises(DataError, match="missing column\\(s\\) upstream_risk"):
        predict_slip(trained, projects(p={}).drop(columns=["upstream_risk"]))
    with pytest.raises(DataError, match="probability_on_time has 1 invalid value\\(s\\), e.g. \\[1.5\\]"):
        predict_slip(trained, projects(p={"probability_on_time": 1.5}))
    with pytest.raises(DataError, match="repeat project"):
        predict_slip(trained, pd.concat([projects(p={}), projects(p={})]))


def test_training_is_deterministic_with_the_same_random_state() -> None:
    history = synthetic_slip_history(200, seed=6)
    frame = projects(a={"blocked_ratio": 0.5}, b={"probability_on_time": 0.4})

    first, second = train_slip_model(history, random_state=3), train_slip_model(history, random_state=3)

    assert first.brier == second.brier
    assert first.reliability == second.reliability
    assert predict_slip(first, frame) == predict_slip(second, frame)


def test_synthetic_history_is_plausible() -> None:
    history = synthetic_slip_history(2000, seed=7)

    assert list(history.columns) == [*FEATURES, OUTCOME]
    assert 0.2 < (history[OUTCOME] > 10).mean() < 0.45
    assert (
        history[["probability_on_time", "blocked_ratio", "staffing_gap", "upstream_risk"]].stack().between(0, 1).all()
    )
    assert history["schedule_buffer_days"].corr(history["probability_on_time"]) > 0.5
    assert history.equals(synthetic_slip_history(2000, seed=7))
