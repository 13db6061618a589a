"""Prefect flows, one module per system plus the PSO orchestrator. Flow names carry the system code."""
