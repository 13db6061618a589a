"""YAML for front matter anyone may have written: ``load_limited`` is ``yaml.safe_load`` with bounds.

Why: a few hundred bytes of nested anchors and aliases ("billion laughs") build a structure that is tiny in
memory but explodes when anything walks it (a ``repr`` in an error message took 27 s and 2.2 GB), deep
nesting overflows PyYAML's recursive composer, and some scalars make Python itself raise (an integer of more
than 4,300 digits, the date 2001-13-45). Requirement front matter needs none of that, so:

- the text is at most ``MAX_YAML_CHARS`` characters;
- aliases (``*name``) are refused where they appear: the structure is never built, so nothing can expand;
- collections nest at most ``MAX_DEPTH`` levels;
- a scalar Python cannot turn into a value is an ordinary YAML error with its line.

Every refusal is a ``yaml.MarkedYAMLError`` (so callers' YAML error handling applies), short, and never holds
the offending content; ``UnsafeYAML`` adds a ``hint`` saying what to write instead.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.nodes import Node

# Real front matter is well under 2 KB (500 task keys fit in 10).
MAX_YAML_CHARS = 16 * 1024
# A requirement is a mapping of scalars and lists (depth 3); the bound leaves room and stays far below the
# interpreter's recursion limit, which the composer recurses into once per level.
MAX_DEPTH = 16
_SHOWN = 40  # characters of a name or Python message shown in a reason


class UnsafeYAML(yaml.MarkedYAMLError):
    """YAML refused for a bound it breaks (size, alias, depth), with a hint saying what to write instead."""

    def __init__(self, problem: str, mark: Mark | None, hint: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.hint = hint


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


class _LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, bounds nesting and turns Python's scalar errors into YAML errors."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 - PyYAML's name
        # Refused while scanning: each open '[' or '{' is a possible key the scanner otherwise tracks for up to
        # 1,024 characters ahead, so a line of them costs ~0.2 s before the composer ever sees the depth.
        if self.flow_level >= MAX_DEPTH:
            raise UnsafeYAML(
                f"nests deeper than {MAX_DEPTH} levels",
                self.get_mark(),
                "write the front matter as 'key: value' lines and simple lists",
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise UnsafeYAML(
                f"uses the YAML alias '*{_short(str(event.anchor))}'; aliases are not allowed in front matter",
                event.start_mark,
                "write each value out in full instead of using '&anchor' and '*alias'",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise UnsafeYAML(
                    f"nests deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,
                    "write the front matter as 'key: value' lines and simple lists",
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:  # int("9" * 5000), date(2001, 13, 45): YAML accepts, Python not
            raise ConstructorError(None, None, f"value cannot be read ({_short(str(exc))})", node.start_mark) from None


def load_limited(text: str) -> Any:
    """``text`` parsed as one YAML document within the module's bounds; ``yaml.YAMLError`` when it is not
    valid YAML or breaks a bound (``UnsafeYAML``, with a ``hint``)."""
    if len(text) > MAX_YAML_CHARS:
        raise UnsafeYAML(
            f"is {len(text):,} characters, more than the {MAX_YAML_CHARS:,} allowed",
            None,
            "keep the front matter to the requirement's fields; long text belongs in the Markdown body",
        )
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
