"""Links from requirements to tasks: ids not yet used, and links to tasks nobody knows."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from framework2.tasks.context.requirements.model import FileProblem, Requirement

ID_EXAMPLE = "REQ-1"


def unused_id(ids: Iterable[str]) -> str:
    """'id: REQ-n' quoted, with n one past the highest REQ-number among ``ids`` (case-insensitive)."""
    numbers = [int(m.group(1)) for i in ids if (m := re.fullmatch(r"req-(\d{1,9})", i.strip().casefold()))]
    return f"'id: REQ-{max(numbers, default=0) + 1}' (an id no other requirement uses)"


def unknown_task_links(requirements: Sequence[Requirement], known_tasks: set[str]) -> list[FileProblem]:
    """One problem per requirement that links tasks PPMS does not know (the requirement itself stays usable)."""
    problems = []
    for requirement in requirements:
        unknown = [task for task in requirement.tasks if task not in known_tasks]
        if unknown:
            noun = "task" if len(unknown) == 1 else "tasks"
            problems.append(
                FileProblem(
                    source=requirement.source,
                    reason=f"{requirement.id} links to {noun} PPMS does not know: {', '.join(unknown)}",
                    hint="check the key (e.g. jira:SHOP-12, github:octo/shop#12), or let PPMS read that tracker first",
                )
            )
    return problems
