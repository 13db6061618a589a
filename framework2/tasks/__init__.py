"""Prefect tasks and the plain functions they call, one module per domain."""
