"""PPOS cross-project dependencies: cycles and unknown references are named (never crash), blocked chains follow
open work across projects and explain every hop, the critical chain is the true longest path, and risk flows
downstream with damping and stops at cycles."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import networkx as nx
import pytest

from framework2.tasks.planning.records import DependencyRecord, TaskRecord
from framework2.tasks.portfolio.dependencies import (
    blocked_chains,
    build_graph,
    critical_chain,
    graph_problems,
    milestone_node,
    project_graph,
    upstream_risk,
)

NOW = datetime(2025, 3, 3, 12, tzinfo=UTC)


def task(key: str, status: str = "todo", milestone: str | None = None) -> TaskRecord:
    """A task whose project is the part of its key before '#' (``shop#1`` is in ``shop``)."""
    return TaskRecord(
        key=key,
        project=key.split("#")[0],
        title=f"title of {key}",
        status=status,
        milestone=milestone,
        created_at=NOW,
        updated_at=NOW,
    )


def dep(blocked: str, blocker: str) -> DependencyRecord:
    return DependencyRecord(task=blocked, depends_on=blocker)


# --- the graph ---------------------------------------------------------------------------------------------


def test_graph_edges_run_from_blocker_to_blocked_and_milestones_are_reachable_from_their_work() -> None:
    tasks = [task("pay#1"), task("shop#1", milestone="v1"), task("shop#2", status="done", milestone="v1")]
    graph = build_graph(tasks, [dep("shop#1", "pay#1")])

    assert graph.has_edge("pay#1", "shop#1") and not graph.has_edge("shop#1", "pay#1")
    assert graph.nodes["shop#1"] == {
        "kind": "task",
        "project": "shop",
        "status": "todo",
        "title": "title of shop#1",
        "milestone": "v1",
    }
    v1 = milestone_node("shop", "v1")
    assert v1 == "milestone:shop:v1"
    assert graph.nodes[v1]["kind"] == "milestone"
    assert nx.has_path(graph, "pay#1", v1)
    assert set(graph.predecessors(v1)) == {"shop#1", "shop#2"}


def test_dependency_on_unknown_task_is_left_out_of_the_graph_and_reported() -> None:
    tasks = [task("shop#1"), task("shop#2")]
    deps = [dep("shop#1", "pay#9"), dep("ghost#1", "shop#2"), dep("shop#2", "shop#1")]

    graph = build_graph(tasks, deps)
    assert set(graph.nodes) == {"shop#1", "shop#2"}
    assert list(graph.edges) == [("shop#1", "shop#2")]

    problems = graph_problems(tasks, deps)
    assert [(p.kind, p.members, p.projects) for p in problems] == [
        ("unknown", ["shop#1", "pay#9"], ["shop"]),
        ("unknown", ["ghost#1", "shop#2"], ["shop"]),
    ]
    assert problems[0].message == "shop#1 (in shop) depends on pay#9, which is not a known task"
    assert "ghost#1" in problems[1].message and "not a known task" in problems[1].message
    # The unknown blocker blocks nothing.
    assert [c.task for c in blocked_chains(tasks, deps)] == ["shop#2"]


# --- problems ----------------------------------------------------------------------------------------------


def test_cycle_within_a_project_is_named_with_its_members() -> None:
    tasks = [task("shop#1"), task("shop#2"), task("shop#3"), task("shop#4")]
    deps = [dep("shop#1", "shop#2"), dep("shop#2", "shop#3"), dep("shop#3", "shop#1"), dep("shop#4", "shop#1")]

    [problem] = graph_problems(tasks, deps)

    assert problem.kind == "cycle"
    assert problem.members == ["shop#1", "shop#2", "shop#3"]  # waits-on order, smallest key first
    assert problem.projects == ["shop"]
    assert problem.message == "dependency cycle in shop: shop#1 → shop#2 → shop#3 → shop#1 (each waits on the next)"


def test_cycle_across_projects_is_named_with_its_members() -> None:
    tasks = [task("shop#1"), task("pay#2"), task("ops#3")]
    deps = [dep("shop#1", "pay#2"), dep("pay#2", "ops#3"), dep("ops#3", "shop#1")]

    [problem] = graph_problems(tasks, deps)

    assert problem.members == ["ops#3", "shop#1", "pay#2"]
    assert problem.projects == ["ops", "shop", "pay"]
    assert problem.message == (
        "dependency cycle across ops, shop, pay: ops#3 → shop#1 → pay#2 → ops#3 (each waits on the next)"
    )


def test_self_dependency_is_a_cycle_of_one_that_ends_blocked_chains() -> None:
    tasks = [task("shop#1"), task("shop#2")]
    deps = [dep("shop#1", "shop#1"), dep("shop#2", "shop#1")]

    [problem] = graph_problems(tasks, deps)
    assert (problem.kind, problem.members, problem.message) == (
        "cycle",
        ["shop#1"],
        "shop#1 depends on itself (in shop)",
    )

    [chain] = blocked_chains(tasks, deps)
    assert chain.chain == ["shop#2", "shop#1"] and chain.root_in_cycle
    assert critical_chain(tasks, deps, {"shop#1": 2, "shop#2": 3}) == (["shop#1", "shop#2"], 5.0)


def test_cycle_with_done_members_is_still_reported() -> None:
    tasks = [task("shop#1", status="done"), task("pay#1")]
    deps = [dep("shop#1", "pay#1"), dep("pay#1", "shop#1")]

    assert [p.members for p in graph_problems(tasks, deps)] == [["pay#1", "shop#1"]]
    assert blocked_chains(tasks, deps) == []  # done work satisfies: pay#1 is not blocked


def test_densely_tangled_component_reports_one_cycle_quickly_and_max_cycles_caps_the_list() -> None:
    # A complete digraph on 15 tasks has astronomically many simple cycles; one component means one report.
    tasks = [task(f"shop#{i:02d}") for i in range(15)]
    deps = [dep(a.key, b.key) for a in tasks for b in tasks if a is not b]
    started = time.perf_counter()
    [problem] = graph_problems(tasks, deps)
    assert time.perf_counter() - started < 2
    assert problem.members[0] == "shop#00" and len(set(problem.members)) == len(problem.members) >= 2
    assert "15 tasks in all" in problem.message

    pairs = [task(f"p{i}#a") for i in range(5)] + [task(f"p{i}#b") for i in range(5)]
    ring_deps = [d for i in range(5) for d in (dep(f"p{i}#a", f"p{i}#b"), dep(f"p{i}#b", f"p{i}#a"))]
    assert len(graph_problems(pairs, ring_deps)) == 5
    assert [p.members for p in graph_problems(pairs, ring_deps, max_cycles=2)] == [["p0#a", "p0#b"], ["p1#a", "p1#b"]]


# --- degenerate portfolios ---------------------------------------------------------------------------------


def test_empty_portfolio_gives_empty_answers() -> None:
    assert build_graph([], []).number_of_nodes() == 0
    assert graph_problems([], []) == []
    assert blocked_chains([], []) == []
    assert critical_chain([], [], {}) == ([], 0.0)
    assert project_graph([], []).number_of_nodes() == 0
    assert upstream_risk({}, project_graph([], [])) == {}


def test_single_project_without_dependencies_has_no_problems_chains_or_links() -> None:
    tasks = [task("shop#1"), task("shop#2"), task("shop#3", status="done")]

    assert graph_problems(tasks, []) == []
    assert blocked_chains(tasks, []) == []
    assert critical_chain(tasks, [], {"shop#1": 1.5, "shop#2": 4, "shop#3": 9}) == (["shop#2"], 4.0)
    graph = project_graph(tasks, [])
    assert list(graph.nodes(data=True)) == [("shop", {"open_tasks": 2})]
    assert graph.number_of_edges() == 0
    risk = upstream_risk({"shop": 0.3}, graph)["shop"]
    assert (risk.own, risk.inherited, risk.total, risk.via) == (0.3, 0.0, 0.3, [])


# --- blocked chains ----------------------------------------------------------------------------------------


def test_transitive_blocked_chain_across_three_projects_explains_every_hop() -> None:
    tasks = [task("shop#4"), task("pay#2", status="in_progress"), task("pay#1"), task("ops#3"), task("ops#0", "done")]
    deps = [dep("shop#4", "pay#2"), dep("pay#2", "pay#1"), dep("pay#1", "ops#3"), dep("ops#3", "ops#0")]

    chains = blocked_chains(tasks, deps)

    assert [c.task for c in chains] == ["shop#4", "pay#2", "pay#1"]  # longest first
    shop = chains[0]
    assert shop.chain == ["shop#4", "pay#2", "pay#1", "ops#3"]
    assert (shop.project, shop.root, shop.root_project, shop.root_in_cycle) == ("shop", "ops#3", "ops", False)
    assert shop.explanation == (
        "shop#4 is blocked because pay#2 in project pay is waiting on pay#1, which is waiting on ops#3 in project ops"
    )
    assert chains[2].explanation == "pay#1 is blocked because it is waiting on ops#3 in project ops"


def test_blocked_chain_follows_the_longest_line_of_blockers() -> None:
    tasks = [task("shop#1"), task("pay#1"), task("pay#2"), task("ops#1")]
    # shop#1 waits directly on ops#1 and on pay#2, which waits on pay#1, which waits on ops#1.
    deps = [dep("shop#1", "ops#1"), dep("shop#1", "pay#2"), dep("pay#2", "pay#1"), dep("pay#1", "ops#1")]

    chains = {c.task: c for c in blocked_chains(tasks, deps)}

    assert chains["shop#1"].chain == ["shop#1", "pay#2", "pay#1", "ops#1"]


def test_done_dependencies_do_not_block() -> None:
    tasks = [task("shop#1"), task("pay#1", status="done"), task("pay#2"), task("ops#1", status="done")]
    deps = [dep("shop#1", "pay#1"), dep("pay#2", "ops#1"), dep("shop#1", "pay#2")]

    [chain] = blocked_chains(tasks, deps)

    assert chain.chain == ["shop#1", "pay#2"]  # pay#2 is the root: its only blocker is done
    assert chain.explanation == "shop#1 is blocked because it is waiting on pay#2 in project pay"


def test_tasks_in_a_cycle_get_no_chain_and_tasks_waiting_on_one_end_there() -> None:
    tasks = [task("shop#1"), task("pay#1"), task("pay#2"), task("ops#1")]
    deps = [dep("pay#1", "pay#2"), dep("pay#2", "pay#1"), dep("pay#1", "ops#1"), dep("shop#1", "pay#1")]

    chains = blocked_chains(tasks, deps)

    assert [c.task for c in chains] == ["shop#1"]
    assert chains[0].chain == ["shop#1", "pay#1"] and chains[0].root_in_cycle
    assert chains[0].explanation == (
        "shop#1 is blocked because it is waiting on pay#1 in project pay, which is caught in a dependency cycle"
    )


@pytest.mark.parametrize("seed", range(5))
def test_blocked_chains_are_the_longest_open_chains_on_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    tasks = [task(f"{rng.choice(['shop', 'pay', 'ops'])}#{i}", status=rng.choice(["todo", "done"])) for i in range(10)]
    keys = [t.key for t in tasks]
    deps = [dep(keys[j], keys[i]) for i in range(10) for j in range(i + 1, 10) if rng.random() < 0.3]
    open_keys = {t.key for t in tasks if t.status != "done"}
    waits = {k: [d.depends_on for d in deps if d.task == k and d.depends_on in open_keys] for k in open_keys}

    def longest(key: str) -> int:  # tasks in the longest chain from key down to a root
        return 1 + max((longest(b) for b in waits[key]), default=0)

    chains = blocked_chains(tasks, deps)

    assert sorted(c.task for c in chains) == sorted(k for k in open_keys if waits[k])
    for c in chains:
        assert len(c.chain) == longest(c.task)
        assert all(b in waits[a] for a, b in zip(c.chain, c.chain[1:], strict=False))
        assert not waits[c.root]
    assert [len(c.chain) for c in chains] == sorted((len(c.chain) for c in chains), reverse=True)


def test_blocked_chains_of_a_long_line_of_work_are_whole_and_never_blow_up() -> None:
    tasks = [task(f"p{i % 7}#{i:04d}") for i in range(2000)]
    deps = [dep(tasks[i].key, tasks[i - 1].key) for i in range(1, 2000)]
    started = time.perf_counter()
    chains = blocked_chains(tasks, deps)
    # Not a speed target (about a second here; timings belong in bench/): a guard that the walk stays
    # polynomial, since an exponential one would never finish on 2,000 tasks.
    assert time.perf_counter() - started < 60
    assert len(chains) == 1999 and len(chains[0].chain) == 2000 and chains[0].root == "p0#0000"


# --- critical chain ----------------------------------------------------------------------------------------


def _brute_force_longest(tasks: list[TaskRecord], deps: list[DependencyRecord], days: dict[str, float]) -> float:
    open_keys = {t.key for t in tasks if t.status != "done"}
    unblocks: dict[str, list[str]] = {k: [] for k in open_keys}
    for d in deps:
        if d.task in open_keys and d.depends_on in open_keys:
            unblocks[d.depends_on].append(d.task)

    def best_from(key: str) -> float:
        return days.get(key, 0.0) + max((best_from(nxt) for nxt in unblocks[key]), default=0.0)

    return max((best_from(k) for k in open_keys), default=0.0)


@pytest.mark.parametrize("seed", range(8))
def test_critical_chain_equals_brute_force_on_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    projects = ["shop", "pay", "ops"]
    tasks = [
        task(f"{rng.choice(projects)}#{i}", status=rng.choice(["todo", "todo", "in_progress", "done"]))
        for i in range(9)
    ]
    keys = [t.key for t in tasks]  # edges only from earlier to later keys: a DAG
    deps = [dep(keys[j], keys[i]) for i in range(9) for j in range(i + 1, 9) if rng.random() < 0.35]
    days = {k: round(rng.uniform(0, 5), 2) for k in keys if rng.random() < 0.8}  # some unestimated

    chain, total = critical_chain(tasks, deps, days)

    assert total == pytest.approx(_brute_force_longest(tasks, deps, days))
    assert sum(days.get(k, 0.0) for k in chain) == pytest.approx(total)
    status = {t.key: t.status for t in tasks}
    assert all(status[k] != "done" for k in chain)
    edges = {(d.depends_on, d.task) for d in deps}
    assert all((a, b) in edges for a, b in zip(chain, chain[1:], strict=False))  # first blocker first


def test_critical_chain_ignores_cycle_edges_without_hanging() -> None:
    tasks = [task("shop#1"), task("pay#1"), task("pay#2"), task("ops#1")]
    # pay#1 and pay#2 wait on each other (edges ignored); ops#1 then pay#2 then shop#1 still forms a chain.
    deps = [dep("pay#1", "pay#2"), dep("pay#2", "pay#1"), dep("pay#2", "ops#1"), dep("shop#1", "pay#2")]
    days = {"shop#1": 1, "pay#1": 10, "pay#2": 2, "ops#1": 3}

    assert critical_chain(tasks, deps, days) == (["pay#1"], 10.0)
    assert critical_chain(tasks, deps, {**days, "pay#1": 1}) == (["ops#1", "pay#2", "shop#1"], 6.0)

    ring = [task(f"r#{i:04d}") for i in range(3000)]
    ring_deps = [dep(ring[i].key, ring[i - 1].key) for i in range(3000)]  # one big cycle
    started = time.perf_counter()
    chain, total = critical_chain(ring, ring_deps, {t.key: 1 for t in ring})
    assert time.perf_counter() - started < 5
    assert total == 1.0 and len(chain) == 1


def test_critical_chain_counts_missing_negative_and_non_finite_days_as_zero() -> None:
    tasks = [task("shop#1"), task("shop#2"), task("shop#3")]
    deps = [dep("shop#2", "shop#1"), dep("shop#3", "shop#2")]

    assert critical_chain(tasks, deps, {"shop#1": 2, "shop#3": 1}) == (["shop#1", "shop#2", "shop#3"], 3.0)
    assert critical_chain(tasks, deps, {"shop#1": -4, "shop#2": float("nan"), "shop#3": float("inf")}) == ([], 0.0)


# --- project graph and upstream risk -----------------------------------------------------------------------


def test_project_graph_counts_links_between_open_tasks_only() -> None:
    tasks = [task("shop#1"), task("shop#2"), task("pay#1"), task("pay#2", status="done"), task("ops#1", "done")]
    deps = [
        dep("shop#1", "pay#1"),
        dep("shop#2", "pay#1"),
        dep("shop#2", "pay#2"),  # done blocker: no link
        dep("pay#1", "ops#1"),  # done blocker: no link
        dep("shop#2", "shop#1"),  # inside a project: no self-loop
        dep("pay#1", "shop#1"),  # a cross-project cycle still counts as links both ways
    ]

    graph = project_graph(tasks, deps)

    assert set(graph.nodes) == {"shop", "pay", "ops"}
    assert graph.nodes["ops"]["open_tasks"] == 0
    assert graph.edges["pay", "shop"]["links"] == 2
    assert graph.edges["shop", "pay"]["links"] == 1
    assert graph.number_of_edges() == 2


def _chain_graph(*edges: tuple[str, str]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_edges_from(edges, links=1)
    return graph


def test_upstream_risk_flows_two_hops_with_damping() -> None:
    graph = _chain_graph(("ops", "pay"), ("pay", "shop"))  # shop waits on pay, which waits on ops

    risk = upstream_risk({"ops": 0.9, "pay": 0.1}, graph, damping=0.8)

    assert risk["shop"].inherited == pytest.approx(0.9 * 0.8**2)
    assert risk["shop"].total == pytest.approx(0.576)
    assert risk["shop"].via == ["ops", "pay", "shop"]
    assert risk["shop"].own == 0.0  # missing from own: counts 0
    assert risk["shop"].explanation == (
        "shop is at 58% risk inherited from ops (90% own risk) through ops → pay → shop, 2 hops damped by 0.8 each; "
        "its own risk is 0%"
    )
    assert risk["pay"].inherited == pytest.approx(0.72) and risk["pay"].via == ["ops", "pay"]
    assert (risk["ops"].inherited, risk["ops"].total, risk["ops"].via) == (0.0, 0.9, [])


def test_upstream_risk_takes_the_best_path_and_stops_at_a_project_cycle() -> None:
    # shop and pay wait on each other; ops reaches shop in two hops through pay and in three through billing, audit.
    graph = _chain_graph(
        ("shop", "pay"), ("pay", "shop"), ("ops", "pay"), ("ops", "billing"), ("billing", "audit"), ("audit", "shop")
    )

    risk = upstream_risk({"ops": 1.0, "shop": 0.2}, graph, damping=0.5)

    assert risk["shop"].inherited == pytest.approx(0.25) and risk["shop"].via == ["ops", "pay", "shop"]
    assert risk["pay"].inherited == pytest.approx(0.5)
    assert risk["pay"].via == ["ops", "pay"]  # shop's own 0.2 reaches pay as 0.1: ops wins
    assert risk["ops"].inherited == 0.0  # nothing upstream of ops, however the cycle below it turns


def test_own_risk_higher_than_inherited_wins_with_no_via() -> None:
    graph = _chain_graph(("pay", "shop"))

    risk = upstream_risk({"pay": 0.5, "shop": 0.7}, graph)["shop"]

    assert (risk.own, risk.inherited, risk.total, risk.via) == (0.7, pytest.approx(0.4), 0.7, [])
    assert risk.explanation == "shop's 70% risk is its own; the most it inherits is 40%"


def test_upstream_risk_clamps_bad_values_and_covers_projects_outside_the_graph() -> None:
    risk = upstream_risk({"shop": 1.7, "pay": float("nan"), "lone": -0.2}, _chain_graph(("pay", "shop")), damping=3)

    assert risk["shop"].total == 1.0 and risk["pay"].total == 0.0
    assert risk["lone"].total == 0.0 and risk["lone"].explanation.startswith("lone has no risk")
