"""Deployment-side code: automations as code and the idempotent set-up that ``framework2 init`` runs."""
