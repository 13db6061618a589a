"""PLOS launch-success prediction: how likely is this blue-green release to be promoted and kept?

Before a release deploys, the release flow asks for P(success) from the stored release history; below the
configured threshold it pauses for a person's approval. Everything here is a pure function over a pandas
DataFrame the caller builds from its store.

History columns
---------------
One row per finished release (of any app):

- ``app`` (str): the application released.
- ``started_at`` (tz-aware datetime, UTC): when the release started.
- ``change_size_lines`` (int >= 0): lines changed since the then-live revision.
- ``files_changed`` (int >= 0): files changed since the then-live revision.
- ``test_pass_rate`` (float in [0, 1]): share of passing tests in the revision's CI run.
- ``hours_since_last_release`` (float >= 0, may be missing): hours since the app's previous release;
  missing on an app's first release.
- ``recent_failure_rate`` (float in [0, 1], may be missing): share of the app's previous (up to) 10
  releases that were rolled back or failed; missing on an app's first release.
- ``hour_of_day`` (int 0..23) and ``day_of_week`` (int 0..6, Monday 0): when the release started, in
  whatever time zone the team works in (``features_from_history`` takes them from ``now`` as given).
- ``succeeded`` (bool): True when the release was promoted and kept, False when rolled back or failed.

``predict_success`` uses the feature columns and ``succeeded`` (and ``app`` when asked about one app);
``features_from_history`` uses ``app``, ``started_at`` and ``succeeded``.

Method
------
**Prior.** With fewer than ``min_history`` rows, or fewer than ``min_per_class`` successes or failures, a
model cannot be trained or checked, so the answer is the posterior mean of a Beta prior updated with the
observed outcomes: (alpha + successes) / (alpha + beta + releases). The default Beta(8, 2) says most
releases succeed (mean 80 %, in line with common change-failure rates of 10-30 %) and is worth 10
releases: a dozen real outcomes move it noticeably, a single failure does not flip it. An app with no
history at all gets the prior alone when ``app`` is passed: other apps' outcomes say little about a new
pipeline.

**Model.** Trained on all history rows, pooled across apps: apps share most risk factors, and one app
rarely has enough releases on its own. App specifics are carried by ``recent_failure_rate``, which is
per app (a ``same_app`` indicator would only shift one intercept and needs the app's own rows to learn it).
Features, chosen so that a linear log-odds model is plausible:

- log(1 + lines changed) and log(1 + files changed): risk grows with the order of magnitude of a change,
  not linearly with lines;
- test pass rate, as is;
- log(1 + hours since the last release), missing values set to the training median (a first release is
  treated like a typically spaced one);
- recent failure rate, missing values set to the fleet's failure rate in the training data (the best guess
  for an app without a track record);
- Friday from 12:00 (0/1), and outside working hours (before 08:00, from 18:00 or at the weekend; 0/1):
  hour and weekday are not monotone in risk, these two flags are the known risky windows.

The pipeline is StandardScaler + LogisticRegression, chosen over gradient boosting because with tens to
hundreds of releases a linear model overfits less and its coefficients explain each prediction. It is
wrapped in ``CalibratedClassifierCV`` (``ensemble=False``: one model fitted on all rows, calibration map from
cross-validated predictions). Calibration is sigmoid (Platt) below ``ISOTONIC_MIN_ROWS`` releases and
isotonic from there: isotonic regression is a step function that overfits calibration sets of less than
about a thousand rows, while sigmoid has two parameters and suits the already near-logistic scores.

**Checking.** The whole procedure (imputation, scaling, fit, calibration) is rerun in stratified K-fold
cross-validation (K = min(5, smaller class)) and the out-of-fold Brier score is compared with the Brier
score of always predicting the training folds' success rate. If the model does not beat it, the reason says
so and the probability should be taken as no better than the base rate.

**Drivers.** Logistic-regression coefficient x standardised feature value for this release: the feature's
contribution to the log-odds of success relative to an average release (positive raises P(success)).
Calibration is a monotone map of these log-odds, so the directions carry over.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from framework2.errors import DataError

FEATURE_COLUMNS = [
    "change_size_lines",
    "files_changed",
    "test_pass_rate",
    "hours_since_last_release",
    "recent_failure_rate",
    "hour_of_day",
    "day_of_week",
]
HISTORY_COLUMNS = ["app", "started_at", *FEATURE_COLUMNS, "succeeded"]
# Model inputs after transformation, named for what a person would change or look at.
MODEL_FEATURES = [
    "change_size_lines",
    "files_changed",
    "test_pass_rate",
    "hours_since_last_release",
    "recent_failure_rate",
    "friday_afternoon",
    "outside_working_hours",
]
_BINARY = {"friday_afternoon", "outside_working_hours"}
_OPTIONAL = {"hours_since_last_release", "recent_failure_rate"}
# Valid ranges of the history's numeric columns (None = unbounded).
_RANGES: dict[str, tuple[float, float | None]] = {
    "change_size_lines": (0, None),
    "files_changed": (0, None),
    "test_pass_rate": (0, 1),
    "hours_since_last_release": (0, None),
    "recent_failure_rate": (0, 1),
    "hour_of_day": (0, 23),
    "day_of_week": (0, 6),
}
# Calibration folds then hold >= 1000 rows each, the size below which isotonic regression overfits.
ISOTONIC_MIN_ROWS = 5000
MAX_FOLDS = 5
MAX_DRIVERS = 5
# Contributions below 0.1 log-odds (about 10 % on the odds) are too small for a person to act on.
MIN_DRIVER_EFFECT = 0.1
RECENT_WINDOW = 10
_HISTORY_HINT = f"build the history with one row per finished release and columns {', '.join(HISTORY_COLUMNS)}"


class ReleaseFeatures(BaseModel):
    """The facts of one release known before it starts."""

    model_config = ConfigDict(extra="forbid")

    change_size_lines: int = Field(..., ge=0, description="Lines changed since the live revision.")
    files_changed: int = Field(..., ge=0, description="Files changed since the live revision.")
    test_pass_rate: float = Field(
        ..., ge=0, le=1, allow_inf_nan=False, description="Share of passing tests in this revision's CI run (0 to 1)."
    )
    hours_since_last_release: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Hours since the app's previous release; empty on a first release."
    )
    recent_failure_rate: float | None = Field(
        None,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Share of the app's last 10 releases that were rolled back or failed (0 to 1); empty when none.",
    )
    hour_of_day: int = Field(..., ge=0, le=23, description="Hour the release starts (0 to 23, team time zone).")
    day_of_week: int = Field(..., ge=0, le=6, description="Weekday the release starts (Monday 0 to Sunday 6).")


class Driver(BaseModel):
    """One factor behind this release's prediction (logistic-regression coefficient x standardised value)."""

    feature: str = Field(..., description="Model feature, e.g. change_size_lines or friday_afternoon.")
    value: float = Field(..., description="This release's value in input units (1/0 for yes/no features).")
    typical: float = Field(..., description="Median over the training history (share of releases for yes/no features).")
    effect: float = Field(
        ..., description="Contribution to the log-odds of success relative to an average release; negative lowers it."
    )
    direction: Literal["raises", "lowers"] = Field(..., description="Whether this factor raises or lowers P(success).")

    def describe(self) -> str:
        """E.g. ``change_size_lines 5000 (typical 85) lowers P(success) (-1.42 log-odds)``."""
        if self.feature in _BINARY:
            what = f"{self.feature} {'yes' if self.value else 'no'} ({self.typical:.0%} of releases)"
        else:
            what = f"{self.feature} {self.value:.4g} (typical {self.typical:.4g})"
        return f"{what} {self.direction} P(success) ({self.effect:+.2f} log-odds)"


