"""PPOS cross-project dependencies: the portfolio's task graph, what is wrong with it, what blocks what, the
critical chain, and how risk flows from the projects a project waits on.

The graph (``build_graph``) has one node per task and an edge ``depends_on → task`` for each dependency, so
edges point the way work flows: from the blocker to what it unblocks. Milestones are nodes too
(``milestone:{project}:{name}``) with an edge from each of their tasks, so a milestone is reachable from
everything it waits on. A dependency naming a task nobody knows is left out of the graph and reported by
``graph_problems``; it neither blocks nor crashes anything.

Decisions:

- **Done work is satisfied.** Blocked chains, the critical chain and the project graph look only at open
  (todo / in progress) tasks and the dependencies among them; a cycle is still reported when some of its
  members are done, because the data says something impossible.
- **Cycles are reported, never followed.** ``graph_problems`` names one concrete cycle per strongly connected
  component (so the work is bounded by the graph's size, not by its number of cycles, which can be
  exponential), in "waits on" order: ``a → b → a`` reads "a waits on b, which waits on a". A task depending
  on itself is a cycle of one.
- **Blocked chains stop at a cycle.** A task caught in a cycle of open work has no chain (its chain would be
  endless); a task that waits on one gets a chain ending at the first cycle member it reaches, and its
  explanation says that root is caught in a dependency cycle.
- **The critical chain ignores cycle edges.** Inside each strongly connected component of open work the
  dependency edges are removed, which leaves a DAG with every task in it; the longest path by remaining days
  is taken there. A cycle cannot be scheduled as drawn, so any order through it is a guess — dropping its
  edges under-states the chain rather than inventing one order of the cycle.
- **Risk flows downstream with damping.** A project inherits ``own[U] x damping**hops`` from each project
  ``U`` it (transitively) waits on, through the fewest hops (the best path when damping <= 1); cycles in the
  project graph cost nothing because every project is visited once per breadth-first search.

Methods: all graph work is networkx's. Cycles are strongly connected components plus ``find_cycle``; the
critical chain is ``dag_longest_path`` with each task's days on its incoming edges and a start node feeding
every task; every blocked task's longest chain comes from one ``goldberg_radzik`` shortest-path search with
weight -1 per dependency (shortest with negated weights is longest on a DAG), so it is linear in practice
rather than one search per task. Equally long chains are broken by networkx's order, not reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import networkx as nx
from pydantic import BaseModel, Field

from framework2.tasks.planning.records import DependencyRecord, TaskRecord

MILESTONE_PREFIX = "milestone:"
_START = ("start",)  # a search's start node; no task key can equal it, tuples are not strings


def milestone_node(project: str, name: str) -> str:
    """The graph node of milestone ``name`` in ``project``."""
    return f"{MILESTONE_PREFIX}{project}:{name}"


def _milestone_status(statuses: list[str]) -> str:
    if all(s == "done" for s in statuses):
        return "done"
    if all(s == "todo" for s in statuses):
        return "todo"
    return "in_progress"


def build_graph(tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord]) -> nx.DiGraph:
    """The portfolio's dependency graph: an edge from each blocker to what it blocks, and from each task to its
    milestone. Task nodes carry ``kind="task"``, project, status, title, milestone; dependencies on unknown
    tasks are left out (``graph_problems`` reports them)."""
    graph = nx.DiGraph()
    by_key = {t.key: t for t in tasks}  # a repeated key: the last record wins, as a store upsert would
    for task in by_key.values():
        graph.add_node(
            task.key, kind="task", project=task.project, status=task.status, title=task.title, milestone=task.milestone
        )
    for dep in dict.fromkeys(dependencies):
        if dep.task in by_key and dep.depends_on in by_key:
            graph.add_edge(dep.depends_on, dep.task, kind="dependency")
    milestones: dict[tuple[str, str], list[str]] = {}
    for task in by_key.values():
        if task.milestone:
            milestones.setdefault((task.project, task.milestone), []).append(task.key)
    for (project, name), keys in milestones.items():
        node = milestone_node(project, name)
        # Status sums up its tasks, so filters on status == "done" treat tasks and milestones alike.
        status = _milestone_status([by_key[k].status for k in keys])
        graph.add_node(node, kind="milestone", project=project, status=status, title=name, milestone=name)
        graph.add_edges_from(((key, node) for key in keys), kind="milestone")
    return graph


def _task_graph(graph: nx.DiGraph, *, open_only: bool) -> nx.DiGraph:
    """The tasks (only the not-done ones when ``open_only``) and the dependencies among them, as a copy."""
    keep = [
        n
        for n, data in graph.nodes(data=True)
        if data.get("kind") == "task" and not (open_only and data.get("status") == "done")
    ]
    return graph.subgraph(keep).copy()


def _cyclic_components(graph: nx.DiGraph) -> list[set[str]]:
    """Strongly connected components that hold a cycle (two or more nodes, or one with a self-loop)."""
    return [
        comp
        for comp in nx.strongly_connected_components(graph)
        if len(comp) > 1 or graph.has_edge(next(iter(comp)), next(iter(comp)))
    ]


def _without_cycle_edges(graph: nx.DiGraph) -> nx.DiGraph:
    """``graph`` with the edges inside each strongly connected component (self-loops included) removed: a DAG
    holding every node."""
    dag = graph.copy()
    for comp in _cyclic_components(graph):
        dag.remove_edges_from(list(graph.subgraph(comp).edges()))
    return dag


def _in_order(keys: Iterable[str], project_of: Mapping[str, str]) -> list[str]:
    """The projects of ``keys`` in order of first appearance."""
    return list(dict.fromkeys(project_of[k] for k in keys if k in project_of))


class GraphProblem(BaseModel):
    """Something in the dependency data that cannot be scheduled as given."""

    kind: Literal["cycle", "unknown"]
    members: list[str] = Field(
        ...,
        description="cycle: its task keys in 'waits on' order, each once, starting at the smallest key; "
        "unknown: [task, depends_on] of the dependency as declared.",
    )
    projects: list[str] = Field(..., description="Projects of the (known) members, in order of first appearance.")
    message: str


def _cycle_problem(graph: nx.DiGraph, comp: set[str], project_of: Mapping[str, str]) -> GraphProblem:
    # The reversed subgraph's edges run task → depends_on, so the cycle found reads in "waits on" order.
    waits_on = graph.subgraph(comp).reverse(copy=True)
    start = min(comp)
    members = [u for u, _ in nx.find_cycle(waits_on, source=start)]
    first = members.index(min(members))  # rotate so the same cycle always reads the same way
    members = members[first:] + members[:first]
    projects = _in_order(members, project_of)
    if len(members) == 1:
        message = f"{members[0]} depends on itself (in {projects[0]})"
    else:
        where = f"in {projects[0]}" if len(projects) == 1 else f"across {', '.join(projects)}"
        message = f"dependency cycle {where}: {' → '.join([*members, members[0]])} (each waits on the next)"
    if len(comp) > len(members):
        message += f"; {len(comp)} tasks in all are tangled in this knot of dependencies"
    return GraphProblem(kind="cycle", members=members, projects=projects, message=message)


def graph_problems(
    tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord], *, max_cycles: int = 50
) -> list[GraphProblem]:
    """Dependency cycles (one concrete cycle per tangled component, at most ``max_cycles``, smallest keys
    first), then dependencies naming an unknown task, in input order."""
    graph = _task_graph(build_graph(tasks, dependencies), open_only=False)
    project_of = {t.key: t.project for t in tasks}
    components = sorted(_cyclic_components(graph), key=min)[: max(max_cycles, 0)]
    problems = [_cycle_problem(graph, comp, project_of) for comp in components]

    for dep in dict.fromkeys(dependencies):
        task_known, blocker_known = dep.task in project_of, dep.depends_on in project_of
        if task_known and blocker_known:
            continue
        if task_known:
            message = f"{dep.task} (in {project_of[dep.task]}) depends on {dep.depends_on}, which is not a known task"
        elif blocker_known:
            message = f"{dep.task}, which is not a known task, is declared to depend on {dep.depends_on}"
        else:
            message = f"dependency between two unknown tasks: {dep.task} on {dep.depends_on}"
        problems.append(
            GraphProblem(
                kind="unknown",
                members=[dep.task, dep.depends_on],
                projects=_in_order([dep.task, dep.depends_on], project_of),
                message=message,
            )
        )
    return problems


class BlockedChain(BaseModel):
    """An open task waiting on open work, with the longest chain of blockers behind it."""

    task: str
    project: str
    chain: list[str] = Field(..., description="The task, what it waits on, what that waits on, ... the root.")
    root: str
    root_project: str
    root_in_cycle: bool = Field(False, description="The root is caught in a dependency cycle, not free to start.")
    explanation: str


def _explain_chain(chain: list[str], project_of: Mapping[str, str], root_in_cycle: bool) -> str:
    def hop(i: int) -> str:
        # A hop names its project when it changes, which is what makes a chain cross-project.
        same = project_of[chain[i]] == project_of[chain[i - 1]]
        return chain[i] if same else f"{chain[i]} in project {project_of[chain[i]]}"

    if len(chain) == 2:
        sentence = f"{chain[0]} is blocked because it is waiting on {hop(1)}"
    else:
        sentence = f"{chain[0]} is blocked because {hop(1)} is waiting on {hop(2)}"
        sentence += "".join(f", which is waiting on {hop(i)}" for i in range(3, len(chain)))
    if root_in_cycle:
        sentence += ", which is caught in a dependency cycle"
    return sentence


def blocked_chains(tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord]) -> list[BlockedChain]:
    """Each open task with an open dependency and its longest chain of open blockers down to a root (an open
    task with no open dependency, or the first cycle member reached). Tasks caught in a cycle are left out.
    Longest chain first, then by key."""
    open_graph = _task_graph(build_graph(tasks, dependencies), open_only=True)
    in_cycle = set().union(*_cyclic_components(open_graph))
    # A cycle member ends any chain that reaches it: drop the edges into it, cycle edges included.
    chains_graph = open_graph.copy()
    chains_graph.remove_edges_from([(u, v) for u, v in open_graph.edges() if v in in_cycle])
    project_of = {t.key: t.project for t in tasks}

    # Longest chains to every task at once: shortest paths with weight -1 per dependency from a start node tied
    # (at weight 0) to every root. The graph is acyclic, so there is no negative cycle, and Goldberg-Radzik
    # settles a DAG in a pass or two in topological order — one search instead of one per blocked task.
    roots = [key for key in chains_graph.nodes if chains_graph.in_degree(key) == 0]
    chains_graph.add_node(_START)
    chains_graph.add_edges_from((_START, key) for key in roots)
    pred, _ = nx.goldberg_radzik(chains_graph, _START, weight=lambda u, _v, _d: 0 if u == _START else -1)

    result = []
    for key in open_graph.nodes:
        if key in in_cycle or pred.get(key) in (None, _START):  # in a cycle, or waits on no open work
            continue
        chain = [key]
        while pred[chain[-1]] != _START:
            chain.append(pred[chain[-1]])
        root = chain[-1]
        result.append(
            BlockedChain(
                task=key,
                project=project_of[key],
                chain=chain,
                root=root,
                root_project=project_of[root],
                root_in_cycle=root in in_cycle,
                explanation=_explain_chain(chain, project_of, root in in_cycle),
            )
        )
    return sorted(result, key=lambda c: (-len(c.chain), c.task))


def _days(value: float | None) -> float:
    """Remaining days as a usable weight: missing, negative or non-finite values count 0."""
    if value is None or not math.isfinite(value) or value < 0:
        return 0.0
    return float(value)


def critical_chain(
    tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord], remaining_days: Mapping[str, float]
) -> tuple[list[str], float]:
    """The chain of open tasks (across projects) with the most remaining days, in the order the work must
    happen (first blocker first), and its total. Tasks missing from ``remaining_days`` count 0; edges inside
    dependency cycles are ignored. ``([], 0.0)`` when no open task has remaining days."""
    dag = _without_cycle_edges(_task_graph(build_graph(tasks, dependencies), open_only=True))
    if dag.number_of_nodes() == 0:
        return [], 0.0
    weight = {key: _days(remaining_days.get(key)) for key in dag.nodes}
    # networkx weighs edges, not nodes: give each edge its head's days and add a start node with an edge to
    # every task carrying that task's days, so a path from the start weighs the sum of its tasks.
    weighted = nx.DiGraph()
    weighted.add_weighted_edges_from((u, v, weight[v]) for u, v in dag.edges())
    weighted.add_weighted_edges_from((_START, key, weight[key]) for key in dag.nodes)
    path = [node for node in nx.dag_longest_path(weighted) if node != _START]
    total = sum(weight[key] for key in path)
    if total <= 0:
        return [], 0.0
    return path, total


def project_graph(tasks: Sequence[TaskRecord], dependencies: Sequence[DependencyRecord]) -> nx.DiGraph:
    """Projects and how their open work waits on each other: an edge ``B → A`` when an open task of A waits on
    an open task of B, with ``links`` = the number of such task pairs. Every project with tasks is a node
    (``open_tasks`` = its open task count); dependencies inside a project make no self-loop."""
    open_graph = _task_graph(build_graph(tasks, dependencies), open_only=True)
    by_key = {t.key: t for t in tasks}
    projects = nx.DiGraph()
    for task in by_key.values():
        if task.project not in projects:
            projects.add_node(task.project, open_tasks=0)
        if task.status != "done":
            projects.nodes[task.project]["open_tasks"] += 1
    for blocker, blocked in open_graph.edges():
        source, target = by_key[blocker].project, by_key[blocked].project
        if source == target:
            continue
        if projects.has_edge(source, target):
            projects.edges[source, target]["links"] += 1
        else:
            projects.add_edge(source, target, links=1)
    return projects


class UpstreamRisk(BaseModel):
    """A project's risk: its own, what it inherits from the projects it waits on, and the larger of the two."""

    project: str
    own: float = Field(..., ge=0, le=1)
    inherited: float = Field(..., ge=0, le=1)
    total: float = Field(..., ge=0, le=1, description="max(own, inherited)")
    via: list[str] = Field(
        default_factory=list,
        description="Projects the inherited risk flows through, source first, this project last; empty when own "
        "risk is at least the inherited.",
    )
    explanation: str


