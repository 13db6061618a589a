"""PPOS slip risk: how likely is this project to finish more than N days after its target date?

Trained on the portfolio's own history, with calibrated probabilities whose reliability is reported, the
few factors that push each project toward slipping, and the mitigations those factors call for. With too
little history it falls back to a stated heuristic and says so. Pure functions over pandas frames; the
flow builds the frames (``features.slip_features``) and stores the results.

Inputs
------
``FEATURES`` (definitions in ``features.slip_features``; valid ranges in brackets):

- ``schedule_buffer_days`` (any): target date minus PPMS's P85 finish, calendar days; negative = P85 past target.
- ``probability_on_time`` [0, 1]: PPMS's odds of making the target date.
- ``blocked_ratio`` [0, 1]: share of open tasks waiting on open work.
- ``scope_growth`` [>= 0]: tasks added in the last 4 weeks / open tasks.
- ``throughput_trend`` [>= 0]: done per day in the last 2 weeks / done per day in the 4 weeks before (1 = steady).
- ``staffing_gap`` [0, 1]: share of ready tasks nobody could be assigned.
- ``key_person_share`` [0, 1]: largest share of the remaining work held by one person.
- ``upstream_risk`` [0, 1]: risk inherited from the projects this one waits on.

The history has one row per (project, past moment) with these columns and ``slipped_days`` (actual finish
minus target, days; negative = early). The label is ``slipped_days > slip_days`` (default 10, ``[ppos]
slipDays``): a few days late is noise in a plan, two working weeks is a slip someone has to explain.

Method
------
**Model.** StandardScaler + LogisticRegression (L2, C = 1) on the eight features as they are, except that
three unbounded ones are capped first (``CAPS``): the buffer at +-60 days (beyond two months either way a
buffer says nothing more, and the P85 itself moves by weeks), scope growth at 2 and the throughput trend
at 3 (doubled scope and a tripled pace are already extreme; one outlier must not set the scale of a
standardised coefficient). A linear model rather than boosting because a portfolio's history is tens to
hundreds of rows, where a linear model overfits less, and because its coefficients explain every
prediction. C = 1 on standardised features is mild shrinkage: it keeps the fit finite on the near-separable
histories of 40-odd rows and is negligible with hundreds.

**Calibration.** With at least ``CALIBRATION_MIN_PER_CLASS`` = 20 rows of each class the model is wrapped in
``CalibratedClassifierCV`` with sigmoid (Platt) calibration, ``ensemble=False`` (one model on all rows, the
calibration map fitted on its cross-validated scores). Platt has two parameters and the usual rule of about
ten events per parameter gives 20; with fewer, the logistic regression's own probabilities are used (they
are fitted by log-loss, so roughly calibrated already) and the reason says so. Isotonic calibration is
never used: it needs the thousands of rows a portfolio does not have.

**Reliability.** The whole procedure (caps, scaling, fit, calibration) is rerun in stratified K-fold
cross-validation, K = min(5, smaller class), and its out-of-fold probabilities are scored: the Brier score
against the Brier score of predicting the training folds' slip rate for everyone (the model must beat it to
be worth more than the base rate; the reason says when it does not), and a reliability table over
``RELIABILITY_BINS`` = 10 equal-width bins of predicted probability (rows, mean predicted, observed slip
rate), summarised as the expected calibration error (row-weighted mean |predicted - observed|; 100 x
(1 - error) is what ``[ppos] predictionAccuracy`` is compared with).

**Drivers.** Coefficient x standardised (capped) value: a feature's contribution to the log-odds of
slipping relative to the average project of the history; positive pushes toward slipping. Platt
calibration is a monotone map of these log-odds, so the directions carry over. A project's drivers are
its three largest positive contributions of at least ``MIN_MODEL_EFFECT`` = 0.1 log-odds (about 10 % on
the odds; less is nothing a person can act on).

**Mitigations.** ``MITIGATIONS`` is a reviewed rule table, one rule per feature (threshold and why in each
rule's ``condition``). A project gets the suggestion of a rule when the feature is one of its drivers *and*
its own (not imputed) value crosses the rule's threshold: a driver that is merely worse than average is
named but does not call for action.

**Heuristic fallback.** Used with fewer than ``min_rows`` (40) complete rows, fewer than ``min_per_class``
(8) slipped or on-time rows (about one row of the smaller class per coefficient, the least for a usable
fit), or when more than ``MAX_INCOMPLETE_SHARE`` = 20 % of the rows have missing values (those rows are
dropped; when that many are missing, the complete ones are unlikely to represent the portfolio)::

    P(slip) = clip(1 - probability_on_time + 0.25 blocked_ratio + 0.20 staffing_gap + 0.25 upstream_risk,
                   0.02, 0.98)

PPMS's forecast already carries estimate uncertainty and the project's own dependencies, so it is the
base. The nudges cover what the forecast assumes away: blocked work staying blocked (0.25: a project with
60 % of its work blocked, where health scores blocked work 0, gains 15 points), ready tasks nobody can
take (0.20: at most 20 points) and the upstream projects' own risk (0.25: an upstream project at 40 %
risk adds 10 points). The clip says that an unchecked rule is never certain. Each term is a driver
(contribution in probability points, listed from ``MIN_HEURISTIC_EFFECT`` = 0.05). Missing values are
neutral: probability_on_time 0.5 (no forecast says nothing either way), the others 0 (no evidence of the
problem). When the history has outcomes, the heuristic is scored on them (in-sample Brier and reliability).

**Missing values.** History rows with a missing value are dropped and counted in the reason. At prediction
a missing feature takes the training median (model) or the neutral value (heuristic), said per project.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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

FEATURES: tuple[str, ...] = (
    "schedule_buffer_days",  # target date minus forecast P85, calendar days (negative = P85 past target)
    "probability_on_time",  # PPMS forecast odds of the target, 0..1
    "blocked_ratio",  # share of open tasks waiting on open work, 0..1
    "scope_growth",  # tasks added in the last 4 weeks / open tasks
    "throughput_trend",  # done per day last 2 weeks / done per day in the 4 weeks before (1 = steady)
    "staffing_gap",  # share of ready tasks nobody could be assigned, 0..1
    "key_person_share",  # largest share of remaining work held by one person, 0..1
    "upstream_risk",  # risk inherited from projects this one waits on, 0..1
)
OUTCOME = "slipped_days"
# Valid ranges (None = unbounded); values outside are data errors, not risk.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "schedule_buffer_days": (None, None),
    "probability_on_time": (0.0, 1.0),
    "blocked_ratio": (0.0, 1.0),
    "scope_growth": (0.0, None),
    "throughput_trend": (0.0, None),
    "staffing_gap": (0.0, 1.0),
    "key_person_share": (0.0, 1.0),
    "upstream_risk": (0.0, 1.0),
}
# Caps applied before the model (see module docstring); drivers still show the value as given.
CAPS: dict[str, tuple[float, float]] = {
    "schedule_buffer_days": (-60.0, 60.0),
    "scope_growth": (0.0, 2.0),
    "throughput_trend": (0.0, 3.0),
}
LABELS: dict[str, str] = {
    "schedule_buffer_days": "schedule buffer",
    "probability_on_time": "odds of the target date",
    "blocked_ratio": "blocked work",
    "scope_growth": "scope growth",
    "throughput_trend": "throughput trend",
    "staffing_gap": "staffing gap",
    "key_person_share": "key-person dependency",
    "upstream_risk": "upstream risk",
}
CALIBRATION_MIN_PER_CLASS = 20
MAX_INCOMPLETE_SHARE = 0.2
MAX_FOLDS = 5
RELIABILITY_BINS = 10
MAX_DRIVERS = 3
MIN_MODEL_EFFECT = 0.1
MIN_HEURISTIC_EFFECT = 0.05
HEURISTIC_WEIGHTS: dict[str, float] = {"blocked_ratio": 0.25, "staffing_gap": 0.20, "upstream_risk": 0.25}
HEURISTIC_NEUTRAL: dict[str, float] = {
    "probability_on_time": 0.5,
    "blocked_ratio": 0.0,
    "staffing_gap": 0.0,
    "upstream_risk": 0.0,
}
PROBABILITY_FLOOR, PROBABILITY_CEILING = 0.02, 0.98
_HEURISTIC_FORMULA = (
    "P(slip) = 1 - probability_on_time + 0.25 blocked_ratio + 0.20 staffing_gap + 0.25 upstream_risk, "
    f"clipped to {PROBABILITY_FLOOR:g}..{PROBABILITY_CEILING:g}"
)
_HISTORY_HINT = (
    f"build the history with one row per (project, past moment), columns {', '.join(FEATURES)} and {OUTCOME} "
    "(actual finish minus target date, days)"
)
_FEATURES_HINT = f"pass one row per project (index = project key) with columns {', '.join(FEATURES)}; NaN where unknown"


class ReliabilityBin(BaseModel):
    """One bin of a reliability table: predictions in [lower, upper) and how often those projects slipped."""

    lower: float = Field(..., ge=0, le=1)
    upper: float = Field(..., ge=0, le=1)
    count: int = Field(..., ge=1, description="Rows whose predicted probability falls in the bin.")
    mean_predicted: float = Field(..., ge=0, le=1)
    observed_rate: float = Field(..., ge=0, le=1, description="Share of those rows that slipped.")


class Driver(BaseModel):
    """A factor pushing this project toward slipping."""

    feature: str = Field(..., description="One of FEATURES.")
    value: float = Field(..., description="The project's value in input units (the fill value when missing).")
    contribution: float = Field(
        ...,
        description="Push toward slipping (+): log-odds vs the average project (model) or probability points "
        "(heuristic).",
    )
    text: str = Field(..., description="The same in plain words.")


class Mitigation(BaseModel):
    """What to do about one driver, from the reviewed rule table."""

    driver: str = Field(..., description="The driver's feature.")
    rule: str = Field(..., description="The rule that fired, e.g. 'blocked_ratio > 0.3'.")
    suggestion: str


class SlipPrediction(BaseModel):
    """A project's probability of slipping more than ``slip_days``, why, and what to do."""

    project: str
    probability: float = Field(..., ge=0, le=1)
    drivers: list[Driver] = Field(default_factory=list, description="Top 3 pushes toward slipping, largest first.")
    mitigations: list[Mitigation] = Field(default_factory=list)
    basis: Literal["model", "heuristic"]
    reason: str
    imputed: list[str] = Field(default_factory=list, description="Features that were missing and filled.")