class Prediction(BaseModel):
    """Predicted probability that a release is promoted and kept, with the evidence behind it."""

    probability: float = Field(..., ge=0, le=1, description="Calibrated P(success).")
    method: Literal["model", "prior"] = Field(..., description="Trained model, or Beta prior updated with outcomes.")
    history_size: int = Field(..., ge=0, description="Releases the answer is based on.")
    successes: int = Field(..., ge=0, description="How many of those succeeded.")
    reason: str = Field(..., description="How the probability was obtained, in words.")
    drivers: list[Driver] = Field(
        default_factory=list,
        description="Top factors for this release (coefficient x standardised value), largest first; empty for prior.",
    )
    brier_score: float | None = Field(None, description="Cross-validated Brier score of the model; lower is better.")
    base_rate_brier: float | None = Field(
        None, description="Cross-validated Brier score of always predicting the base rate, for comparison."
    )
    base_rate: float | None = Field(None, description="Share of successful releases in the history.")
    threshold: float = Field(..., ge=0, le=1, description="Probability below which a person must approve.")
    needs_approval: bool = Field(..., description="True when probability < threshold.")

    def summary(self) -> str:
        """One line for logs and the approval form."""
        verdict = "needs approval" if self.needs_approval else "no approval needed"
        line = (
            f"P(success) {self.probability:.2f} vs threshold {self.threshold:.2f}: {verdict} "
            f"({self.method}, {self.history_size} releases)"
        )
        lowering = [d.feature for d in self.drivers if d.direction == "lowers"]
        return f"{line}; main risks: {', '.join(lowering[:3])}" if lowering else line


