"""The shared store: SQLModel tables, engine and sessions, migrations, and helpers to record runs."""
