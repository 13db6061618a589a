"""PPMS input checks: what is wrong with a batch of tasks and dependencies, said so a person can fix it.

Bad rows are quarantined with their reason, never crash a run: a negative estimate, a task done before it
started, a dependency on a task nobody knows, a task depending on itself, and dependency cycles — a cycle
is reported with its members in order (``SHOP-1 → SHOP-2 → SHOP-3 → SHOP-1``) and broken by
quarantining the newest of its edges, so the rest of the graph can still be scheduled.
"""

from __future__ import annotations

from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter

from framework2.tasks.planning.records import Batch, DependencyRecord

SOURCE = "ppms"


def _reject(rejected: list[dict], what: str, reason: str, payload: dict) -> None:
    rejected.append({"source": what, "reason": reason, "payload": payload})


def find_cycle(edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """One dependency cycle as its members in order (first repeated at the end), or None."""
    graph: dict[str, set[str]] = {}
    for task, depends_on in edges:
        graph.setdefault(task, set()).add(depends_on)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = list(exc.args[1])
        # graphlib lists the cycle against the edge direction; show it as "waits for" order.
        return list(reversed(cycle))
    return None


def validate_batch(batch: Batch, known_tasks: set[str], known_edges: Iterable[tuple[str, str]] = ()) -> Batch:
    """The batch with its bad rows moved to ``rejected`` (each with a reason), ready to store.

    ``known_tasks`` and ``known_edges`` are what the store already holds, so a dependency may point at a
    task read earlier (or from another source) and a cycle may close through stored edges.
    """
    rejected = list(batch.rejected)
    tasks = []
    for task in batch.tasks:
        if task.estimate_days is not None and task.estimate_days < 0:
            _reject(rejected, task.key, f"negative estimate {task.estimate_days:g} days", task.model_dump(mode="json"))
            continue
        if task.done_at and task.started_at and task.done_at < task.started_at:
            _reject(
                rejected,
                task.key,
                f"done ({task.done_at:%Y-%m-%d %H:%M}) before it started ({task.started_at:%Y-%m-%d %H:%M})",
                task.model_dump(mode="json"),
            )
            continue
        tasks.append(task)
    keys = known_tasks | {t.key for t in tasks}

    edges: list[DependencyRecord] = []
    for dep in dict.fromkeys(batch.dependencies):  # exact duplicates once
        payload = dep.model_dump()
        if dep.task == dep.depends_on:
            _reject(rejected, dep.task, f"{dep.task} depends on itself", payload)
        elif dep.task not in keys:
            _reject(rejected, dep.task, f"dependency of unknown task {dep.task} on {dep.depends_on}", payload)
        elif dep.depends_on not in keys:
            _reject(rejected, dep.task, f"{dep.task} depends on {dep.depends_on}, which is not a known task", payload)
        else:
            edges.append(dep)

    stored = [(a, b) for a, b in known_edges if a not in {e.task for e in edges}]  # re-declared edges replace
    while (cycle := find_cycle([*stored, *((e.task, e.depends_on) for e in edges)])) is not None:
        members = " → ".join(cycle)
        in_cycle = {(a, b) for a, b in zip(cycle, cycle[1:], strict=False)}
        newest = next((e for e in reversed(edges) if (e.task, e.depends_on) in in_cycle), None)
        if newest is None:  # the cycle is made of stored edges only: report it, drop nothing new
            _reject(rejected, cycle[0], f"dependency cycle in stored data: {members}", {"cycle": cycle})
            stored = [edge for edge in stored if edge not in in_cycle]
            continue
        edges.remove(newest)
        _reject(
            rejected,
            newest.task,
            f"dependency cycle: {members}; the edge {newest.task} → {newest.depends_on} was quarantined to break it",
            {**newest.model_dump(), "cycle": cycle},
        )
    return batch.model_copy(update={"tasks": tasks, "dependencies": edges, "rejected": rejected})
