"""A synthetic shop's click stream with known, planted journey problems (PUXT demo, tests, benchmark).

Each user is ``mobile`` (55 %) or ``desktop`` and has 1 + Poisson(0.5) sessions (at most 4) spread over 28
days, at least six hours apart, so the 30-minute inactivity rule recovers them exactly (no ``session`` column
is emitted). A session walks the shop funnel

    landing → product_view → add_to_cart → checkout_start → payment → purchase

and continues from one step to the next with these probabilities (``CONTINUE``):

=====================================  ======  ========
transition                             mobile  desktop
=====================================  ======  ========
landing → product_view                 0.65    0.65
product_view → add_to_cart             0.45    0.45
add_to_cart → checkout_start           0.60    0.60
checkout_start → payment               0.75    0.75
payment → purchase                     **0.40**  0.80
=====================================  ======  ========

Planted effects the tests and the demo rely on:

1. **Mobile payment is broken**: half the desktop conversion from payment to purchase (0.40 vs 0.80). It is the
   only segment difference, and it is the top recommendation on this data.
2. **Search loops**: a quarter of sessions that view a product bounce between ``product_view`` and ``search``
   1-4 times (geometric) before going on, and then add to cart with 0.25 instead of 0.45. Their top paths
   (``landing → product_view → search → product_view → …``) loop and convert worse than average.
3. Nothing else: step times are log-normal with medians between 20 s and 90 s (``STEP_SECONDS``) and the
   same on both devices, so no step is planted as slow.

Gaps between events are capped at 25 minutes so a session never splits. Times are UTC from Monday 2025-03-03.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STEPS: tuple[str, ...] = ("landing", "product_view", "add_to_cart", "checkout_start", "payment", "purchase")
SEGMENTS: tuple[str, ...] = ("mobile", "desktop")
MOBILE_SHARE = 0.55
# P(next step | this step) per session; index i is the move from STEPS[i] to STEPS[i + 1].
CONTINUE: dict[str, tuple[float, ...]] = {
    "mobile": (0.65, 0.45, 0.60, 0.75, 0.40),
    "desktop": (0.65, 0.45, 0.60, 0.75, 0.80),
}
LOOP_SHARE = 0.25
LOOP_ADD_TO_CART = 0.25
LOOP_MEAN = 1.6
MAX_LOOPS = 4
# Median seconds from the previous event to this one.
STEP_SECONDS: dict[str, float] = {
    "product_view": 25,
    "search": 20,
    "add_to_cart": 70,
    "checkout_start": 45,
    "payment": 90,
    "purchase": 40,
}
DAYS = 28
START = pd.Timestamp("2025-03-03", tz="UTC")
_SESSION_SPACING_S = 6 * 3600
_MAX_GAP_S = 25 * 60


def sample_journeys(n_users: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Events ``user, event, timestamp, segment`` (sorted by time) of a shop with the planted effects above."""
    if n_users < 1:
        raise ValueError("n_users must be >= 1")
    rng = np.random.default_rng(seed)
    mobile_user = rng.random(n_users) < MOBILE_SHARE
    n_sess = np.minimum(1 + rng.poisson(0.5, n_users), 4)
    s_user = np.repeat(np.arange(n_users), n_sess)
    n_s = len(s_user)
    s_mobile = mobile_user[s_user]

    # Session starts: k sorted uniforms on a shortened range, the i-th pushed by i spacings (all gaps >= spacing).
    first_of_user = np.concatenate([[0], np.cumsum(n_sess)[:-1]])
    rank = np.arange(n_s) - np.repeat(first_of_user, n_sess)
    room = DAYS * 86400 - n_sess[s_user] * _SESSION_SPACING_S
    raw = rng.random(n_s) * room
    # Sessions of a user are contiguous, so sorting by (user, draw) keeps each user's block in place.
    s_start = raw[np.lexsort((raw, s_user))] + rank * _SESSION_SPACING_S

    # How deep each session goes.
    probs = np.where(s_mobile[:, None], np.array(CONTINUE["mobile"]), np.array(CONTINUE["desktop"]))
    loops = rng.random(n_s) < LOOP_SHARE
    probs[loops, 1] = LOOP_ADD_TO_CART
    moves = rng.random((n_s, len(STEPS) - 1)) < probs
    depth = 1 + np.cumprod(moves, axis=1).sum(axis=1)
    n_loops = np.where(loops & (depth >= 2), np.minimum(rng.geometric(1 / LOOP_MEAN, n_s), MAX_LOOPS), 0)
    extra = 2 * n_loops
    n_events = depth + extra

    # Event i of a session: 0 landing, 1 product_view, then the search/product_view loop, then the rest.
    e_sess = np.repeat(np.arange(n_s), n_events)
    starts = np.concatenate([[0], np.cumsum(n_events)[:-1]])
    i = np.arange(len(e_sess)) - np.repeat(starts, n_events)
    off = extra[e_sess]
    names = np.array([*STEPS, "search"], dtype=object)
    step = np.where(i < 2, i, i - off)
    in_loop = (i >= 2) & (i < 2 + off)
    code = np.where(in_loop, np.where((i - 2) % 2 == 0, len(STEPS), 1), step)
    event = names[code]

    medians = np.array([0.0, *(STEP_SECONDS[s] for s in STEPS[1:]), STEP_SECONDS["search"]])
    gap = np.clip(medians[code] * rng.lognormal(0.0, 0.8, len(code)), 1.0, _MAX_GAP_S)
    gap[i == 0] = 0.0
    within = np.cumsum(gap)
    within -= np.repeat(within[starts], n_events)
    seconds = s_start[e_sess] + within

    frame = pd.DataFrame(
        {
            # Labels made once per user, then indexed: string work per event would dominate the run time.
            "user": np.array([f"u{u:06d}" for u in range(n_users)], dtype=object)[s_user[e_sess]],
            "event": event,
            "timestamp": START + pd.to_timedelta(np.round(seconds * 1000).astype(np.int64), unit="ms"),
            "segment": np.where(s_mobile[e_sess], "mobile", "desktop"),
        }
    )
    return frame.sort_values(["timestamp", "user"], kind="stable").reset_index(drop=True)
