"""PLOS without a cluster: an honest plan (steps, manifests, prediction) and a plain statement that nothing ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes.client import ApiClient
from prefect.artifacts import Artifact

import framework2
from framework2.tasks.launch.cluster import COLOUR_LABEL
from framework2.tasks.launch.plan import release_plan
from framework2.tasks.launch.release import ReleaseRequest, revision_of
from tests.test_cli import framework2 as run_cli

MODELS = {"Deployment": "V1Deployment", "Service": "V1Service", "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler"}


def test_plan_manifests_are_valid_kubernetes_objects_for_the_idle_colour() -> None:
    plan = release_plan(ReleaseRequest(app="web", namespace="shop", image="registry.example.com/web:1.4.2"), "blue")
    assert plan.new_colour == "green"
    kinds = [m["kind"] for m in plan.manifests]
    assert kinds == ["Deployment", "Service", "Service", "HorizontalPodAutoscaler"]
    for manifest in plan.manifests:  # the client's models reject unknown or mistyped fields
        ApiClient().deserialize(json.dumps(manifest), MODELS[manifest["kind"]], "application/json")
    deployment = plan.manifests[0]
    assert deployment["metadata"]["name"] == "web-green"
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web", COLOUR_LABEL: "green"}
    assert deployment["spec"]["template"]["metadata"]["labels"]["framework2.io/revision"] == "1.4.2"
    hpa = plan.manifests[-1]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert any("scale blue to 0" in step for step in plan.steps)


@pytest.mark.parametrize(
    ("image", "revision"),
    [("web:1.4.2", "1.4.2"), ("registry:5000/team/web", "latest"), ("web@sha256:0123456789abcdef0000", "0123456789ab")],
)
def test_revision_comes_from_the_image_tag_or_digest(image: str, revision: str) -> None:
    assert revision_of(image) == revision


def test_programmatic_plan_api_needs_no_server() -> None:
    plan = framework2.plos.generate_deployment_plan("web", "registry.example.com/web:2.0.0", namespace="shop")
    assert plan["new_colour"] == "blue" and plan["manifests"][0]["kind"] == "Deployment"


def _forget_cluster_block() -> None:
    from prefect.client.orchestration import get_client

    from framework2.blocks.kubernetes_cluster import KubernetesCluster

    try:
        block = KubernetesCluster.load("plos")
    except ValueError:
        return
    with get_client(sync_client=True) as client:
        client.delete_block_document(block._block_document_id)


@pytest.mark.integration
def test_run_plos_without_a_cluster_renders_the_plan_and_says_so(
    prefect_server: str, store_url: str, tmp_path: Path
) -> None:
    _forget_cluster_block()  # other tests in the session save one
    result = run_cli("run", "plos", env={"COLUMNS": "200"}, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "No cluster configured" in out and "nothing was released" in out
    assert "Predicted launch success 80%" in out  # no history yet: the Beta(8,2) prior, said so
    plan = Artifact.get("plos-plan-web")
    assert plan is not None and "kind: Deployment" in plan.data and "prior" in plan.data
