"""The robot's state store (SQLite in WAL mode by default, PostgreSQL with ``POSTGRES_DSN`` or a URL).

    store = open_state_store(state_url(settings.home, url))   # migrated to the newest schema

Migrations are Alembic scripts in ``migrations/``, applied programmatically when a store opens.
"""

from autotrader.adapters.state.store import SqlStateStore, StoreTimeouts, migrate, open_state_store, state_url

__all__ = ["SqlStateStore", "StoreTimeouts", "migrate", "open_state_store", "state_url"]
