"""PPOS: project operations across the portfolio (dependencies, health, slip risk, allocation)."""
