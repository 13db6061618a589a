"""A block holding the store's database URL as a secret, for URLs that carry a password."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class StoreDatabase(Block):
    """Where Framework Set 2 keeps its shared store (PostgreSQL in production)."""

    _block_type_name = "Store Database"
    _block_type_slug = "store-database"
    _description = "SQLAlchemy URL of the Framework Set 2 store, e.g. postgresql+psycopg://user:pass@host/db."

    url: SecretStr = Field(..., description="Database URL; kept secret because it may contain a password.")
