"""PCES: context evolution — requirements, their versions and diffs, change impact, stakeholders."""
