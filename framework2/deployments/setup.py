"""What ``framework2 init`` does, step by step; every step is safe to repeat."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from framework2.blocks import BLOCK_TYPES
from framework2.config import Settings
from framework2.deployments.automations import ensure_automations
from framework2.errors import Framework2Error
from framework2.store.engine import open_store, redact
from framework2.store.migrate import current_revision

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORK_POOL = "framework2-process"


def init_store(settings: Settings) -> str:
    engine = open_store(settings)
    return f"store ready at {redact(str(engine.url))} (schema {current_revision(engine)})"


def register_blocks() -> str:
    for block_type in BLOCK_TYPES:
        block_type.register_type_and_schema()
    return "registered block types: " + ", ".join(b.get_block_type_slug() for b in BLOCK_TYPES)


def ensure_work_pool(name: str = WORK_POOL) -> str:
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            return f"work pool {name!r} already exists"
    return f"created work pool {name!r}"


def deploy_all(project_dir: Path = PROJECT_DIR) -> str:
    """Deploy every entry of prefect.yaml with Prefect's own CLI (as an operator would)."""
    env = os.environ | {"FRAMEWORK2_PROJECT_DIR": str(project_dir)}
    prefect = Path(sys.executable).with_name("prefect")
    result = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all"],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise Framework2Error(f"prefect deploy failed:\n{tail}", hint="check prefect.yaml and the Prefect API URL")
    names = [d["name"] for d in yaml.safe_load((project_dir / "prefect.yaml").read_text())["deployments"]]
    return "deployed prefect.yaml: " + ", ".join(names)


def init_steps(settings: Settings) -> list[tuple[str, Callable[[], str | list[str]]]]:
    """The ordered set-up steps, each a (title, action) pair."""
    return [
        ("store", lambda: init_store(settings)),
        ("blocks", register_blocks),
        ("work pool", ensure_work_pool),
        ("deployments", deploy_all),
        ("automations", lambda: ensure_automations(settings)),
    ]
