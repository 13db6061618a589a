"""PUXT accessibility compliance monitoring: axe-core scans, comparisons between scans, and the report."""