@dataclass(frozen=True)
class _Fill:
    """Training-set values that replace missing optional features."""

    log_hours: float
    failure_rate: float

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, success: np.ndarray) -> _Fill:
        hours = frame["hours_since_last_release"].dropna()
        return cls(
            log_hours=float(np.log1p(hours.median())) if len(hours) else 0.0,
            failure_rate=float(1.0 - success.mean()),
        )


def _design(frame: pd.DataFrame, fill: _Fill) -> np.ndarray:
    """Model matrix in ``MODEL_FEATURES`` order from clean numeric feature columns, missing values filled."""
    hour, day = frame["hour_of_day"].to_numpy(), frame["day_of_week"].to_numpy()
    log_hours = np.log1p(frame["hours_since_last_release"].to_numpy(float))
    failure = frame["recent_failure_rate"].to_numpy(float)
    return np.column_stack(
        [
            np.log1p(frame["change_size_lines"].to_numpy(float)),
            np.log1p(frame["files_changed"].to_numpy(float)),
            frame["test_pass_rate"].to_numpy(float),
            np.where(np.isnan(log_hours), fill.log_hours, log_hours),
            np.where(np.isnan(failure), fill.failure_rate, failure),
            (day == 4) & (hour >= 12),
            (hour < 8) | (hour >= 18) | (day >= 5),
        ]
    ).astype(float)


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {', '.join(missing)}; found {list(df.columns)}", _HISTORY_HINT)


def _outcomes(series: pd.Series) -> np.ndarray:
    """``succeeded`` as a bool array; DataError unless every value is a real boolean."""
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    if series.dtype == object and series.map(lambda v: isinstance(v, bool | np.bool_)).all():
        return series.to_numpy(dtype=bool)
    examples = series[~series.map(lambda v: isinstance(v, bool | np.bool_))].unique()[:3].tolist()
    raise DataError(
        f"history column succeeded must be boolean (True = promoted and kept), got dtype {series.dtype} "
        f"with values like {examples}",
        "store outcomes as True/False (convert 0/1 with .astype(bool)) and leave out releases still in progress",
    )


