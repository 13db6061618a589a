"""The Kubernetes variant: k8s/worker/ and the work pool's Job (as the real worker renders it) are valid Kubernetes
objects, the worker's Role is exactly what it needs, and `framework2 init --pool kubernetes` moves the deployments
of prefect.yaml onto the framework2-kubernetes pool and back without a second set of deployments.

No cluster: manifests are checked against Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: an unknown
or misspelt field fails), and the Job is rendered by prefect-kubernetes' KubernetesWorkerJobConfiguration, the code
the worker in the cluster runs.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.objects import FlowRun
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from framework2.deployments.setup import (
    BASE_JOB_TEMPLATE,
    KUBERNETES_WORK_POOL,
    WORK_POOL,
    ensure_kubernetes_work_pool,
    ensure_work_pool,
    kubernetes_variant,
    load_base_job_template,
)
from framework2.errors import Framework2Error
from tests.test_cli import CLI, assert_clear_error, framework2

ROOT = Path(__file__).resolve().parents[1]
WORKER_DIR = ROOT / "k8s" / "worker"
PREFECT_YAML = yaml.safe_load((ROOT / "prefect.yaml").read_text())
KUBERNETES = PREFECT_YAML["definitions"]["work_pools"]["kubernetes"]
# The oldest Kubernetes release we claim (pod security labels, seccompProfile, Job TTL all GA) and the newest schema.
K8S_VERSIONS = ["1.29", kubernetes_validate.latest_version()]
# prefect-kubernetes checks every Job manifest against a base that has these two in the *pod* spec (they are Job
# fields); the worker refuses a template without them, and the API server drops them with a warning.
WORKER_REQUIRED_POD_EXTRAS = ("parallelism", "completions")
WIDE = {"COLUMNS": "200"}  # rich wraps the CLI's output at 80 columns without a terminal


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object under k8s/worker/, as (file:kind/name, object)."""
    found = []
    for path in sorted(WORKER_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            found.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return found


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def render_job(template: dict[str, Any], job_variables: dict[str, Any]) -> dict[str, Any]:
    """The Job manifest the Kubernetes worker would submit for a flow run of a deployment with these variables."""
    # A client that is never called (the template references no blocks or Prefect variables) keeps this offline.
    offline = PrefectClient(api="http://127.0.0.1:9/api")
    config = asyncio.run(
        KubernetesWorkerJobConfiguration.from_template_and_values(template, job_variables, client=offline)
    )
    config.prepare_for_flow_run(FlowRun(id=uuid.uuid4(), name="brave-fox", flow_id=uuid.uuid4()))
    return config.job_manifest


def strict_without_worker_extras(job: dict[str, Any], version: str) -> None:
    job = copy.deepcopy(job)
    for key in WORKER_REQUIRED_POD_EXTRAS:
        job["spec"]["template"]["spec"].pop(key)
    kubernetes_validate.validate(job, version, strict=True)


# (1) Valid against the Kubernetes schemas -------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name,manifest", manifests(), ids=[name for name, _ in manifests()])
def test_every_worker_manifest_is_a_valid_kubernetes_object(name: str, manifest: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(manifest, version, strict=True)


def test_kustomization_applies_every_manifest() -> None:
    kustomization = yaml.safe_load((WORKER_DIR / "kustomization.yaml").read_text())
    files = sorted(p.name for p in WORKER_DIR.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files


def test_a_misspelt_field_fails_the_schema_check() -> None:
    [deployment] = by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    pod["serviceAcountName"] = pod.pop("serviceAccountName")
    with pytest.raises(kubernetes_validate.ValidationError, match="serviceAcountName"):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_the_job_the_worker_renders_from_the_template_is_valid(version: str) -> None:
    job = render_job(load_base_job_template(), KUBERNETES["job_variables"])
    strict_without_worker_extras(job, version)
    # Stripped only because they are there: anything else unknown would have failed above.
    with pytest.raises(kubernetes_validate.ValidationError, match="parallelism|completions"):
        kubernetes_validate.validate(job, version, strict=True)


def test_the_worker_refuses_a_template_without_the_pod_spec_extras() -> None:
    template = load_base_job_template()
    for key in WORKER_REQUIRED_POD_EXTRAS:
        template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"].pop(key)
    with pytest.raises(ValueError, match="completions.*parallelism"):
        render_job(template, {})


def test_the_rendered_job_carries_the_job_variables_of_prefect_yaml() -> None:
    variables = KUBERNETES["job_variables"] | {"image": "registry.example.com/framework2:1.2.3"}
    job = render_job(load_base_job_template(), variables)
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert job["metadata"]["namespace"] == variables["namespace"]
    assert pod["serviceAccountName"] == variables["service_account_name"]
    assert container["image"] == "registry.example.com/framework2:1.2.3"
    assert container["resources"] == {
        "requests": {"cpu": variables["cpu_request"], "memory": variables["memory_request"]},
        "limits": {"cpu": variables["cpu_limit"], "memory": variables["memory_limit"]},
    }
    env = {item["name"]: item.get("value") for item in container["env"]}
    # prefect.yaml's env is merged over the template's, and the worker adds the flow run's own.
    assert env["FRAMEWORK2_PROJECT_DIR"] == "/opt/framework2"
    assert env["FRAMEWORK2_CONFIG"] == "/etc/framework2/framework2.toml"
    assert "PREFECT__FLOW_RUN_ID" in env
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["ttlSecondsAfterFinished"] > 0


def test_a_misspelt_field_in_the_template_fails_the_schema_check() -> None:
    template = load_base_job_template()
    [container] = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"]
    container["imagePulPolicy"] = container.pop("imagePullPolicy")
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePulPolicy"):
        strict_without_worker_extras(render_job(template, KUBERNETES["job_variables"]), K8S_VERSIONS[-1])


def test_prefect_yaml_job_variables_fit_the_template_schema() -> None:
    """What Prefect's server checks when it saves a deployment: a typo in a quantity fails `framework2 init`."""
    schema = load_base_job_template()["variables"]
    jsonschema.validate(KUBERNETES["job_variables"], schema)
    assert set(KUBERNETES["job_variables"]) <= set(schema["properties"])
    with pytest.raises(jsonschema.ValidationError, match="4GB"):
        jsonschema.validate(KUBERNETES["job_variables"] | {"memory_limit": "4GB"}, schema)


# (2) Least privilege, and the pieces agree -----------------------------------------------------------------------


def test_the_worker_role_grants_exactly_what_the_worker_needs() -> None:
    [role] = by_kind("Role")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        # one Job per flow run; the observer follows them; cancelling a run deletes its Job
        *{("batch", "jobs", verb) for verb in ("create", "get", "list", "watch", "delete")},
        # the observer reports pod phases and finds a Job's pods; a crashed pod's last lines go to the run's log
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods/log", "get"),
        # kopf (the observer) reports as Kubernetes events
        ("", "events", "create"),
    }
    assert not by_kind("ClusterRole") and not by_kind("ClusterRoleBinding"), "namespace-scoped only"
    assert all("resourceNames" not in rule and "*" not in rule["verbs"] for rule in role["rules"])


def test_worker_binding_pool_namespace_and_service_accounts_agree() -> None:
    [role], [binding], [deployment] = by_kind("Role"), by_kind("RoleBinding"), by_kind("Deployment")
    namespace = role["metadata"]["namespace"]
    accounts = {sa["metadata"]["name"] for sa in by_kind("ServiceAccount")}
    pod = deployment["spec"]["template"]["spec"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    subject = {"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": namespace}
    assert binding["subjects"] == [subject]
    assert {doc["metadata"].get("namespace", namespace) for _, doc in manifests()} == {namespace}
    [worker] = pod["containers"]
    args = worker["args"]
    assert args[:3] == ["prefect", "worker", "start"] and "--with-healthcheck" in args
    assert args[args.index("--pool") + 1] == KUBERNETES_WORK_POOL == KUBERNETES["name"]
    assert args[args.index("--type") + 1] == "kubernetes"
    # The observer watches the worker's own namespace only: all the Role allows.
    observer = next(e for e in worker["env"] if e["name"] == "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES")
    assert observer["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    [config] = [d for d in by_kind("ConfigMap") if d["metadata"]["name"] == "framework2-worker"]
    assert "PREFECT_API_URL" in config["data"]
    assert {"configMapRef": {"name": "framework2-worker"}} in worker["envFrom"]
    assert pod["securityContext"]["runAsNonRoot"] and worker["securityContext"]["readOnlyRootFilesystem"]
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    # Flow runs go where the Role reaches, as an account that exists.
    template = load_base_job_template()["variables"]["properties"]
    for variables in (KUBERNETES["job_variables"], {k: v.get("default") for k, v in template.items()}):
        assert variables["namespace"] == namespace
        assert variables["service_account_name"] in accounts - {pod["serviceAccountName"]}


# The variant itself, offline -------------------------------------------------------------------------------------


def dockerfile_instructions() -> dict[str, list[str]]:
    """Each Dockerfile instruction (upper case) with its arguments, continuation lines joined."""
    joined = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            found.setdefault(word.upper(), []).append(" ".join(rest.split()))
    return found


def test_the_image_matches_what_the_job_template_and_the_worker_expect() -> None:
    # No Docker engine here to build it: check that the Dockerfile agrees with the manifests that run it.
    docker = dockerfile_instructions()
    template = json.loads(BASE_JOB_TEMPLATE.read_text())
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    [worker] = by_kind("Deployment")
    assert docker["WORKDIR"] == [KUBERNETES["job_variables"]["env"]["FRAMEWORK2_PROJECT_DIR"]] == ["/opt/framework2"]
    uid = str(pod["securityContext"]["runAsUser"])
    assert docker["USER"] == [uid] and str(worker["spec"]["template"]["spec"]["securityContext"]["runAsUser"]) == uid
    assert any("useradd --uid " + uid in run for run in docker["RUN"])
    installs = " ".join(docker["RUN"])
    assert "pip install '.[kubernetes]'" in installs and "scripts/ensure-chromium.sh" in installs
    assert "chromium" in installs  # Debian's browser for the accessibility scans, never a download
    assert worker["spec"]["template"]["spec"]["containers"][0]["args"][:5] == json.loads(docker["CMD"][0])[:5]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".framework2"} <= set(ignored)  # no local state or secrets in the image


def test_kubernetes_variant_moves_every_process_deployment_and_keeps_the_rest() -> None:
    variant = kubernetes_variant(PREFECT_YAML, image="registry.example.com/framework2:1.2.3")
    assert [d["name"] for d in variant["deployments"]] == [d["name"] for d in PREFECT_YAML["deployments"]]
    for original, moved in zip(PREFECT_YAML["deployments"], variant["deployments"], strict=True):
        assert original["work_pool"]["name"] == WORK_POOL, "prefect.yaml itself stays on the process pool"
        assert moved["work_pool"]["name"] == KUBERNETES_WORK_POOL
        assert moved["work_pool"]["job_variables"] == KUBERNETES["job_variables"] | {
            "image": "registry.example.com/framework2:1.2.3"
        }
        assert {k: v for k, v in moved.items() if k != "work_pool"} == {
            k: v for k, v in original.items() if k != "work_pool"
        }
    assert variant["pull"] == PREFECT_YAML["pull"]
    assert "&id" not in yaml.safe_dump(variant), "each deployment gets its own copy: no YAML aliases"


def test_kubernetes_variant_needs_both_pool_definitions() -> None:
    broken = copy.deepcopy(PREFECT_YAML)
    del broken["definitions"]["work_pools"]["kubernetes"]
    with pytest.raises(Framework2Error, match="definitions.work_pools"):
        kubernetes_variant(broken)


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "does not exist"),
        ('{"job_configuration": {', "is not valid JSON"),
        ("[]", "needs a `job_configuration` object and a `variables` object"),
        ('{"job_configuration": {"job_manifest": {"kind": "Pod"}}, "variables": {}}', "must be a Kubernetes Job"),
        (
            '{"job_configuration": {"image": "{{ imag }}", "job_manifest": {"kind": "Job"}}, '
            '"variables": {"properties": {"image": {"type": "string"}}}}',
            "undeclared variable(s) imag",
        ),
        (
            '{"job_configuration": {"job_manifest": {"kind": "Job"}}, '
            '"variables": {"properties": {"cpu_limit": {"type": "string", "default": 2}}}}',
            "default of variable 'cpu_limit' is invalid",
        ),
        ('{"job_configuration": {"job_manifest": {"kind": "Job"}}, "variables": {"type": 7}}', "not a valid JSON"),
    ],
)
def test_a_bad_template_file_is_one_clear_error(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "template.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(Framework2Error, match=expected.replace("(", r"\(").replace(")", r"\)")) as raised:
        load_base_job_template(path)
    assert str(path) in raised.value.message and "--base-job-template" in raised.value.hint


def test_init_with_a_bad_template_stops_before_changing_anything(tmp_path: Path) -> None:
    bad = tmp_path / "template.json"
    bad.write_text('{"job_configuration": {')
    env = {"FRAMEWORK2_STORE__URL": f"sqlite:///{tmp_path / 's.db'}"}
    result = framework2("init", "--pool", "kubernetes", "--base-job-template", str(bad), env=env, cwd=tmp_path)
    assert_clear_error(result, "is not valid JSON", "template.json")
    assert not (tmp_path / "s.db").exists(), "the store was not touched"
    assert_clear_error(framework2("init", "--pool", "nope", env=env, cwd=tmp_path), "unknown work pool kind 'nope'")
    assert_clear_error(framework2("init", "--image", "x:1", env=env, cwd=tmp_path), "--image", "--pool kubernetes")


# (3) Against the real Prefect server -----------------------------------------------------------------------------


def deployments_by_name() -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with get_client() as client:
            return {d.name: d for d in await client.read_deployments()}

    return asyncio.run(read())


def read_pool(name: str) -> Any:
    async def read() -> Any:
        async with get_client() as client:
            return await client.read_work_pool(name)

    return asyncio.run(read())


@pytest.mark.integration
def test_init_moves_the_deployments_to_the_kubernetes_pool_and_back(prefect_server: str, store_url: str) -> None:
    names = {d["name"] for d in PREFECT_YAML["deployments"]}
    first = framework2("init", env=WIDE)
    assert first.returncode == 0, first.stdout + first.stderr
    before = deployments_by_name()
    assert {before[name].work_pool_name for name in names} == {WORK_POOL}

    image = "registry.example.com/framework2:1.2.3"
    moved = framework2("init", "--pool", "kubernetes", "--image", image, env=WIDE)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"into work pool {KUBERNETES_WORK_POOL!r}" in moved.stdout and "kubectl apply -k k8s/worker/" in moved.stdout
    pool = read_pool(KUBERNETES_WORK_POOL)
    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(BASE_JOB_TEMPLATE.read_text())
    after = deployments_by_name()
    for name in names:
        deployment = after[name]
        # The same deployment (id, schedules, triggers' automations, PSO's run_deployment name), on the other pool.
        assert deployment.id == before[name].id
        assert deployment.work_pool_name == KUBERNETES_WORK_POOL
        assert deployment.job_variables == KUBERNETES["job_variables"] | {"image": image}
        assert [s.schedule for s in deployment.schedules] == [s.schedule for s in before[name].schedules]
        # The pods run the flows from the image's copy of the checkout, not from this machine's.
        code_dir = KUBERNETES["job_variables"]["env"]["FRAMEWORK2_PROJECT_DIR"]
        assert deployment.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": code_dir}}]
        assert before[name].pull_steps[0]["prefect.deployments.steps.set_working_directory"] == {"directory": str(ROOT)}
    assert pool.base_job_template["variables"]["properties"]["image"]["default"] != image
    waiting = started_run_waits_on(["run", "ppos", "--deployment"])
    assert f"waiting for a worker on pool {KUBERNETES_WORK_POOL!r}" in waiting and "kubectl apply -k" in waiting

    again = framework2("init", "--pool", "kubernetes", "--image", image, env=WIDE)  # idempotent
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already exists with this base job template" in again.stdout
    assert {name: d.id for name, d in deployments_by_name().items()} == {name: d.id for name, d in after.items()}

    back = framework2("init", env=WIDE)  # the process variant, exactly as before
    assert back.returncode == 0, back.stdout + back.stderr
    restored = deployments_by_name()
    for name in names:
        assert restored[name].id == before[name].id
        assert restored[name].work_pool_name == WORK_POOL
        assert restored[name].job_variables == before[name].job_variables == {}
        assert restored[name].pull_steps == before[name].pull_steps
    assert read_pool(KUBERNETES_WORK_POOL).type == "kubernetes", "the kubernetes pool stays, empty, for next time"


def started_run_waits_on(args: list[str]) -> str:
    """What ``framework2 <args>`` prints up to the line saying which pool's worker it waits for; then stopped."""
    proc = subprocess.Popen(
        [CLI, *args], env=os.environ | WIDE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    seen = ""
    guard = threading.Timer(120, proc.kill)  # a CLI that never gets there ends the read loop, not the test run
    guard.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen += line
            if "waiting for a worker" in line:
                break
    finally:
        guard.cancel()
        proc.kill()
        proc.wait(timeout=30)
    return seen


@pytest.mark.integration
def test_an_existing_pool_gets_the_current_template(prefect_server: str) -> None:
    template = load_base_job_template()
    first = ensure_kubernetes_work_pool(template, name="f2-test-template-update")
    assert first.startswith("created")
    changed = copy.deepcopy(template)
    changed["variables"]["properties"]["memory_limit"]["default"] = "8Gi"
    assert "updated its base job template" in ensure_kubernetes_work_pool(changed, name="f2-test-template-update")
    assert read_pool("f2-test-template-update").base_job_template == changed
    assert "already exists with this base job template" in ensure_kubernetes_work_pool(
        changed, name="f2-test-template-update"
    )
    ensure_work_pool()
    with pytest.raises(Framework2Error, match="type 'process', not 'kubernetes'"):
        ensure_kubernetes_work_pool(template, name=WORK_POOL)
