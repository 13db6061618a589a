"""What ``framework2 init`` does, step by step; every step is safe to repeat."""

from __future__ import annotations

import copy
import functools
import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists
from prefect.utilities.templating import find_placeholders

from framework2.blocks import BLOCK_TYPES
from framework2.config import Settings
from framework2.deployments.automations import ensure_automations
from framework2.errors import Framework2Error
from framework2.store.engine import open_store, redact
from framework2.store.migrate import current_revision

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORK_POOL = "framework2-process"
KUBERNETES_WORK_POOL = "framework2-kubernetes"
BASE_JOB_TEMPLATE = PROJECT_DIR / "k8s" / "worker" / "base-job-template.json"
POOLS = ("process", "kubernetes")


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


def load_base_job_template(path: Path = BASE_JOB_TEMPLATE) -> dict[str, Any]:
    """The Kubernetes work pool's base job template from ``path``, checked the way Prefect's server checks it."""
    hint = f"fix {path} (k8s/worker/base-job-template.json is the reference) or pass another with --base-job-template"

    def bad(problem: str) -> Framework2Error:
        return Framework2Error(f"base job template {path}: {problem}", hint=hint)

    try:
        template = json.loads(path.read_text())
    except FileNotFoundError:
        raise bad("does not exist") from None
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise bad("is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise bad(f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not (
        isinstance(template, dict)
        and isinstance(template.get("job_configuration"), dict)
        and isinstance(template.get("variables"), dict)
    ):
        raise bad("needs a `job_configuration` object and a `variables` object")
    manifest = template["job_configuration"].get("job_manifest")
    if not isinstance(manifest, dict) or manifest.get("kind") != "Job":
        raise bad("job_configuration.job_manifest must be a Kubernetes Job manifest")
    variables = template["variables"]
    try:
        validator = jsonschema.validators.validator_for(variables)
        validator.check_schema(variables)
    except jsonschema.SchemaError as exc:
        raise bad(f"`variables` is not a valid JSON schema: {exc.message}") from None
    properties = variables.get("properties") or {}
    used = {placeholder.name for placeholder in find_placeholders(json.dumps(template["job_configuration"]))}
    if undeclared := sorted(used - set(properties)):
        raise bad("job_configuration uses undeclared variable(s) " + ", ".join(undeclared))
    # Prefect's server refuses a pool whose defaults break their own schema; say which one here.
    defaults = {name: schema["default"] for name, schema in properties.items() if "default" in schema}
    if error := jsonschema.exceptions.best_match(validator({**variables, "required": []}).iter_errors(defaults)):
        raise bad(f"the default of variable {'.'.join(map(str, error.absolute_path))!r} is invalid: {error.message}")
    return template


def ensure_kubernetes_work_pool(template: dict[str, Any], name: str = KUBERNETES_WORK_POOL) -> str:
    """Create the Kubernetes work pool with ``template``, or bring an existing one's template up to date."""
    with get_client(sync_client=True) as client:
        try:
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="kubernetes", base_job_template=template))
            except ObjectAlreadyExists:
                pool = client.read_work_pool(name)
                if pool.type != "kubernetes":
                    raise Framework2Error(
                        f"work pool {name!r} exists with type {pool.type!r}, not 'kubernetes'",
                        hint=f"delete it (`prefect work-pool delete {name}`), then `framework2 init --pool kubernetes`",
                    ) from None
                if pool.base_job_template == template:
                    return f"work pool {name!r} already exists with this base job template"
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
                return f"work pool {name!r} already exists; updated its base job template"
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 422:  # only a refused template is the user's to fix
                raise
            try:
                detail = exc.response.json().get("detail", exc.response.text)
            except ValueError:
                detail = exc.response.text
            raise Framework2Error(
                f"Prefect refused the base job template: {detail}",
                hint="fix k8s/worker/base-job-template.json (or the file given with --base-job-template)",
            ) from None
    return f"created work pool {name!r} (type kubernetes) with the base job template"


def kubernetes_variant(config: dict[str, Any], image: str | None = None) -> dict[str, Any]:
    """prefect.yaml with every deployment on the process pool moved onto ``definitions.work_pools.kubernetes``.

    The names stay the same, so deploying the variant updates the existing deployments in place (one set of
    deployments, on one pool at a time) rather than adding a second set that would run every schedule twice.
    """
    pools = (config.get("definitions") or {}).get("work_pools") or {}
    process, kubernetes = pools.get("process"), pools.get("kubernetes")
    if not (isinstance(process, dict) and isinstance(kubernetes, dict) and kubernetes.get("name")):
        raise Framework2Error(
            "prefect.yaml has no definitions.work_pools.process and .kubernetes",
            hint="restore them from the repository's prefect.yaml",
        )
    variant = copy.deepcopy(config)
    for deployment in variant.get("deployments") or []:
        if (deployment.get("work_pool") or {}).get("name") == process.get("name"):
            work_pool = copy.deepcopy(kubernetes)  # one copy each: no YAML aliases in the generated file
            if image:
                work_pool.setdefault("job_variables", {})["image"] = image
            deployment["work_pool"] = work_pool
    return variant


