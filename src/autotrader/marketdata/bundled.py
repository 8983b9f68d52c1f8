"""The real Binance candles shipped inside the package (see ``data/bundled/README.md``)."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import pyarrow.parquet as pq

from autotrader.domain.candles import Candles, SeriesKey
from autotrader.marketdata.store import CandleStore

log = logging.getLogger(__name__)


def bundled_dir() -> Path:
    """Folder holding the bundled Parquet files."""
    return Path(str(resources.files("autotrader") / "data" / "bundled"))


def bundled_files() -> dict[SeriesKey, Path]:
    """Bundled series keyed by ``SeriesKey``; file names are ``<exchange>_<SYMBOL>_<timeframe>.parquet``."""
    out: dict[SeriesKey, Path] = {}
    for path in sorted(bundled_dir().glob("*.parquet")):
        exchange, symbol, timeframe = path.stem.split("_")
        out[SeriesKey.of(exchange, symbol, timeframe)] = path
    return out


def read_parquet_candles(path: Path) -> Candles:
    """Read a Parquet file with columns ts (ms), open, high, low, close, volume."""
    table = pq.read_table(path, columns=["ts", "open", "high", "low", "close", "volume"])
    return Candles.from_columns({name: table.column(name).to_numpy() for name in table.column_names})


def seed(store: CandleStore) -> int:
    """Load every bundled series into ``store`` (idempotent upsert). Returns rows written."""
    rows = 0
    for key, path in bundled_files().items():
        rows += store.upsert(key, read_parquet_candles(path))
    log.info("loaded %d bundled candles into the store", rows)
    return rows


def seed_if_new(store: CandleStore) -> int:
    """Seed an empty store with the bundled candles; a store holding anything is left alone."""
    if store.keys():
        return 0
    return seed(store)