class MitigationRule(BaseModel):
    """One reviewed rule: when ``feature`` is a driver and its value crosses ``threshold``, suggest this."""

    model_config = ConfigDict(frozen=True)

    feature: str
    direction: Literal["above", "below"]
    threshold: float
    condition: str = Field(..., description="When the rule fires and why this threshold, in words.")
    suggestion: str

    @property
    def rule(self) -> str:
        return f"{self.feature} {'>' if self.direction == 'above' else '<'} {self.threshold:g}"

    def fires(self, value: float) -> bool:
        return value > self.threshold if self.direction == "above" else value < self.threshold


MITIGATIONS: tuple[MitigationRule, ...] = (
    MitigationRule(
        feature="schedule_buffer_days",
        direction="below",
        threshold=0,
        condition="the P85 forecast is past the target date (no buffer left at 85 % confidence)",
        suggestion="cut or defer scope to the must-haves, or agree a new target date with the sponsor now",
    ),
    MitigationRule(
        feature="probability_on_time",
        direction="below",
        threshold=0.5,
        condition="PPMS gives the target less than even odds",
        suggestion="re-plan with the team: descope or move the date, and tell the stakeholders before the date does",
    ),
    MitigationRule(
        feature="blocked_ratio",
        direction="above",
        threshold=0.3,
        condition="more than 30 % of open tasks wait on open work (health's blocked-work score is down to 60)",
        suggestion="unblock: escalate the oldest blockers in the upstream projects",
    ),
    MitigationRule(
        feature="scope_growth",
        direction="above",
        threshold=0.2,
        condition="tasks added in 4 weeks exceed 20 % of the open tasks (twice normal grooming)",
        suggestion="freeze scope: route new requests through change control and trade each addition for a removal",
    ),
    MitigationRule(
        feature="throughput_trend",
        direction="below",
        threshold=0.7,
        condition="the team finishes less than 70 % of the tasks per day it did in the 4 weeks before",
        suggestion="find out what slowed delivery (absences, interrupts, unplanned work) and protect the team's focus",
    ),
    MitigationRule(
        feature="staffing_gap",
        direction="above",
        threshold=0.2,
        condition="nobody could be assigned to more than one ready task in five",
        suggestion="staff the skills nobody has free time for or move a person (see the allocation table)",
    ),
    MitigationRule(
        feature="key_person_share",
        direction="above",
        threshold=0.5,
        condition="one person holds more than half of the remaining work (a bus factor of one)",
        suggestion="spread the key person's work: pair someone on it and hand over what others can do",
    ),
    MitigationRule(
        feature="upstream_risk",
        direction="above",
        threshold=0.3,
        condition="projects this one waits on carry more than 30 % risk",
        suggestion="agree delivery dates with the upstream projects, review their risk weekly and plan a fallback",
    ),
)