def deploy_all(project_dir: Path = PROJECT_DIR, pool: str = "process", image: str | None = None) -> str:
    """Deploy every entry of prefect.yaml with Prefect's own CLI (as an operator would).

    ``pool="kubernetes"`` deploys :func:`kubernetes_variant` of it, generated into a temporary file: Prefect's
    ``deploy --all`` ignores ``--pool`` and ``--job-variable``, and prefect.yaml stays the only source.
    """
    prefect_file = project_dir / "prefect.yaml"
    config = yaml.safe_load(prefect_file.read_text())
    names = [d["name"] for d in config["deployments"]]
    if pool == "process":
        _prefect_deploy(project_dir, prefect_file, code_dir=str(project_dir))
        return "deployed prefect.yaml: " + ", ".join(names)
    variant = kubernetes_variant(config, image)
    kubernetes = variant["definitions"]["work_pools"]["kubernetes"]
    # The pull step's directory is resolved now: on this pool, where the image has the checkout.
    code_dir = ((kubernetes.get("job_variables") or {}).get("env") or {}).get("FRAMEWORK2_PROJECT_DIR")
    if not code_dir:
        raise Framework2Error(
            "prefect.yaml's definitions.work_pools.kubernetes.job_variables.env has no FRAMEWORK2_PROJECT_DIR",
            hint="set it to where the image has this checkout, e.g. /opt/framework2",
        )
    with tempfile.TemporaryDirectory(prefix="framework2-deploy-") as tmp:
        generated = Path(tmp) / "prefect.kubernetes.yaml"
        generated.write_text(yaml.safe_dump(variant, sort_keys=False, width=1000))
        _prefect_deploy(project_dir, generated, code_dir=code_dir)
    return f"deployed prefect.yaml into work pool {kubernetes['name']!r}: " + ", ".join(names)


def _prefect_deploy(project_dir: Path, prefect_file: Path, code_dir: str) -> None:
    # `prefect deploy` resolves {{ $FRAMEWORK2_PROJECT_DIR }} in the pull step into each deployment.
    env = os.environ | {"FRAMEWORK2_PROJECT_DIR": code_dir}
    prefect = Path(sys.executable).with_name("prefect")
    command = [str(prefect), "--no-prompt", "deploy", "--all"]
    if prefect_file != project_dir / "prefect.yaml":
        command += ["--prefect-file", str(prefect_file)]
    result = subprocess.run(command, cwd=project_dir, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise Framework2Error(f"prefect deploy failed:\n{tail}", hint="check prefect.yaml and the Prefect API URL")


def ensure_webhook_secret(settings: Settings) -> str:
    """Create the webhook service's shared-secret block with a random secret, unless it exists."""
    from prefect.blocks.system import Secret

    name = settings.webhooks.secret_block
    try:
        Secret.load(name)
    except ValueError:  # Prefect's "unable to find block document"
        Secret(value=secrets.token_hex(32)).save(name)
        return f"created Secret block {name!r} with a random secret; senders get it from `framework2 webhook-secret`"
    return f"Secret block {name!r} already exists (kept)"


def init_steps(
    settings: Settings,
    pool: str = "process",
    image: str | None = None,
    base_job_template: Path | None = None,
) -> list[tuple[str, Callable[[], str | list[str]]]]:
    """The ordered set-up steps, each a (title, action) pair, for the process or the Kubernetes work pool."""
    if pool not in POOLS:
        raise Framework2Error(f"unknown work pool kind {pool!r}", hint="use --pool process or --pool kubernetes")
    if pool == "process":
        for option, value in (("--image", image), ("--base-job-template", base_job_template)):
            if value is not None:
                raise Framework2Error(f"{option} is for the Kubernetes work pool only", hint="add --pool kubernetes")
        work_pool: Callable[[], str] = ensure_work_pool
    else:
        # A bad template file stops init here, before any step has changed anything.
        template = load_base_job_template(base_job_template or BASE_JOB_TEMPLATE)
        work_pool = functools.partial(ensure_kubernetes_work_pool, template)
    return [
        ("store", lambda: init_store(settings)),
        ("blocks", register_blocks),
        ("work pool", work_pool),
        ("deployments", lambda: deploy_all(pool=pool, image=image)),
        ("automations", lambda: ensure_automations(settings)),
        ("webhook secret", lambda: ensure_webhook_secret(settings)),
    ]
