"""PUXT removal effects: hand-computed chains, the fitted chain against a known one, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from framework2.errors import DataError
from framework2.sample.journeys import sample_journeys
from framework2.tasks.journeys.funnels import prepare_events
from framework2.tasks.journeys.removal import CONVERSION, NULL, START, fit_chain, removal_effects

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def _paths(paths: list[list[str]]) -> pd.DataFrame:
    """One user and session per path, a minute between events."""
    rows = [
        {"user": f"u{n}", "event": e, "timestamp": T0 + pd.Timedelta(minutes=i)}
        for n, path in enumerate(paths)
        for i, e in enumerate(path)
    ]
    return pd.DataFrame(rows)


def test_two_paths_by_hand() -> None:
    # start → A; A → B (1/2) → conversion, A → C (1/2) → null. P = 1/2.
    result = removal_effects(_paths([["A", "B", "buy"], ["A", "C"]]), "buy")
    assert result.conversion_probability == pytest.approx(0.5)
    effects = result.effects.set_index("step")
    assert effects["removal_effect"].to_dict() == pytest.approx({"A": 1.0, "B": 1.0, "C": 0.0})
    assert effects["share"].to_dict() == pytest.approx({"A": 0.5, "B": 0.5, "C": 0.0})


def test_partial_effect_by_hand() -> None:
    # start → A 2/3, start → B 1/3; A → B 1/2, A → null 1/2; B → conversion.
    # P = 2/3 · 1/2 + 1/3 = 2/3. Without A: 1/3 → effect 1/2. Without B: 0 → effect 1. Shares 1/3, 2/3.
    result = removal_effects(_paths([["A", "B", "buy"], ["B", "buy"], ["A"]]), "buy")
    assert result.conversion_probability == pytest.approx(2 / 3)
    assert result.observed_conversion_rate == pytest.approx(2 / 3)
    effects = result.effects.set_index("step")
    assert effects["removal_effect"].to_dict() == pytest.approx({"A": 0.5, "B": 1.0})
    assert effects["p_conversion_without"].to_dict() == pytest.approx({"A": 1 / 3, "B": 0.0})
    assert effects["share"].to_dict() == pytest.approx({"A": 1 / 3, "B": 2 / 3})
    assert result.effects["step"].tolist() == ["B", "A"]  # largest effect first
    # B is only ever visited by converting sessions: still a normal effect, and said so.
    assert effects.loc["B", "only_in_converting"] and not effects.loc["A", "only_in_converting"]
    assert "B" in result.note
    probs = result.transitions.set_index(["source", "target"])["probability"]
    assert probs[(START, "A")] == pytest.approx(2 / 3) and probs[("B", CONVERSION)] == pytest.approx(1.0)
    assert probs[("A", NULL)] == pytest.approx(0.5)


def test_repeats_collapse_and_path_is_cut_at_the_goal() -> None:
    # The A A repeat is one visit; what follows the purchase (C) is not part of the chain.
    result = removal_effects(_paths([["A", "A", "buy", "C"], ["A"]]), "buy")
    assert result.effects["step"].tolist() == ["A"]
    assert result.conversions == 1 and result.conversion_probability == pytest.approx(0.5)


def test_session_starting_with_the_goal() -> None:
    result = removal_effects(_paths([["buy"], ["A", "buy"], ["A"]]), "buy")
    # start → conversion 1/3, start → A 2/3 then 1/2: P = 2/3; without A 1/3 → effect 1/2.
    assert result.conversion_probability == pytest.approx(2 / 3)
    assert result.effect_of("A") == pytest.approx(0.5)
    assert result.share_of("A") == pytest.approx(1.0)
    assert result.share_of("missing") is None


def test_no_conversions() -> None:
    result = removal_effects(_paths([["A", "B"], ["A"], ["C"]]), "buy")
    assert result.conversion_probability == 0.0 and result.conversions == 0
    assert (result.effects["removal_effect"] == 0).all() and (result.effects["share"] == 0).all()
    assert "no session reaches" in result.note


def test_bad_goal() -> None:
    with pytest.raises(DataError):
        removal_effects(_paths([["A"]]), "  ")


# A known first-order chain without self-loops: rows start, X, Y, Z; columns X, Y, Z, conversion, null.
KNOWN = {
    "start": [0.6, 0.4, 0.0, 0.0, 0.0],
    "X": [0.0, 0.3, 0.3, 0.1, 0.3],
    "Y": [0.2, 0.0, 0.4, 0.1, 0.3],
    "Z": [0.1, 0.1, 0.0, 0.5, 0.3],
}


def _true_probability(removed: str | None = None) -> float:
    names = ["X", "Y", "Z"]
    q = np.array([KNOWN[s][:3] for s in names])
    r = np.array([KNOWN[s][3] for s in names])
    if removed is not None:
        i = names.index(removed)
        q[:, i] = 0.0
        q[i, :] = 0.0
        r[i] = 0.0
    b = np.linalg.solve(np.eye(3) - q, r)
    return float(np.array(KNOWN["start"][:3]) @ b)


def _simulate(n: int, seed: int) -> pd.DataFrame:
    """``n`` sessions walked through KNOWN in lockstep (array work: one draw per live session per step)."""
    rng = np.random.default_rng(seed)
    rows = ["start", "X", "Y", "Z"]
    cumulative = np.cumsum([KNOWN[s] for s in rows], axis=1)
    state = np.zeros(n, dtype=int)  # row index into ``rows``
    alive = np.ones(n, dtype=bool)
    users, events, minutes = [], [], []
    names = np.array(["X", "Y", "Z", "buy"], dtype=object)
    step = 0
    while alive.any():
        live = np.flatnonzero(alive)
        draw = (rng.random(len(live))[:, None] > cumulative[state[live]]).sum(axis=1)  # 0-2 X/Y/Z, 3 buy, 4 end
        moved = live[draw < 4]
        users.append(moved)
        events.append(names[draw[draw < 4]])
        minutes.append(np.full(len(moved), step))
        state[moved] = draw[draw < 4] + 1
        alive[live[draw >= 3]] = False  # converted or left
        step += 1
    return pd.DataFrame(
        {
            "user": np.concatenate(users),
            "event": np.concatenate(events),
            "timestamp": T0 + pd.to_timedelta(np.concatenate(minutes), unit="min"),
        }
    )


def test_chain_probability_matches_observed_and_truth() -> None:
    events = _simulate(20_000, seed=5)
    result = removal_effects(events, "buy")
    # The maximum-likelihood chain reproduces the observed rate exactly ...
    assert result.conversion_probability == pytest.approx(result.observed_conversion_rate, abs=1e-12)
    # ... and, on data generated from a first-order chain, estimates the true probability.
    assert result.conversion_probability == pytest.approx(_true_probability(), abs=0.01)
    truth = 1 - np.array([_true_probability(s) for s in ("X", "Y", "Z")]) / _true_probability()
    got = np.array([result.effect_of(s) for s in ("X", "Y", "Z")])
    assert got == pytest.approx(truth, abs=0.02)


def test_one_solve_formula_matches_re_solving_each_removal() -> None:
    prepared = prepare_events(sample_journeys(n_users=1500, seed=4))
    result = removal_effects(prepared, "purchase")
    chain, _, _ = fit_chain(prepared, "purchase")
    base = chain.conversion_probabilities()[0]
    for i, state in enumerate(chain.states[1 : chain.n_transient], start=1):
        direct = 1 - chain.conversion_probabilities(removed=i)[0] / base
        assert result.effect_of(state) == pytest.approx(direct, abs=1e-9)
    assert result.effects["share"].sum() == pytest.approx(1.0)
    # Every purchase passes through the whole funnel; search is only a detour.
    assert result.effect_of("payment") == pytest.approx(1.0)
    assert result.effect_of("search") < 0.5