def _risk(value: float | None) -> float:
    """A risk clamped to 0..1; missing or non-finite counts 0."""
    if value is None or not math.isfinite(value):
        return 0.0
    return min(max(float(value), 0.0), 1.0)


def upstream_risk(own: Mapping[str, float], graph: nx.DiGraph, *, damping: float = 0.8) -> dict[str, UpstreamRisk]:
    """Each project's risk including what flows down from the projects it waits on (``graph`` from
    ``project_graph``): inherited = max over upstream projects U of own[U] x damping**hops, by the fewest hops.
    Covers the graph's projects and those in ``own``; projects missing from ``own`` count 0, risks are clamped
    to 0..1 and damping to 0..1."""
    damping = _risk(damping)
    projects = list(dict.fromkeys([*graph.nodes, *own]))
    upstream_of = graph.reverse(copy=False)
    result = {}
    for project in projects:
        mine = _risk(own.get(project))
        inherited, via = 0.0, []
        if project in upstream_of:
            # Breadth-first from the project against the edges: the fewest hops to each upstream project, which
            # is its best path when damping <= 1; every project is visited once, so cycles cannot loop.
            paths = nx.single_source_shortest_path(upstream_of, project)
            for source in sorted(paths, key=lambda p: (len(paths[p]), p)):
                if source == project:
                    continue
                value = _risk(own.get(source)) * damping ** (len(paths[source]) - 1)
                if value > inherited:
                    inherited, via = value, list(reversed(paths[source]))
        if inherited > mine:
            hops = len(via) - 1
            explanation = (
                f"{project} is at {inherited:.0%} risk inherited from {via[0]} ({_risk(own.get(via[0])):.0%} own risk) "
                f"through {' → '.join(via)}, {hops} hop{'s' if hops != 1 else ''} damped by {damping:g} each; "
                f"its own risk is {mine:.0%}"
            )
        elif mine > 0:
            explanation = f"{project}'s {mine:.0%} risk is its own" + (
                f"; the most it inherits is {inherited:.0%}" if inherited > 0 else "; nothing it waits on is at risk"
            )
        else:
            explanation = f"{project} has no risk of its own and nothing it waits on is at risk"
        result[project] = UpstreamRisk(
            project=project,
            own=mine,
            inherited=inherited,
            total=max(mine, inherited),
            via=via if inherited > mine else [],
            explanation=explanation,
        )
    return result
