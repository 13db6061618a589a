"""The HTTP service `framework2 api` serves: webhook intake and its outbox relay, the dashboard, health and metrics."""