def _clean_history(history: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Numeric feature columns and outcomes, or DataError naming what is wrong."""
    _require(history, [*FEATURE_COLUMNS, "succeeded"], "release history")
    frame = pd.DataFrame(index=history.index)
    for column in FEATURE_COLUMNS:
        values = pd.to_numeric(history[column], errors="coerce").astype(float)
        invalid = values.isna() if column not in _OPTIONAL else values.isna() & history[column].notna()
        low, high = _RANGES[column]
        invalid |= (values < low) | (values > high if high is not None else False)
        if invalid.any():
            examples = history.loc[invalid, column].head(3).tolist()
            allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
            blank = " or missing" if column in _OPTIONAL else ""
            raise DataError(
                f"history column {column} has {int(invalid.sum())} invalid value(s), e.g. {examples}; "
                f"expected numbers {allowed}{blank}",
                "fix or drop those releases in the history before predicting",
            )
        frame[column] = values
    return frame, _outcomes(history["succeeded"])


def _calibration_method(n: int) -> Literal["sigmoid", "isotonic"]:
    return "isotonic" if n >= ISOTONIC_MIN_ROWS else "sigmoid"


def _fit(
    frame: pd.DataFrame, success: np.ndarray, method: Literal["sigmoid", "isotonic"], random_state: int
) -> tuple[CalibratedClassifierCV, _Fill]:
    fill = _Fill.from_frame(frame, success)
    minority = int(min(success.sum(), len(success) - success.sum()))
    folds = StratifiedKFold(n_splits=min(MAX_FOLDS, minority), shuffle=True, random_state=random_state)
    pipeline = Pipeline([("scale", StandardScaler()), ("logit", LogisticRegression(C=1.0, max_iter=1000))])
    model = CalibratedClassifierCV(pipeline, method=method, cv=folds, ensemble=False)
    model.fit(_design(frame, fill), success.astype(int))
    return model, fill


def _cross_validated_brier(
    frame: pd.DataFrame, success: np.ndarray, method: Literal["sigmoid", "isotonic"], random_state: int
) -> tuple[float, float] | None:
    """Out-of-fold Brier of the whole procedure and of the training folds' base rate; None if too few rows."""
    minority = int(min(success.sum(), len(success) - success.sum()))
    # Each training fold must still hold two of the minority class for the inner calibration folds.
    if minority < 3:
        return None
    outer = StratifiedKFold(n_splits=min(MAX_FOLDS, minority), shuffle=True, random_state=random_state)
    predicted = np.empty(len(success))
    base = np.empty(len(success))
    for train, test in outer.split(frame, success):
        model, fill = _fit(frame.iloc[train], success[train], method, random_state)
        predicted[test] = model.predict_proba(_design(frame.iloc[test], fill))[:, 1]
        base[test] = success[train].mean()
    return float(np.mean((predicted - success) ** 2)), float(np.mean((base - success) ** 2))


@dataclass(frozen=True)
class SuccessModel:
    """A calibrated launch-success model trained on a release history (see module docstring)."""

    model: CalibratedClassifierCV
    fill: _Fill
    calibration: Literal["sigmoid", "isotonic"]
    history_size: int
    successes: int
    brier_score: float | None
    base_rate_brier: float | None
    typical: dict[str, float] = field(default_factory=dict)

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated P(success) for every row of a frame with the feature columns."""
        _require(frame, FEATURE_COLUMNS, "release frame")
        clean = frame[FEATURE_COLUMNS].apply(pd.to_numeric, errors="coerce").astype(float)
        return self.model.predict_proba(_design(clean, self.fill))[:, 1]

    def probability(self, features: ReleaseFeatures) -> float:
        """Calibrated P(success) of one release."""
        return float(self.probabilities(_frame(features))[0])

    def drivers(self, features: ReleaseFeatures, top: int = MAX_DRIVERS) -> list[Driver]:
        """The largest log-odds contributions (coefficient x standardised value) for this release."""
        pipeline = self.model.calibrated_classifiers_[0].estimator
        scaler, logit = pipeline.named_steps["scale"], pipeline.named_steps["logit"]
        x = _design(_frame(features), self.fill)[0]
        effects = logit.coef_[0] * (x - scaler.mean_) / scaler.scale_
        raw = _raw_values(features)
        order = np.argsort(-np.abs(effects), kind="stable")
        return [
            Driver(
                feature=MODEL_FEATURES[i],
                value=raw[MODEL_FEATURES[i]],
                typical=self.typical[MODEL_FEATURES[i]],
                effect=float(effects[i]),
                direction="raises" if effects[i] > 0 else "lowers",
            )
            for i in order[:top]
            if abs(effects[i]) >= MIN_DRIVER_EFFECT
        ]


def _frame(features: ReleaseFeatures) -> pd.DataFrame:
    return pd.DataFrame([features.model_dump()], columns=FEATURE_COLUMNS, dtype=float)


def _raw_values(features: ReleaseFeatures) -> dict[str, float]:
    """Driver values in input units; a missing optional feature shows as NaN."""
    hour, day = features.hour_of_day, features.day_of_week
    values = {c: features.model_dump()[c] for c in MODEL_FEATURES if c not in _BINARY}
    values["friday_afternoon"] = float(day == 4 and hour >= 12)
    values["outside_working_hours"] = float(hour < 8 or hour >= 18 or day >= 5)
    return {k: float("nan") if v is None else float(v) for k, v in values.items()}


def fit_success_model(history: pd.DataFrame, *, random_state: int = 0) -> SuccessModel:
    """Train and cross-check the calibrated model on ``history`` (needs at least 3 releases of each outcome)."""
    frame, success = _clean_history(history)
    minority = int(min(success.sum(), len(success) - success.sum()))
    if minority < 3:
        raise DataError(
            f"cannot train on {len(success)} releases with only {minority} of one outcome",
            "collect at least 3 successful and 3 failed releases, or use predict_success (it falls back to the prior)",
        )
    method = _calibration_method(len(success))
    # Seven features: BLAS threads only add overhead, and on a busy worker their spin-waits made fits ~10x slower.
    with threadpool_limits(limits=1):
        model, fill = _fit(frame, success, method, random_state)
        briers = _cross_validated_brier(frame, success, method, random_state)
    design = _design(frame, fill)
    # Medians in input units; for the yes/no flags the share of releases says more than a median of 0/1.
    typical = {name: float(design[:, i].mean()) for i, name in enumerate(MODEL_FEATURES) if name in _BINARY}
    for name in MODEL_FEATURES:
        known = frame[name].dropna() if name in frame.columns else None
        if known is not None:
            # A column that is missing throughout is typically at its fill value.
            typical[name] = float(known.median()) if len(known) else _filled_input(name, fill)
    return SuccessModel(
        model=model,
        fill=fill,
        calibration=method,
        history_size=len(success),
        successes=int(success.sum()),
        brier_score=briers[0] if briers else None,
        base_rate_brier=briers[1] if briers else None,
        typical=typical,
    )


def _filled_input(name: str, fill: _Fill) -> float:
    """The value, in input units, that replaces a missing optional feature."""
    return float(np.expm1(fill.log_hours)) if name == "hours_since_last_release" else fill.failure_rate


def _beta_mean(alpha: float, beta: float, successes: int, n: int) -> float:
    return (alpha + successes) / (alpha + beta + n)


def _prior_prediction(
    why: str, successes: int, n: int, threshold: float, alpha: float, beta: float, *, base_rate: bool = True
) -> Prediction:
    probability = _beta_mean(alpha, beta, successes, n)
    prior = f"Beta({alpha:g},{beta:g})"
    using = f"using the prior {prior} updated with the {n} outcomes ({successes} succeeded)" if n else f"using {prior}"
    return Prediction(
        probability=probability,
        method="prior",
        history_size=n,
        successes=successes,
        reason=f"{why} — {using}: {probability:.2f}",
        base_rate=successes / n if n and base_rate else None,
        threshold=threshold,
        needs_approval=probability < threshold,
    )


def predict_success(
    history: pd.DataFrame,
    features: ReleaseFeatures,
    *,
    threshold: float = 0.7,
    min_history: int = 30,
    min_per_class: int = 5,
    prior_alpha: float = 8.0,
    prior_beta: float = 2.0,
    random_state: int = 0,
    app: str | None = None,
) -> Prediction:
    """P(success) of the release described by ``features``, from the history of all apps.

    Falls back to the Beta prior's posterior mean with too little history (fewer than ``min_history``
    releases or fewer than ``min_per_class`` of either outcome), with an empty history, or when ``app`` is
    given and has no releases in the history. Otherwise trains the calibrated model on every row.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if prior_alpha <= 0 or prior_beta <= 0:
        raise ValueError(f"prior_alpha and prior_beta must be positive, got {prior_alpha} and {prior_beta}")
    # The model's cross-validation needs 3 of each outcome (2 left in every training fold).
    if min_per_class < 3 or min_history < 2 * min_per_class:
        raise ValueError(
            f"need min_per_class >= 3 and min_history >= 2 * min_per_class, got {min_per_class} and {min_history}"
        )
    prior = {"threshold": threshold, "alpha": prior_alpha, "beta": prior_beta}
    if len(history) == 0:
        return _prior_prediction("no release history", 0, 0, **prior)
    frame, success = _clean_history(history)
    n, wins = len(success), int(success.sum())
    if app is not None:
        _require(history, ["app"], "release history")
        if not (history["app"].astype(str) == app).any():
            why = f"no release history for app {app!r} ({n} releases of other apps)"
            return _prior_prediction(why, 0, 0, **prior)
    if n < min_history:
        return _prior_prediction(f"only {n} releases of history (need {min_history})", wins, n, **prior)
    if min(wins, n - wins) < min_per_class:
        fewer = "successful" if wins < n - wins else "failed"
        why = f"only {min(wins, n - wins)} {fewer} releases in {n} (need {min_per_class} of each to train a model)"
        return _prior_prediction(why, wins, n, **prior)

    fitted = fit_success_model(history, random_state=random_state)
    probability = fitted.probability(features)
    base_rate = wins / n
    calibration = (
        f"isotonic calibration (>= {ISOTONIC_MIN_ROWS} releases)"
        if fitted.calibration == "isotonic"
        else f"sigmoid calibration (isotonic needs >= {ISOTONIC_MIN_ROWS} releases)"
    )
    reason = f"trained logistic regression on {n} releases of all apps ({wins} succeeded); {calibration}"
    if fitted.brier_score is not None and fitted.base_rate_brier is not None:
        scores = f"Brier {fitted.brier_score:.3f} vs {fitted.base_rate_brier:.3f} for the base rate {base_rate:.0%}"
        if fitted.brier_score < fitted.base_rate_brier:
            reason += f"; cross-validated {scores}"
        else:
            reason += (
                f"; the model does NOT beat the base rate (cross-validated {scores}): "
                "treat this probability as no better than the base rate"
            )
    reason += "; drivers are coefficient x standardised value"
    return Prediction(
        probability=probability,
        method="model",
        history_size=n,
        successes=wins,
        reason=reason,
        drivers=fitted.drivers(features),
        brier_score=fitted.brier_score,
        base_rate_brier=fitted.base_rate_brier,
        base_rate=base_rate,
        threshold=threshold,
        needs_approval=probability < threshold,
    )


