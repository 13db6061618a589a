"""A block holding how PLOS reaches a Kubernetes API server: address, bearer token (secret), CA."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator


class KubernetesCluster(Block):
    """A Kubernetes cluster PLOS releases into, reached with the official client."""

    _block_type_name = "Kubernetes Cluster"
    _block_type_slug = "kubernetes-cluster"
    _description = "API server address and credentials of a cluster PLOS deploys to (token kept secret)."

    api_server: str = Field(..., description="API server URL, e.g. https://k8s.example.com:6443.")
    token: SecretStr | None = Field(None, description="Bearer token of the PLOS service account.")
    ca_cert_pem: str | None = Field(None, description="PEM of the cluster CA; empty uses the system's CAs.")
    verify_tls: bool = Field(True, description="Turn off only for a local test cluster.")
    request_timeout_seconds: float = Field(10.0, gt=0, description="Timeout of each API request.")

    @field_validator("api_server")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"api_server must start with https:// (or http:// for a local test), got {value!r}")
        return value.rstrip("/")

    def api_client(self):  # type: ignore[no-untyped-def]
        """A ``kubernetes.client.ApiClient`` for this cluster (the caller closes it)."""
        import tempfile

        from kubernetes import client

        config = client.Configuration()
        config.host = self.api_server
        config.verify_ssl = self.verify_tls
        if self.token is not None:
            config.api_key = {"authorization": self.token.get_secret_value()}
            config.api_key_prefix = {"authorization": "Bearer"}
        if self.ca_cert_pem:
            with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as handle:
                handle.write(self.ca_cert_pem)
            config.ssl_ca_cert = handle.name
        return client.ApiClient(config)
