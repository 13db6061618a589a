"""What an experiment is (its configuration, validated at the boundary) and the per-arm sufficient statistics
every analysis works from.

The analysis never needs per-user rows once these sums exist: a mean, its variance, a ratio's delta-method
variance and CUPED's covariance are all functions of them. That is what lets ten million exposures be
aggregated once (vectorised) and then analysed in microseconds per arm and metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, model_validator

MetricKind = Literal["binomial", "mean", "ratio"]


class MetricSpec(BaseModel):
    """One metric of an experiment.

    - ``binomial``: per user 1 if the user had at least one ``event`` after exposure, else 0. Values play no
      part (a conversion is the event happening), so ``missing`` does not apply.
    - ``mean``: per user the sum of ``event`` values after exposure; users without the event count as 0
      unless ``missing="exclude"`` (a measurement some users never produce, such as a load time).
    - ``ratio``: sum of ``event`` values over sum of ``denominator_event`` values, per user, analysed with the
      delta method (for example clicks per session); users with a zero denominator carry no information.

    Values and ``missing``: an event name none of whose rows holds a number in ``value`` (no value column, or
    every cell of that name empty) is a count event - each row is worth 1, so "sessions per user" is a mean of
    ``session``. An event name that has a number in some rows is measured: there an empty cell is a missing
    value, never 1, and ``missing`` says what a mean or ratio metric (numerator or denominator) does with it:

    - ``"zero"`` (default): the row counts with value 0; users without the event count as 0;
    - ``"exclude"``: the row is ignored, and a mean's users without a valued row in the window are not
      analysed (a ratio still analyses every user with a non-zero denominator);
    - ``"quarantine"``: the row is ignored by this metric and reported in ``ExperimentData.quarantined`` with
      the reason; users without the event count as 0, as with ``"zero"``.

    Each metric applies its own policy to a row that several metrics read. How many rows were missing is
    reported per metric in ``ExperimentData.missing_values`` whatever the policy.
    """

    name: str = Field(min_length=1)
    kind: MetricKind
    event: str = Field(min_length=1, description="Event name whose occurrences/values make the numerator.")
    denominator_event: str | None = Field(None, description="Ratio metrics only: the denominator's event.")
    missing: Literal["zero", "exclude", "quarantine"] = Field(
        "zero",
        description="Users without the event, and rows of a measured event with an empty value: zero (they count "
        "0), exclude (rows ignored; a mean leaves users without a valued row out) or quarantine (rows reported "
        "as quarantined and ignored; users without the event count 0).",
    )
    higher_is_better: bool = True
    guardrail: bool = Field(False, description="A metric that must not get worse, rather than one to improve.")
    guardrail_tolerance: float = Field(
        0.0, ge=0, description="Relative worsening a guardrail tolerates (0.02 = 2 %) before it counts as breached."
    )
    prior: Literal["flat", "informative"] = Field(
        "flat",
        description="Prior of the Bayesian result: flat (the reference engine's default; the credible interval is "
        "then the confidence interval) or informative, N(0, prior_sd^2) on the relative lift.",
    )
    prior_sd: float = Field(0.3, gt=0, description="The informative prior's sd on the relative lift (0.3 = 30 %).")
    target_effect: float | None = Field(
        None,
        gt=0,
        description="The smallest relative effect worth detecting (0.05 = 5 %): how many more users and days a "
        "decision needs is worked out for it. Default: the experiment's sequential_tau.",
    )

    @model_validator(mode="after")
    def _ratio_has_denominator(self) -> MetricSpec:
        if self.kind == "ratio" and not self.denominator_event:
            raise ValueError(f"ratio metric {self.name!r} needs a denominator_event")
        if self.kind != "ratio" and self.denominator_event:
            raise ValueError(f"only ratio metrics take a denominator_event ({self.name!r} is {self.kind})")
        return self


class ExperimentSpec(BaseModel):
    """An experiment as configured by its team. The first variation is the control."""

    key: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    name: str = ""
    variations: list[str] = Field(min_length=1)
    expected_split: list[float] | None = Field(None, description="Traffic share per variation; equal if omitted.")
    metrics: list[MetricSpec] = Field(min_length=1)
    start: datetime | None = None
    end: datetime | None = None
    pre_period_days: int = Field(14, ge=0, le=365, description="Days before exposure used as CUPED's covariate.")
    alpha: float = Field(0.05, gt=0, lt=0.5)
    correction: Literal["holm", "bh", "none"] = "holm"
    sequential_tau: float = Field(
        0.1,
        gt=0,
        description="Standard deviation of the always-valid test's normal mixture on the relative lift: the size "
        "of lift it detects fastest (0.1 = 10 %).",
    )
    min_users_per_arm: int = Field(100, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if len(set(self.variations)) != len(self.variations):
            raise ValueError(f"experiment {self.key!r} lists a variation twice: {self.variations}")
        if self.expected_split is not None:
            if len(self.expected_split) != len(self.variations):
                raise ValueError(
                    f"experiment {self.key!r}: expected_split has {len(self.expected_split)} shares for "
                    f"{len(self.variations)} variations"
                )
            if any(s <= 0 for s in self.expected_split):
                raise ValueError(f"experiment {self.key!r}: every expected_split share must be positive")
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.key!r} defines a metric name twice: {names}")
        return self

    @property
    def control(self) -> str:
        return self.variations[0]

    def split(self) -> list[float]:
        """Expected traffic shares, normalised to sum to 1."""
        shares = self.expected_split or [1.0] * len(self.variations)
        total = sum(shares)
        return [s / total for s in shares]


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one metric in one variation.

    ``users`` counts users exposed to the arm; ``n`` the users whose value is analysed (fewer than ``users``
    when a ``missing="exclude"`` metric has no value for some, or a ratio's denominator is zero).
    ``total``/``total_sq`` are sums of the per-user value (the numerator for ratios); ``den_*`` and
    ``num_den`` carry the ratio's denominator; ``cov_*`` carry the pre-period covariate for CUPED (the same
    metric before exposure), present when ``has_covariate``; they are sums over the same ``n`` analysed users as
    ``total``/``total_sq`` (CUPED needs covariate and value of the same users).
    """

    variation: str
    users: int
    n: int
    total: float
    total_sq: float
    den_total: float = 0.0
    den_total_sq: float = 0.0
    num_den: float = 0.0
    has_covariate: bool = False
    cov_total: float = 0.0
    cov_total_sq: float = 0.0
    cov_value: float = 0.0  # sum over users of covariate x value
