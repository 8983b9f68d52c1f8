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
    """The main (2020-2024) file of each bundled series, keyed by ``SeriesKey``.

    File names are ``<exchange>_<SYMBOL>_<timeframe>.parquet``; the earlier history of a series, when
    bundled, is in ``<exchange>_<SYMBOL>_<timeframe>_<from>_<to>.parquet`` (see :func:`bundled_history`).
    """
    out: dict[SeriesKey, Path] = {}
    for path in sorted(bundled_dir().glob("*.parquet")):
        parts = path.stem.split("_")
        if len(parts) == 3:
            out[SeriesKey.of(*parts)] = path
    return out


def bundled_history() -> dict[SeriesKey, Path]:
    """Pre-2020 history files (``<exchange>_<SYMBOL>_<timeframe>_<from>_<to>.parquet``) by series."""
    out: dict[SeriesKey, Path] = {}
    for path in sorted(bundled_dir().glob("*_*_*_*_*.parquet")):
        exchange, symbol, timeframe = path.stem.split("_")[:3]
        out[SeriesKey.of(exchange, symbol, timeframe)] = path
    return out


def read_parquet_candles(path: Path) -> Candles:
    """Read a Parquet file with columns ts (ms), open, high, low, close, volume."""
    table = pq.read_table(path, columns=["ts", "open", "high", "low", "close", "volume"])
    return Candles.from_columns({name: table.column(name).to_numpy() for name in table.column_names})


def seed(store: CandleStore) -> int:
    """Load every bundled series into ``store`` (idempotent upsert). Returns rows written."""
    rows = 0
    for key, path in [*bundled_history().items(), *bundled_files().items()]:
        rows += store.upsert(key, read_parquet_candles(path))
    log.info("loaded %d bundled candles into the store", rows)
    return rows


def seed_if_new(store: CandleStore) -> int:
    """Seed an empty store with the bundled candles.

    A store holding anything is left alone, except that a bundled series it holds but whose stored
    history starts after the bundled pre-2020 file's first bar gets that file (stores seeded before
    the history was bundled). Returns rows written.
    """
    keys = store.keys()
    if not keys:
        return seed(store)
    rows = 0
    for key, path in bundled_history().items():
        if key not in keys:
            continue
        first_ts = int(pq.read_table(path, columns=["ts"]).column("ts")[0].as_py())
        coverage = store.coverage(key)
        if coverage and coverage[0].first_ts > first_ts:
            rows += store.upsert(key, read_parquet_candles(path))
    if rows:
        log.info("added %d bundled pre-2020 candles to the store", rows)
    return rows
