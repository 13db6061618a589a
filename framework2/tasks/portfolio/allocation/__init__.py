"""PPOS resource allocation: demand per skill per week from the open backlog, people across projects by a MILP.

Demand (``skill_demand``)
-------------------------
Every open task (status not ``done``) of every project needs ``remaining_days`` working days (the PPMS
duration model's prediction; without one, its ``estimate_days`` when positive, else ``default_days``).
Assumption, stated because it shapes every shortage: **each task is worked by one person full time as
early as its dependencies allow**. A forward pass over the dependency graph (all projects at once, so a
dependency on another project's task counts too) starts a task when the last open task it depends on
finishes, on a working-day axis from ``start``; done or unknown blockers do not hold it. Independent tasks
run in parallel from day 0, so demand is front-loaded: a shortage means the work starts later than it
could, not that it never happens. Each working day a task spans demands one person-day, split evenly over
its required skills (none: ``"general"``, which anyone can do); skills are compared case-insensitively and
reported in lower case. Weeks are ISO weeks named by their Monday: week 0 is the week of ``start`` and holds
only its working days from ``start`` on. Demand past the last week is dropped and counted in
``df.attrs["beyond_horizon_days"]`` (and per project in ``df.attrs["beyond_horizon_by_project"]``);
``df.attrs["assumed_days"]`` lists the tasks without a predicted remaining time.

Why an optimisation (``allocate``)
----------------------------------
Greedy ("highest-priority project first, take whoever has the skill") spends a generalist on work a
specialist could have done and leaves the specialist's scarce skill unstaffed elsewhere; the same trap
``framework2.tasks.planning.assign`` documents for tasks. A linear programme weighs all person-weeks at
once. ``scipy.optimize.milp`` (HiGHS) is already a dependency and is deterministic for the same input; without
a binding project cap the model is a pure LP and solves exactly, with the cap it is a MILP. Nothing links two
weeks, so each week is solved on its own (same optimum, smaller problems): 30 people x 10 projects x 5 skills
x 6 weeks takes about 2.5 s with the default cap and 0.1 s without it.

Model. For person ``j``, cell ``c = (project, skill, week)`` with demand ``d_c`` and priority ``p_c``:

    y[j, c] >= 0          days j gives to c; exists only if j has the skill ("general": anyone), has
                          capacity that week, and (with ``staffing``) may work on the project
    sum_j y[j, c]  <= d_c                                    coverage never exceeds demand
    sum_c y[j, c]  <= cap[j, w]  for the cells of week w     cap = weekly_capacity_days / 5 x
                                                             (working days of the week not on time off)
    sum_{c of project q, week w} y[j, c] <= min(cap[j, w], demand of q that j can do in w) * z[j, q, w]
    sum_q z[j, q, w] <= max_projects_per_person_week         z binary

The z variables exist only for person-weeks that could touch more projects than the cap, so an
unconstrained person-week stays continuous. Linking z to a project's total (not to each cell) gives a
tighter relaxation: in the benchmark above, a cap of 1 ended its 10 s a few % from optimal instead of 25 %.

Objective (maximised), with ``P`` the largest priority:

    sum y[j, c] * (p_c / P + b)  -  b * cap_min / 2 * sum_w u_w,      sum_c y[j, c] / cap[j, w] <= u_w

``b`` is 0.1 % of the smallest positive normalised priority: a covered day of zero-priority work still beats
idle capacity, but never a day of prioritised work. ``u_w`` is the busiest person's utilisation in week
``w``; its penalty is less than the bonus of the day that raises it (``cap_min`` is the smallest positive
person-week capacity), so coverage always comes first and, among plans of equal coverage, load spreads so
nobody is booked to the hilt while a colleague with the same skill idles. The reported ``objective`` is the
plain ``sum priority x covered days``. The MILP stops within ``mip_rel_gap`` (0.01 %) of the best plan or at
``time_limit_s`` (status "time_limit"; the budget is shared by the weeks, unused time passing on), so with a
binding cap the tie-breakers are best effort. A cap of 1 on a large portfolio can hit the limit (a few % gap).
Weeks being independent also means nothing keeps a person on the same project from one week to the next.

Why cap projects per person-week at 2 by default: switching between projects costs time the plan does not
see (Weinberg's rule of thumb in *Quality Software Management*: about 20 % of a person's time lost per extra
concurrent project). Two projects still let someone finish one thing and help on another; a third would cost
about 40 % by the same rule, more than the flexibility gains. Pass ``None``
to lift the cap (then the model is an LP), or 1 to dedicate everyone for the week.

Moves (``what_if_move``, ``best_single_moves``) compare against the **current staffing** (who works on which
project, e.g. ``current_staffing(tasks)`` from the assignees of open tasks). Against a free allocation a move
can only lose, because the optimum already had the freedom to make it; the functions still answer then,
reporting the cost of dedicating someone. For the same reason ``best_single_moves`` only tries people whose
projects ``staffing`` fixes: moving someone the optimiser may already place anywhere can only lose.
"""

from __future__ import annotations

from framework2.tasks.portfolio.allocation.demand import (
    current_staffing,
    skill_demand,
)
from framework2.tasks.portfolio.allocation.model import (
    COVERAGE_COLUMNS,
    DEFAULT_DAYS,
    DEMAND_COLUMNS,
    GENERAL,
    PEOPLE_COLUMNS,
    PLAN_COLUMNS,
    SHORTAGE_COLUMNS,
    Allocation,
    horizon_weeks,
)
from framework2.tasks.portfolio.allocation.moves import (
    best_single_moves,
    what_if_move,
)
from framework2.tasks.portfolio.allocation.solver import (
    allocate,
)

__all__ = [
    "Allocation",
    "COVERAGE_COLUMNS",
    "DEFAULT_DAYS",
    "DEMAND_COLUMNS",
    "GENERAL",
    "PEOPLE_COLUMNS",
    "PLAN_COLUMNS",
    "SHORTAGE_COLUMNS",
    "allocate",
    "best_single_moves",
    "current_staffing",
    "horizon_weeks",
    "skill_demand",
    "what_if_move",
]
