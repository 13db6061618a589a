"""The shipped manifests: valid for the Kubernetes API models, and RBAC exactly as wide as PLOS needs."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.client import ApiClient

from framework2.tasks.launch.cluster import COLOUR_LABEL, REQUIRED_PERMISSIONS

K8S = Path(__file__).resolve().parents[1] / "k8s"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def as_model(document: dict, model: type) -> object:
    """Deserialise with the official client's models (unknown or mistyped fields fail here)."""

    return ApiClient().deserialize(json.dumps(document), model.__name__, "application/json")


def test_rbac_grants_exactly_what_preflight_checks() -> None:
    [_account, role, binding] = documents("plos-rbac.yaml")
    parsed = as_model(role, client.V1Role)
    granted = {
        (verb, group, resource)
        for rule in parsed.rules
        for group in rule.api_groups
        for resource in rule.resources
        for verb in rule.verbs
    }
    assert granted == set(REQUIRED_PERMISSIONS)
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_example_services_select_a_colour() -> None:
    for document in documents("example-app.yaml"):
        service = as_model(document, client.V1Service)
        assert service.spec.selector[COLOUR_LABEL] == "blue"
