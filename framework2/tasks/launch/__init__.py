"""PLOS launch operations: cluster preflight, release analysis and the statistical judge, as plain functions."""
