"""Reading the experiments file: a YAML or TOML list of experiments, each validated as an ``ExperimentSpec``.

    experiments:
      - key: checkout-button
        variations: [control, green]
        expected_split: [0.5, 0.5]
        metrics:
          - {name: conversion, kind: binomial, event: purchase}
          - {name: revenue, kind: mean, event: purchase, guardrail: true, guardrail_tolerance: 0.02}

A file with one bad experiment is refused as a whole, naming the experiment and the field: analysing the
others while a team's experiment silently disappears from the report would be worse than a clear stop.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from framework2.errors import DataError
from framework2.tasks.experiments.model import ExperimentSpec


def parse_experiments(data: Any, *, source: str = "experiments") -> list[ExperimentSpec]:
    """Validate a parsed ``{experiments: [...]}`` document (or a bare list)."""
    items = data.get("experiments") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DataError(
            f"{source}: expected a list of experiments under 'experiments'",
            "write `experiments:` followed by one entry per experiment (key, variations, metrics)",
        )
    specs, keys = [], set()
    for i, item in enumerate(items):
        label = item.get("key", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
        try:
            spec = ExperimentSpec.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'experiment'}: {e['msg']}" for e in exc.errors()
            )
            raise DataError(
                f"{source}: experiment {label} is invalid: {problems}", "fix that entry; nothing was analysed"
            ) from None
        if spec.key in keys:
            raise DataError(f"{source}: experiment key {spec.key!r} appears twice", "give every experiment its own key")
        keys.add(spec.key)
        specs.append(spec)
    return specs


def load_experiments(path: Path) -> list[ExperimentSpec]:
    """Read and validate an experiments file (``.yaml``/``.yml`` or ``.toml``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"experiments file {path} does not exist", "set [puxt] experimentsFile to an existing file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() in {".yaml", ".yml"}:
            data = yaml.safe_load(text)
        else:
            raise DataError(f"experiments file {path} is neither YAML nor TOML", "use a .yaml, .yml or .toml file")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"experiments file {path} cannot be parsed: {exc}", "fix the syntax at that position") from None
    return parse_experiments(data, source=str(path))
