"""Block types users edit in the Prefect UI: connection settings and credentials."""

from framework2.blocks.competitor_feed import CompetitorFeed
from framework2.blocks.kubernetes_cluster import KubernetesCluster
from framework2.blocks.project_sources import GitHubSource, JiraSource
from framework2.blocks.requirements_source import RequirementsSource
from framework2.blocks.store_database import StoreDatabase

# Registered by `framework2 init` so they appear in the UI's block catalogue.
BLOCK_TYPES = [CompetitorFeed, GitHubSource, JiraSource, KubernetesCluster, RequirementsSource, StoreDatabase]

__all__ = [
    "BLOCK_TYPES",
    "CompetitorFeed",
    "GitHubSource",
    "JiraSource",
    "KubernetesCluster",
    "RequirementsSource",
    "StoreDatabase",
]