def _utc_times(series: pd.Series) -> pd.Series:
    """``started_at`` as tz-aware UTC timestamps; DataError on naive or unparseable values."""
    try:
        parsed = pd.to_datetime(series)
    except (ValueError, TypeError):
        try:  # mixed UTC offsets parse only when converted to UTC
            parsed = pd.to_datetime(series, utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError(f"history column started_at is not parseable as times: {exc}", _HISTORY_HINT) from exc
    if parsed.dt.tz is None:
        raise DataError(
            "history column started_at has no time zone",
            "store release start times as tz-aware UTC, e.g. series.dt.tz_localize('UTC')",
        )
    return parsed.dt.tz_convert(UTC)


def features_from_history(
    history: pd.DataFrame,
    app: str,
    *,
    now: datetime,
    change_size_lines: int,
    files_changed: int,
    test_pass_rate: float,
) -> ReleaseFeatures:
    """Features of a release of ``app`` starting at ``now``, with the history-derived ones computed.

    Only the app's releases started before ``now`` count. Hours since the last release and the failure
    rate of the last 10 releases are None when there are none; hour and weekday come from ``now`` in its own
    time zone (pass it in the zone the history's hour_of_day/day_of_week use).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(UTC)")
    hours: float | None = None
    failure_rate: float | None = None
    if len(history):
        _require(history, ["app", "started_at", "succeeded"], "release history")
        mine = history.loc[history["app"].astype(str) == app, ["started_at", "succeeded"]]
        started = _utc_times(mine["started_at"])
        earlier = (started < now).to_numpy()
        if earlier.any():
            past = pd.DataFrame(
                {
                    "started_at": started[earlier].reset_index(drop=True),
                    "succeeded": _outcomes(mine["succeeded"][earlier]),
                }
            ).sort_values("started_at", kind="stable")
            hours = (pd.Timestamp(now) - past["started_at"].iloc[-1]) / pd.Timedelta(hours=1)
            failure_rate = float(1.0 - past["succeeded"].tail(RECENT_WINDOW).mean())
    return ReleaseFeatures(
        change_size_lines=change_size_lines,
        files_changed=files_changed,
        test_pass_rate=test_pass_rate,
        hours_since_last_release=hours,
        recent_failure_rate=failure_rate,
        hour_of_day=now.hour,
        day_of_week=now.weekday(),
    )


SYNTHETIC_APPS = ["checkout", "search", "billing", "accounts", "catalog", "notifications"]
# Log-odds of success in the synthetic generator (see synthetic_history).
_TRUE_INTERCEPT = 2.2
_TRUE_LOG_SIZE = -0.55
_TRUE_TESTS = 7.0
_TRUE_RECENT_FAILURES = -3.0
_TRUE_FRIDAY_PM = -1.2


def synthetic_history(n: int, *, seed: int = 0, now: datetime | None = None) -> pd.DataFrame:
    """Plausible release history of ``n`` releases across six apps, for demos and tests.

    Generating model, in time order over the ``max(14, n / 6)`` days before ``now``'s date (default: today,
    UTC): weekdays are five times as likely as weekend days, hours 09-17 likely, 07-08 and 18-20 less,
    night rare. Each release goes to one of ``SYNTHETIC_APPS``. Lines changed are log-normal (median
    ~80), files changed 1 + Poisson(sqrt(lines) / 3), the test pass rate 1.0 for 55 % of releases,
    Beta(20, 1.5) for 35 % and uniform on [0.5, 1] for 10 %. The outcome is Bernoulli with log-odds

        2.2 - 0.55 (log(1 + lines) - log 81) - 7 (1 - test pass rate) - 3 (recent failure rate - 0.2)
            - 1.2 [Friday from 12:00] + app effect

    where the recent failure rate is that of the app's previous 10 generated releases (0.2 when none) and
    the app effect is Normal(0, 0.4) per app, which makes failures cluster per app. Files changed, hours
    since the last release and working hours have no effect of their own. About 80 % succeed.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    rng = np.random.default_rng(seed)
    now = now or datetime.now(UTC)
    span_days = max(14, int(np.ceil(n / 6)))
    # Start of the first day; every generated time falls before midnight of now's date, so before now.
    first = pd.Timestamp(now).tz_convert(UTC).normalize() - pd.Timedelta(days=span_days)
    weekday = (first.weekday() + np.arange(span_days)) % 7
    day_weights = np.where(weekday >= 5, 0.2, 1.0)
    hour_weights = np.full(24, 0.03)
    hour_weights[[7, 8, 18, 19, 20]] = 0.35
    hour_weights[9:18] = 1.0
    days = rng.choice(span_days, size=n, p=day_weights / day_weights.sum())
    hours = rng.choice(24, size=n, p=hour_weights / hour_weights.sum())
    minutes = rng.uniform(0, 60, n)
    offsets = np.sort(days * 24.0 + hours + minutes / 60.0)
    apps = rng.choice(len(SYNTHETIC_APPS), size=n)
    app_effect = rng.normal(0.0, 0.4, len(SYNTHETIC_APPS))
    lines = np.maximum(0, np.round(rng.lognormal(np.log(80), 1.3, n))).astype(int)
    files = 1 + rng.poisson(np.sqrt(lines) / 3)
    kind = rng.uniform(size=n)
    tests = np.where(kind < 0.55, 1.0, np.where(kind < 0.9, rng.beta(20, 1.5, n), rng.uniform(0.5, 1.0, n)))
    draws = rng.uniform(size=n)

    started = [first.to_pydatetime() + timedelta(hours=float(h)) for h in offsets]
    last_start: dict[int, float] = {}
    recent: dict[int, deque[bool]] = {i: deque(maxlen=RECENT_WINDOW) for i in range(len(SYNTHETIC_APPS))}
    since = np.full(n, np.nan)
    failure = np.full(n, np.nan)
    succeeded = np.zeros(n, dtype=bool)
    for i in range(n):
        a = apps[i]
        if a in last_start:
            since[i] = offsets[i] - last_start[a]
            failure[i] = 1.0 - np.mean(recent[a])
        last_start[a] = offsets[i]
        friday_pm = started[i].weekday() == 4 and started[i].hour >= 12
        log_odds = (
            _TRUE_INTERCEPT
            + _TRUE_LOG_SIZE * (np.log1p(lines[i]) - np.log(81))
            - _TRUE_TESTS * (1.0 - tests[i])
            + _TRUE_RECENT_FAILURES * ((0.2 if np.isnan(failure[i]) else failure[i]) - 0.2)
            + _TRUE_FRIDAY_PM * friday_pm
            + app_effect[a]
        )
        succeeded[i] = draws[i] < 1.0 / (1.0 + np.exp(-log_odds))
        recent[a].append(bool(succeeded[i]))

    return pd.DataFrame(
        {
            "app": [SYNTHETIC_APPS[a] for a in apps],
            "started_at": pd.to_datetime(started, utc=True),
            "change_size_lines": lines,
            "files_changed": files,
            "test_pass_rate": tests,
            "hours_since_last_release": since,
            "recent_failure_rate": failure,
            "hour_of_day": [t.hour for t in started],
            "day_of_week": [t.weekday() for t in started],
            "succeeded": succeeded,
        }
    )
