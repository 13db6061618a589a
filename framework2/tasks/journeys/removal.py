"""PUXT removal effects: how much of the conversions each step carries, from a first-order Markov chain over
session paths.

**Chain.** Every session is a path ``START → e1 → e2 → … → CONVERSION`` if the ``goal`` event happens in it
(the path is cut at the first goal event, which becomes the ``CONVERSION`` state), else ``… → NULL``.
Consecutive repeats are collapsed first (a self-loop does not change where the chain ends up). Transition
probabilities are the observed move counts divided by the source's outgoing moves. ``CONVERSION`` and ``NULL``
are absorbing; the other states are transient, with transient-to-transient block ``Q`` and the one-step
probabilities of converting ``r``.

**P(conversion).** The absorption probabilities ``b`` solve ``(I - Q) b = r`` (``numpy.linalg.solve``, exact
linear algebra, no simulation); ``P(conversion) = b[START]``. With these maximum-likelihood probabilities the
expected visits per session equal the observed ones, so ``b[START]`` reproduces the observed session conversion
rate exactly (a useful check); what the chain adds is the counterfactual below.

**Removal effect.** Removing step *s* sends every move into *s* to ``NULL``, so only journeys that never visit
*s* can convert: ``P_without(s) = b[START] - h(START, s) · b[s]`` where ``h(START, s) = N[START, s] / N[s, s]``
is the probability of ever visiting *s* and ``N = (I - Q)^-1`` the fundamental matrix (one ``solve`` for all
steps instead of one per step; the tests check it against re-solving the modified chain). The removal effect
is ``1 - P_without(s) / P(conversion)`` and the ``share`` normalises the effects to sum to 1 ("carries 31 % of
conversions"). A step every converting journey passes through has effect 1.

Without any conversion every effect is 0 and ``note`` says so. Events that only ever happen after the goal
are not states of the chain and get no row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from framework2.errors import DataError
from framework2.tasks.journeys.funnels import DEFAULT_SESSION_GAP, PreparedEvents, as_prepared
from framework2.tasks.journeys.paths import session_sequences

START = "(start)"
CONVERSION = "(conversion)"
NULL = "(null)"


@dataclass(frozen=True)
class RemovalResult:
    """Removal effects per step, the fitted chain and the conversion probabilities.

    ``effects`` columns: ``step``, ``removal_effect``, ``share``, ``p_conversion_without``, ``sessions`` (sessions
    visiting the step before any conversion), ``converting_sessions`` and ``only_in_converting``; largest
    effect first. ``transitions``: ``source``, ``target``, ``count``, ``probability``.
    """

    goal: str
    effects: pd.DataFrame
    transitions: pd.DataFrame
    conversion_probability: float
    observed_conversion_rate: float
    sessions: int
    conversions: int
    span_days: float
    quarantined: pd.DataFrame
    note: str = ""

    def share_of(self, step: str) -> float | None:
        """The step's share of the removal effects, None when it is not a state of the chain."""
        hit = self.effects.loc[self.effects["step"] == step, "share"]
        return float(hit.iloc[0]) if len(hit) else None

    def effect_of(self, step: str) -> float | None:
        """The step's removal effect, None when it is not a state of the chain."""
        hit = self.effects.loc[self.effects["step"] == step, "removal_effect"]
        return float(hit.iloc[0]) if len(hit) else None


@dataclass(frozen=True)
class MarkovChain:
    """A fitted absorbing chain: state names (``START`` first, then steps, then ``CONVERSION``, ``NULL``) and
    the move counts between them."""

    states: list[str]
    counts: np.ndarray

    @property
    def n_transient(self) -> int:
        """``START`` plus the steps."""
        return len(self.states) - 2

    def probabilities(self) -> np.ndarray:
        """Row-normalised transition matrix (absorbing rows are identity)."""
        counts = self.counts.astype(float)
        totals = counts.sum(axis=1, keepdims=True)
        probs = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        for a in (len(self.states) - 2, len(self.states) - 1):
            probs[a] = 0.0
            probs[a, a] = 1.0
        return probs

    def conversion_probabilities(self, removed: int | None = None) -> np.ndarray:
        """P(conversion) from each transient state, optionally with transient state ``removed`` sent to NULL
        (the direct re-solve; :func:`removal_effects` uses the equivalent one-solve formula)."""
        t = self.n_transient
        probs = self.probabilities()
        q = probs[:t, :t].copy()
        r = probs[:t, t].copy()
        if removed is not None:
            q[:, removed] = 0.0
            q[removed, :] = 0.0
            r[removed] = 0.0
        return np.linalg.solve(np.eye(t) - q, r)


