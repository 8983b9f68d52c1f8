"""Market-data store backends and the factory that picks one from the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autotrader.config import Settings
    from autotrader.marketdata.store import CandleStore


def open_store(settings: Settings) -> CandleStore:
    """Open the configured store (embedded Parquet by default, PostgreSQL with ``POSTGRES_DSN``).

    On first open of an empty store, the bundled real candles are loaded into it (see
    ``autotrader.marketdata.bundled``) unless ``storage.seed_bundled`` is false.
    """
    from autotrader.marketdata.bundled import seed_if_new

    if settings.storage.backend == "postgres":
        from autotrader.adapters.storage.postgres_store import PostgresCandleStore

        assert settings.storage.postgres_dsn is not None  # guaranteed by StorageSettings
        store: CandleStore = PostgresCandleStore(
            settings.storage.postgres_dsn.get_secret_value(), schema=settings.storage.postgres_schema
        )
    else:
        from autotrader.adapters.storage.parquet_store import ParquetCandleStore

        store = ParquetCandleStore(settings.data_dir)
    if settings.storage.seed_bundled:
        seed_if_new(store)
    return store