def mitigation_table() -> list[dict[str, Any]]:
    """The rule table as JSON-ready dicts, to store with each run."""
    return [{**rule.model_dump(), "rule": rule.rule} for rule in MITIGATIONS]


@dataclass(frozen=True)
class SlipModel:
    """A trained slip classifier, or the heuristic with the reason it is used (see module docstring)."""

    mode: Literal["model", "heuristic"]
    reason: str
    slip_days: int
    training_size: int = 0  # complete rows trained on (model) or scored against (heuristic)
    slipped: int = 0
    base_rate: float | None = None  # share of those rows that slipped more than slip_days
    brier: float | None = None  # out-of-fold (model) or in-sample (heuristic) Brier score
    base_rate_brier: float | None = None  # Brier of predicting the base rate for everyone
    reliability: tuple[ReliabilityBin, ...] = ()
    calibration_error: float | None = None  # row-weighted mean |predicted - observed| over the reliability bins
    calibration: Literal["sigmoid", "none"] | None = None  # None in heuristic mode
    dropped_rows: int = 0
    medians: dict[str, float] = field(default_factory=dict)  # training medians, used for missing features
    estimator: Any = field(default=None, repr=False, compare=False)

    @property
    def beats_base_rate(self) -> bool | None:
        """Whether the (cross-validated) Brier score is below the base rate's; None when not scored."""
        if self.brier is None or self.base_rate_brier is None:
            return None
        return self.brier < self.base_rate_brier

    def coefficients(self) -> dict[str, float]:
        """Log-odds per standard deviation of each feature (model) or the heuristic's weights."""
        if self.mode == "heuristic":
            return {"probability_on_time": -1.0, **HEURISTIC_WEIGHTS}
        logit = _linear(self.estimator).named_steps["logit"]
        return {name: float(c) for name, c in zip(FEATURES, logit.coef_[0], strict=True)}

    def as_record(self) -> dict[str, Any]:
        """JSON-ready summary to store with the run (everything but the fitted estimator)."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "slip_days": self.slip_days,
            "training_size": self.training_size,
            "slipped": self.slipped,
            "base_rate": self.base_rate,
            "brier": self.brier,
            "base_rate_brier": self.base_rate_brier,
            "calibration": self.calibration,
            "calibration_error": self.calibration_error,
            "reliability": [b.model_dump() for b in self.reliability],
            "dropped_rows": self.dropped_rows,
            "medians": dict(self.medians),
            "coefficients": self.coefficients(),
            "mitigations": mitigation_table(),
        }


# --- input checks -------------------------------------------------------------------------------------------


def _require(frame: object, columns: Sequence[str], what: str, hint: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{what} must be a pandas DataFrame, got {type(frame).__name__}", hint)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} is missing column(s) {', '.join(missing)}; found {list(frame.columns)}", hint)
    return frame


def _numeric(frame: pd.DataFrame, columns: Sequence[str], what: str) -> pd.DataFrame:
    """The columns as floats (NaN where missing); DataError on text, infinities or values out of range."""
    clean = pd.DataFrame(index=frame.index)
    for column in columns:
        raw = frame[column]
        values = pd.Series(pd.to_numeric(raw, errors="coerce"), index=frame.index).to_numpy(
            dtype=float, na_value=np.nan
        )
        invalid = (np.isnan(values) & raw.notna().to_numpy()) | np.isinf(values)
        low, high = RANGES.get(column, (None, None))
        with np.errstate(invalid="ignore"):
            if low is not None:
                invalid |= values < low
            if high is not None:
                invalid |= values > high
        if invalid.any():
            examples = raw[invalid].drop_duplicates().head(3).tolist()
            allowed = {
                (None, None): "finite numbers",
                (0.0, None): "numbers >= 0",
                (0.0, 1.0): "numbers from 0 to 1",
            }[(low, high)]
            raise DataError(
                f"{what} column {column} has {int(invalid.sum())} invalid value(s), e.g. {examples}; expected "
                f"{allowed} or missing",
                "correct those values or leave them empty (missing values are allowed)",
            )
        clean[column] = values
    return clean


def _check_settings(slip_days: int, min_rows: int, min_per_class: int) -> None:
    if slip_days < 0:
        raise ValueError(f"slip_days must be >= 0, got {slip_days}")
    # Cross-validation needs 3 of each class (2 left in every training fold for the inner calibration folds).
    if min_per_class < 3 or min_rows < 2 * min_per_class:
        raise ValueError(f"need min_per_class >= 3 and min_rows >= 2 * min_per_class, got {min_per_class}, {min_rows}")


# --- model --------------------------------------------------------------------------------------------------


def _design(frame: pd.DataFrame) -> np.ndarray:
    """Model matrix in ``FEATURES`` order from complete numeric columns, capped."""
    x = frame[list(FEATURES)].to_numpy(dtype=float).copy()
    for i, name in enumerate(FEATURES):
        if name in CAPS:
            x[:, i] = np.clip(x[:, i], *CAPS[name])
    return x


def _pipeline() -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("logit", LogisticRegression(C=1.0, max_iter=1000))])


def _fit(x: np.ndarray, y: np.ndarray, calibrate: bool, random_state: int) -> Pipeline | CalibratedClassifierCV:
    if not calibrate:
        return _pipeline().fit(x, y)
    minority = int(min(y.sum(), len(y) - y.sum()))
    folds = StratifiedKFold(n_splits=min(MAX_FOLDS, minority), shuffle=True, random_state=random_state)
    return CalibratedClassifierCV(_pipeline(), method="sigmoid", cv=folds, ensemble=False).fit(x, y)


def _linear(estimator: Pipeline | CalibratedClassifierCV) -> Pipeline:
    """The fitted scaler + logistic regression (inside the calibration wrapper when there is one)."""
    if isinstance(estimator, CalibratedClassifierCV):
        return estimator.calibrated_classifiers_[0].estimator
    return estimator


def _out_of_fold(x: np.ndarray, y: np.ndarray, calibrate: bool, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold probabilities of the whole procedure, and the training folds' base rate for each row."""
    minority = int(min(y.sum(), len(y) - y.sum()))
    outer = StratifiedKFold(n_splits=min(MAX_FOLDS, minority), shuffle=True, random_state=random_state)
    predicted, base = np.empty(len(y)), np.empty(len(y))
    for train, test in outer.split(x, y):
        predicted[test] = _fit(x[train], y[train], calibrate, random_state).predict_proba(x[test])[:, 1]
        base[test] = y[train].mean()
    return predicted, base