def fit_chain(prepared: PreparedEvents, goal: str) -> tuple[MarkovChain, np.ndarray, np.ndarray]:
    """The chain over session paths, plus per step the sessions visiting it and the converting ones."""
    seqs = session_sequences(prepared, goal)
    n_codes = len(seqs.names)
    rank = seqs.rank
    # Cut each converting session at its first goal event: everything after it is a new intent.
    cut = np.full(len(seqs.starts), np.iinfo(np.int64).max, dtype=np.int64)
    if seqs.goal_code is not None:
        goal_rows = np.flatnonzero(seqs.codes == seqs.goal_code)
        session_index = np.searchsorted(seqs.starts, goal_rows, side="right") - 1
        np.minimum.at(cut, session_index, rank[goal_rows])
    element_session = np.repeat(np.arange(len(seqs.starts)), seqs.lengths)
    keep = rank < cut[element_session]
    codes, where = seqs.codes[keep], element_session[keep]
    converted = cut < np.iinfo(np.int64).max

    # States: START, then the step codes that occur before a conversion, then CONVERSION and NULL.
    used = np.unique(codes)
    state_of = np.full(n_codes, -1, dtype=np.int64)
    state_of[used] = np.arange(1, len(used) + 1)
    conv_state, null_state = len(used) + 1, len(used) + 2
    states = [START, *(str(seqs.names[c]) for c in used), CONVERSION, NULL]
    n_states = len(states)

    s = state_of[codes]
    first = np.ones(len(codes), dtype=bool)
    first[1:] = where[1:] != where[:-1]
    last = np.ones(len(codes), dtype=bool)
    last[:-1] = where[1:] != where[:-1]
    src = np.concatenate([np.zeros(int(first.sum()), dtype=np.int64), s[~last]])
    dst = np.concatenate([s[first], s[1:][~last[:-1]] if len(s) else s])
    end_state = np.where(converted[where[last]], conv_state, null_state)
    src = np.concatenate([src, s[last]])
    dst = np.concatenate([dst, end_state])
    # Sessions that start with the goal move straight from START to CONVERSION.
    empty = np.setdiff1d(np.arange(len(seqs.starts)), where)
    src = np.concatenate([src, np.zeros(len(empty), dtype=np.int64)])
    dst = np.concatenate([dst, np.where(converted[empty], conv_state, null_state)])
    counts = np.bincount(src * n_states + dst, minlength=n_states * n_states).reshape(n_states, n_states)

    # Per step: distinct sessions visiting it (before conversion), and how many of them converted.
    pair = np.unique(s * (len(seqs.starts) + 1) + where)
    step_of_pair = pair // (len(seqs.starts) + 1)
    sess_of_pair = pair % (len(seqs.starts) + 1)
    visits = np.bincount(step_of_pair, minlength=n_states)
    conv_visits = np.bincount(step_of_pair, weights=converted[sess_of_pair], minlength=n_states).astype(np.int64)
    return MarkovChain(states=states, counts=counts), visits, conv_visits


def removal_effects(
    events: pd.DataFrame | PreparedEvents, goal: str, *, session_gap: timedelta = DEFAULT_SESSION_GAP
) -> RemovalResult:
    """Removal effect of every step on the conversion to ``goal`` (see the module docstring for the method).
    ``session_gap`` applies only when ``events`` is a raw table."""
    if not isinstance(goal, str) or not goal.strip():
        raise DataError(f"the goal must be an event name, got {goal!r}", "e.g. goal='purchase'")
    prepared = as_prepared(events, session_gap)
    chain, visits, conv_visits = fit_chain(prepared, goal)
    t = chain.n_transient
    n_sessions = prepared.n_sessions
    conversions = int(chain.counts[:, t].sum())
    observed = conversions / n_sessions if n_sessions else float("nan")
    steps = chain.states[1:t]

    transitions = _transition_table(chain)
    note = ""
    effect = np.zeros(len(steps))
    without = np.zeros(len(steps))
    p_conv = 0.0
    if n_sessions == 0:
        note = "no valid sessions: nothing to attribute"
    elif conversions == 0:
        note = f"no session reaches the goal {goal!r}: every removal effect is 0"
    else:
        probs = chain.probabilities()
        q = probs[:t, :t]
        r = probs[:t, t]
        fundamental = np.linalg.solve(np.eye(t) - q, np.eye(t))
        b = fundamental @ r
        p_conv = float(b[0])
        idx = np.arange(1, t)
        # Probability of ever visiting each step from START, times its own conversion chance: what is lost.
        reach = fundamental[0, idx] / fundamental[idx, idx]
        without = np.clip(p_conv - reach * b[idx], 0.0, None)
        # Rounded so that steps every conversion passes through tie at exactly 1 (and sort by name).
        effect = np.round(np.clip(1.0 - without / p_conv, 0.0, 1.0), 12)
        only = [s for s, v, c in zip(steps, visits[1:t], conv_visits[1:t], strict=True) if v > 0 and v == c]
        if only:
            note = f"only converting sessions visit {', '.join(only)}: their effects rest on those sessions alone"
    total = effect.sum()
    effects = pd.DataFrame(
        {
            "step": steps,
            "removal_effect": effect,
            "share": effect / total if total > 0 else np.zeros(len(steps)),
            "p_conversion_without": without,
            "sessions": visits[1:t].astype(np.int64),
            "converting_sessions": conv_visits[1:t].astype(np.int64),
        }
    )
    effects["only_in_converting"] = (effects["sessions"] > 0) & (effects["sessions"] == effects["converting_sessions"])
    effects = effects.sort_values(["removal_effect", "step"], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )
    return RemovalResult(
        goal=goal,
        effects=effects,
        transitions=transitions,
        conversion_probability=p_conv,
        observed_conversion_rate=observed,
        sessions=n_sessions,
        conversions=conversions,
        span_days=prepared.span_days,
        quarantined=prepared.quarantined,
        note=note,
    )


def _transition_table(chain: MarkovChain) -> pd.DataFrame:
    """Non-zero moves of the chain with their counts and probabilities."""
    probs = chain.probabilities()
    src, dst = np.nonzero(chain.counts)
    names = np.asarray(chain.states, dtype=object)
    table = pd.DataFrame(
        {
            "source": names[src],
            "target": names[dst],
            "count": chain.counts[src, dst].astype(np.int64),
            "probability": probs[src, dst],
        }
    )
    return table.sort_values(["count", "source", "target"], ascending=[False, True, True]).reset_index(drop=True)