def reliability_table(
    predicted: np.ndarray, observed: np.ndarray, bins: int = RELIABILITY_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins of predicted probability (empty bins left out): rows, mean predicted, observed rate."""
    predicted, observed = np.asarray(predicted, dtype=float), np.asarray(observed, dtype=float)
    index = np.minimum((predicted * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        members = index == b
        if members.any():
            table.append(
                ReliabilityBin(
                    lower=b / bins,
                    upper=(b + 1) / bins,
                    count=int(members.sum()),
                    mean_predicted=float(predicted[members].mean()),
                    observed_rate=float(observed[members].mean()),
                )
            )
    return table


def _calibration_error(table: Sequence[ReliabilityBin]) -> float:
    total = sum(b.count for b in table)
    return sum(b.count * abs(b.mean_predicted - b.observed_rate) for b in table) / total


def _heuristic(values: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
    """Heuristic probabilities and per-feature contributions (probability points) from neutral-filled values."""
    filled = values[list(HEURISTIC_NEUTRAL)].fillna(HEURISTIC_NEUTRAL)
    terms = pd.DataFrame({"probability_on_time": 1.0 - filled["probability_on_time"]}, index=values.index)
    for name, weight in HEURISTIC_WEIGHTS.items():
        terms[name] = weight * filled[name]
    probability = np.clip(terms.sum(axis=1).to_numpy(), PROBABILITY_FLOOR, PROBABILITY_CEILING)
    return probability, terms


def _share(part: int, whole: int) -> str:
    return f"{part} of {whole}"


def _heuristic_model(why: str, clean: pd.DataFrame | None, slip_days: int, dropped: int) -> SlipModel:
    """The heuristic, scored in-sample on whatever outcomes the history has."""
    reason = f"{why}; using the heuristic {_HEURISTIC_FORMULA}"
    scored: dict[str, Any] = {}
    if clean is not None:
        known = clean[clean[OUTCOME].notna()]
        if len(known):
            y = (known[OUTCOME] > slip_days).to_numpy(dtype=float)
            predicted, _ = _heuristic(known)
            table = reliability_table(predicted, y)
            rate = float(y.mean())
            scored = {
                "training_size": len(y),
                "slipped": int(y.sum()),
                "base_rate": rate,
                "brier": float(np.mean((predicted - y) ** 2)),
                "base_rate_brier": rate * (1 - rate),
                "reliability": tuple(table),
                "calibration_error": _calibration_error(table),
            }
            reason += (
                f"; on the {len(y)} past rows with an outcome it scores Brier {scored['brier']:.3f} "
                f"(base rate {rate:.0%}: {scored['base_rate_brier']:.3f}), in-sample"
            )
    return SlipModel(mode="heuristic", reason=reason, slip_days=slip_days, dropped_rows=dropped, **scored)


def train_slip_model(
    history: pd.DataFrame,
    *,
    slip_days: int = 10,
    min_rows: int = 40,
    min_per_class: int = 8,
    random_state: int = 0,
) -> SlipModel:
    """Train and cross-check the calibrated classifier on ``history``, or fall back to the heuristic.

    The heuristic is used (``mode="heuristic"``, reason with the counts) with an empty history, fewer than
    ``min_rows`` complete rows, fewer than ``min_per_class`` rows of either class, or more than 20 % of rows
    incomplete. Raises DataError when ``history`` is not a DataFrame, lacks a column or has invalid values.
    """
    _check_settings(slip_days, min_rows, min_per_class)
    if isinstance(history, pd.DataFrame) and len(history) == 0:
        return _heuristic_model(f"no history yet (need {min_rows} rows)", None, slip_days, 0)
    _require(history, [*FEATURES, OUTCOME], "slip history", _HISTORY_HINT)
    clean = _numeric(history, [*FEATURES, OUTCOME], "slip history")
    incomplete = clean.isna().any(axis=1)
    dropped = int(incomplete.sum())
    total = len(clean)
    note = ""
    if dropped:
        counts = clean.isna().sum()
        per_column = ", ".join(f"{c} {int(k)}" for c, k in counts.items() if k)
        note = f"dropped {_share(dropped, total)} rows with missing values ({per_column}); "
    if dropped > MAX_INCOMPLETE_SHARE * total:
        why = (
            f"{_share(dropped, total)} history rows have missing values, more than {MAX_INCOMPLETE_SHARE:.0%}: "
            "the complete rows may not represent the portfolio"
        )
        return _heuristic_model(note + why, clean, slip_days, dropped)
    complete = clean[~incomplete]
    y = (complete[OUTCOME] > slip_days).to_numpy(dtype=int)
    n, slipped = len(y), int(y.sum())
    if n < min_rows:
        why = f"only {n} complete rows of history (need {min_rows})"
        return _heuristic_model(note + why, clean, slip_days, dropped)
    if min(slipped, n - slipped) < min_per_class:
        why = (
            f"only {slipped} of {n} rows slipped more than {slip_days} days and {n - slipped} did not "
            f"(need {min_per_class} of each to train a model)"
        )
        return _heuristic_model(note + why, clean, slip_days, dropped)

    calibrate = min(slipped, n - slipped) >= CALIBRATION_MIN_PER_CLASS
    x = _design(complete)
    # Eight features: BLAS threads only add overhead (on a busy worker their spin-waits slowed fits ~10x).
    with threadpool_limits(limits=1):
        estimator = _fit(x, y, calibrate, random_state)
        predicted, base = _out_of_fold(x, y, calibrate, random_state)
    brier = float(np.mean((predicted - y) ** 2))
    base_brier = float(np.mean((base - y) ** 2))
    table = reliability_table(predicted, y)
    error = _calibration_error(table)
    calibration = (
        "sigmoid (Platt) calibration"
        if calibrate
        else f"uncalibrated (Platt calibration needs {CALIBRATION_MIN_PER_CLASS} rows of each class)"
    )
    reason = (
        f"{note}logistic regression on {n} rows ({slipped} slipped more than {slip_days} days, {slipped / n:.0%}), "
        f"{calibration}; cross-validated Brier {brier:.3f} vs {base_brier:.3f} for the base rate, "
        f"calibration error {error:.1%}"
    )
    if brier >= base_brier:
        reason += "; the model does NOT beat the base rate: treat its probabilities as no better than the base rate"
    return SlipModel(
        mode="model",
        reason=reason,
        slip_days=slip_days,
        training_size=n,
        slipped=slipped,
        base_rate=slipped / n,
        brier=brier,
        base_rate_brier=base_brier,
        reliability=tuple(table),
        calibration_error=error,
        calibration="sigmoid" if calibrate else "none",
        dropped_rows=dropped,
        medians={name: float(complete[name].median()) for name in FEATURES},
        estimator=estimator,
    )


# --- prediction ---------------------------------------------------------------------------------------------


def _amount(feature: str, value: float) -> str:
    if feature == "schedule_buffer_days":
        return f"{value:+.0f} days"
    if feature == "throughput_trend":
        return f"{value:.2f}x"
    return f"{value:.0%}"


def _phrase(feature: str, value: float) -> str:
    """The value in plain words."""
    phrases = {
        "schedule_buffer_days": (
            f"the P85 forecast is {-value:.0f} days past the target date"
            if value < 0
            else f"{value:.0f} days of buffer between the P85 forecast and the target date"
        ),
        "probability_on_time": f"PPMS gives {value:.0%} odds of making the target date",
        "blocked_ratio": f"{value:.0%} of open tasks wait on open work",
        "scope_growth": f"tasks added in the last 4 weeks are {value:.0%} of the open tasks",
        "throughput_trend": f"tasks done per day in the last 2 weeks are {value:.0%} of the 4 weeks before",
        "staffing_gap": f"nobody could be assigned to {value:.0%} of the ready tasks",
        "key_person_share": f"one person holds {value:.0%} of the remaining work",
        "upstream_risk": f"{value:.0%} risk inherited from projects it waits on",
    }
    return phrases[feature]


def _mitigations(drivers: Sequence[Driver], values: Mapping[str, float], imputed: Sequence[str]) -> list[Mitigation]:
    """Rules for the drivers whose own value crosses the rule's threshold (an imputed value proves nothing)."""
    chosen = []
    for driver in drivers:
        for rule in MITIGATIONS:
            value = values[driver.feature]
            if rule.feature == driver.feature and driver.feature not in imputed and rule.fires(value):
                chosen.append(Mitigation(driver=driver.feature, rule=rule.rule, suggestion=rule.suggestion))
    return chosen


def _top(contributions: Mapping[str, float], minimum: float) -> list[str]:
    ranked = sorted(contributions, key=lambda f: -contributions[f])
    return [f for f in ranked if contributions[f] >= minimum][:MAX_DRIVERS]


def _prediction(
    project: object,
    probability: float,
    contributions: Mapping[str, float],
    own: Mapping[str, float],
    imputed: list[str],
    model: SlipModel,
) -> SlipPrediction:
    """One project's prediction: its drivers in words, the mitigations they call for, and what was filled."""
    heuristic = model.mode == "heuristic"
    typical = HEURISTIC_NEUTRAL if heuristic else model.medians
    drivers = []
    for feature in _top(contributions, MIN_HEURISTIC_EFFECT if heuristic else MIN_MODEL_EFFECT):
        if feature in imputed:
            assumed = _amount(feature, own[feature]) if heuristic else f"the typical {_amount(feature, own[feature])}"
            what = f"{LABELS[feature]} unknown, {assumed} assumed"
        elif heuristic:
            what = _phrase(feature, own[feature])
        else:
            what = f"{_phrase(feature, own[feature])} (typical {_amount(feature, typical[feature])})"
        c = contributions[feature]
        effect = (
            f"adds {c * 100:.0f} points to the slip probability"
            if heuristic
            else (f"raises the odds of slipping {math.exp(c):.1f}x")
        )
        drivers.append(Driver(feature=feature, value=own[feature], contribution=c, text=f"{what}: {effect}"))
    reason = model.reason
    if imputed:
        fills = ", ".join(f"{f} {_amount(f, typical[f])}" for f in imputed)
        reason += (
            f"; missing here, {'treated as neutral' if heuristic else 'filled with the training medians'}: {fills}"
        )
    return SlipPrediction(
        project=str(project),
        probability=probability,
        drivers=drivers,
        mitigations=_mitigations(drivers, own, imputed),
        basis="heuristic" if heuristic else "model",
        reason=reason,
        imputed=imputed,
    )


def _model_predictions(model: SlipModel, values: pd.DataFrame) -> list[SlipPrediction]:
    filled = values.fillna(model.medians)
    x = _design(filled)
    probability = model.estimator.predict_proba(x)[:, 1]
    linear = _linear(model.estimator)
    scaler, logit = linear.named_steps["scale"], linear.named_steps["logit"]
    effects = logit.coef_[0] * (x - scaler.mean_) / scaler.scale_
    return [
        _prediction(
            project,
            float(probability[row]),
            {f: float(effects[row, i]) for i, f in enumerate(FEATURES)},
            {f: float(filled.iloc[row][f]) for f in FEATURES},
            [f for f in FEATURES if math.isnan(values.iloc[row][f])],
            model,
        )
        for row, project in enumerate(values.index)
    ]


def _heuristic_predictions(model: SlipModel, values: pd.DataFrame) -> list[SlipPrediction]:
    probability, terms = _heuristic(values)
    predictions = []
    for row, project in enumerate(values.index):
        imputed = [f for f in HEURISTIC_NEUTRAL if math.isnan(values.iloc[row][f])]
        own = {f: (HEURISTIC_NEUTRAL[f] if f in imputed else float(values.iloc[row][f])) for f in HEURISTIC_NEUTRAL}
        contributions = {f: float(terms.iloc[row][f]) for f in HEURISTIC_NEUTRAL}
        predictions.append(_prediction(project, float(probability[row]), contributions, own, imputed, model))
    return predictions


def predict_slip(model: SlipModel, features: pd.DataFrame) -> list[SlipPrediction]:
    """P(slip more than ``model.slip_days``) for every project (row; index = project key), in row order.

    Missing values are allowed and filled (training medians, or the heuristic's neutral values), as each
    prediction's reason and ``imputed`` say. Raises DataError when ``features`` is not a DataFrame, lacks a
    column, repeats a project or has invalid values.
    """
    _require(features, FEATURES, "slip features", _FEATURES_HINT)
    if features.index.has_duplicates:
        repeated = features.index[features.index.duplicated()].unique().tolist()[:3]
        raise DataError(f"slip features repeat project(s) {repeated}", "pass one row per project")
    values = _numeric(features, FEATURES, "slip features")
    if len(values) == 0:
        return []
    if model.mode == "model":
        return _model_predictions(model, values)
    return _heuristic_predictions(model, values)


def slip_frame(rows: Mapping[str, Mapping[str, float | None]]) -> pd.DataFrame:
    """Prediction input from ``{project: features.slip_features(...)}`` (None becomes NaN)."""
    frame = pd.DataFrame.from_dict({k: dict(v) for k, v in rows.items()}, orient="index", columns=list(FEATURES))
    return frame.astype(float)


# --- synthetic history --------------------------------------------------------------------------------------

# Generating model of synthetic_slip_history: log-odds of slipping = intercept + sum of coefficient x (capped
# value - centre), coefficients per input unit (per day for the buffer).
SYNTHETIC_INTERCEPT = -1.0
SYNTHETIC_CENTRE: dict[str, float] = {
    "schedule_buffer_days": 0.0,
    "probability_on_time": 0.8,
    "blocked_ratio": 0.2,
    "scope_growth": 0.1,
    "throughput_trend": 1.0,
    "staffing_gap": 0.1,
    "key_person_share": 0.45,
    "upstream_risk": 0.1,
}
SYNTHETIC_COEFFICIENTS: dict[str, float] = {
    "schedule_buffer_days": -0.03,
    "probability_on_time": -2.0,
    "blocked_ratio": 5.0,
    "scope_growth": 2.5,
    "throughput_trend": -1.5,
    "staffing_gap": 3.0,
    "key_person_share": 1.5,
    "upstream_risk": 1.5,
}


def synthetic_slip_probability(features: pd.DataFrame) -> np.ndarray:
    """The true P(slip) of ``synthetic_slip_history``'s generating model for complete feature rows."""
    x = _design(features)
    centre = np.array([SYNTHETIC_CENTRE[f] for f in FEATURES])
    coefficients = np.array([SYNTHETIC_COEFFICIENTS[f] for f in FEATURES])
    return 1.0 / (1.0 + np.exp(-(SYNTHETIC_INTERCEPT + (x - centre) @ coefficients)))


def synthetic_slip_history(n: int, *, seed: int = 0, slip_days: int = 10) -> pd.DataFrame:
    """Plausible slip history of ``n`` rows for tests and the demo, from a known logistic model.

    Features: the buffer is Normal(4, 14) days, rounded and capped at +-60; P(on time) is
    sigmoid(logit 0.85 + buffer / 8 + Normal(0, 0.6)), so a zero buffer means about 85 % (the P85 on the
    target) with forecast noise; upstream risk is 0 for half the projects, else Beta(2, 5); blocked work is
    Beta(2, 10) + 0.4 x upstream risk (waiting on upstream shows as blocked tasks); scope growth is
    Gamma(2, 0.06) (mean 12 %); the staffing gap is 0 for 60 %, else Beta(2, 5); the throughput trend is
    exp(Normal(0, 0.25) - 0.5 x staffing gap) (unstaffed work slows delivery); the key-person share is
    Beta(4, 5). The label is Bernoulli with ``synthetic_slip_probability`` (``SYNTHETIC_INTERCEPT`` -1 plus
    ``SYNTHETIC_COEFFICIENTS`` x (value - ``SYNTHETIC_CENTRE``): buffer -0.03/day, P(on time) -2, blocked 5,
    scope 2.5, trend -1.5, staffing 3, key person 1.5, upstream 1.5; about 30 % slip). ``slipped_days`` is
    ``slip_days`` + 1 + round(Gamma(1.5, 12)) for a slip and uniform on -15..``slip_days`` otherwise.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    rng = np.random.default_rng(seed)
    buffer = np.clip(np.round(rng.normal(4.0, 14.0, n)), -60, 60)
    on_time = 1.0 / (1.0 + np.exp(-(np.log(0.85 / 0.15) + buffer / 8.0 + rng.normal(0.0, 0.6, n))))
    upstream = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.beta(2, 5, n))
    blocked = np.clip(rng.beta(2, 10, n) + 0.4 * upstream, 0.0, 1.0)
    scope = rng.gamma(2.0, 0.06, n)
    staffing = np.where(rng.uniform(size=n) < 0.6, 0.0, rng.beta(2, 5, n))
    trend = np.exp(rng.normal(0.0, 0.25, n) - 0.5 * staffing)
    key = rng.beta(4, 5, n)
    frame = pd.DataFrame(
        {
            "schedule_buffer_days": buffer,
            "probability_on_time": on_time,
            "blocked_ratio": blocked,
            "scope_growth": scope,
            "throughput_trend": trend,
            "staffing_gap": staffing,
            "key_person_share": key,
            "upstream_risk": upstream,
        }
    )
    slipped = rng.uniform(size=n) < synthetic_slip_probability(frame)
    late = slip_days + 1 + np.round(rng.gamma(1.5, 12.0, n))
    on_or_near = rng.integers(-15, slip_days + 1, n)
    frame[OUTCOME] = np.where(slipped, late, on_or_near).astype(int)
    return frame
