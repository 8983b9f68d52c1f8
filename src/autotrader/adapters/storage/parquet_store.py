"""Embedded candle store: one Parquet file per series, no server.

Layout: ``<root>/<exchange>/<SYMBOL>/<timeframe>.parquet`` with columns ``ts`` (int64, bar open
time in UTC ms), ``open``, ``high``, ``low``, ``close``, ``volume`` (float64), sorted by ``ts``
with no duplicates. Every write goes to a temporary file in the same folder which then replaces
the old file atomically, so a failed or interrupted write leaves the store as it was.

One writer per series at a time: two processes upserting the same series concurrently may lose
one of the updates (readers are always safe).
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from autotrader.domain.candles import COLUMNS, Candles, Coverage, SeriesKey, coverage_of
from autotrader.domain.errors import AutoTraderError, DataError, StorageError
from autotrader.files import atomic_output

log = logging.getLogger(__name__)

_SUFFIX = ".parquet"
_TMP_PREFIX = "."  # how atomic_output names its temporary files: listings skip them
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCHEMA = pa.schema(
    [pa.field("ts", pa.int64(), nullable=False)]
    + [pa.field(name, pa.float64(), nullable=False) for name in COLUMNS[1:]]
)
# zstd at its default level 3 writes a million rows in a fraction of a second; delta-encoding the
# timestamps makes them almost free. (Byte-stream-split floats were larger on real prices.)
_WRITE_OPTIONS: dict[str, object] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": False,
    "column_encoding": {"ts": "DELTA_BINARY_PACKED"},
    "write_statistics": ["ts"],
}


_NUMPY_OF = {pa.int64(): np.dtype(np.int64), pa.float64(): np.dtype(np.float64)}


def _to_numpy(table: pa.Table, name: str) -> np.ndarray:
    """A column as a (read-only, zero-copy where possible) numpy array.

    pyarrow's own ``to_numpy`` imports pandas on first use (~0.5 s in a fresh process); a
    null-free int64/float64 column is its data buffer, so read it directly.
    """
    column = table.column(name)
    dtype = _NUMPY_OF.get(column.type)
    if dtype is None or column.null_count:
        return column.to_numpy()
    parts = [
        np.frombuffer(ch.buffers()[1], dtype=dtype, count=len(ch), offset=ch.offset * dtype.itemsize)
        for ch in column.chunks
        if len(ch)
    ]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


def _sort_last_wins(candles: Candles) -> Candles:
    """Sort bars by ``ts``; of several bars with one ``ts`` keep the last one given."""
    ts = np.asarray(candles.ts, dtype=np.int64)
    if len(ts) < 2 or bool(np.all(ts[1:] > ts[:-1])):
        return candles
    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    keep = np.empty(len(order), dtype=bool)
    keep[:-1] = sorted_ts[1:] != sorted_ts[:-1]
    keep[-1] = True
    return candles.take(order[keep])


def _as_float64(candles: Candles) -> Candles:
    """The same bars with every column as a contiguous int64/float64 array."""
    return Candles.from_columns(candles.columns())


class ParquetCandleStore:
    """Candle store kept as Parquet files under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"ParquetCandleStore({str(self.root)!r})"

    def __enter__(self) -> ParquetCandleStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths ----------------------------------------------------------------------------------
    def path_of(self, key: SeriesKey) -> Path:
        """The Parquet file holding ``key``'s bars (it may not exist)."""
        for part in (key.exchange, key.symbol, key.timeframe):
            if not _SAFE_NAME.match(part):
                raise DataError(f"invalid name {part!r} in series {key}: use letters, digits, '.', '_' or '-'")
        return self.root / key.exchange / key.symbol / f"{key.timeframe}{_SUFFIX}"

    # -- CandleStore ----------------------------------------------------------------------------
    def upsert(self, key: SeriesKey, candles: Candles) -> int:
        """Insert or replace bars (same ``ts``: the new bar wins); all-or-nothing. Returns rows written."""
        new = _sort_last_wins(_as_float64(candles))
        if len(new) == 0:
            return 0
        path = self.path_of(key)
        old = self._read_file(path) if path.exists() else Candles.empty()
        self._write(path, self._merge(old, new))
        log.debug("upserted %d bars into %s", len(new), key)
        return len(new)

    def read(self, key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None) -> Candles:
        """Bars with ``start_ms <= ts <= end_ms``, sorted; empty ``Candles`` if none."""
        path = self.path_of(key)
        if not path.exists():
            return Candles.empty()
        return self._read_file(path, start_ms, end_ms)

    def keys(self) -> list[SeriesKey]:
        """Every stored series, from the folder listing (no file is opened)."""
        found: list[SeriesKey] = []
        if not self.root.is_dir():
            return found
        for exchange_dir in self.root.iterdir():
            if not exchange_dir.is_dir() or not _SAFE_NAME.match(exchange_dir.name):
                continue
            for symbol_dir in exchange_dir.iterdir():
                if not symbol_dir.is_dir() or not _SAFE_NAME.match(symbol_dir.name):
                    continue
                for file in symbol_dir.iterdir():
                    key = self._key_of(exchange_dir.name, symbol_dir.name, file)
                    if key is not None:
                        found.append(key)
        return sorted(found, key=lambda k: (k.exchange, k.symbol, k.tf.ms))

    def coverage(self, key: SeriesKey | None = None) -> list[Coverage]:
        """First/last bar, rows and gaps of one series (or of all); only the ``ts`` column is read."""
        out: list[Coverage] = []
        for k in self.keys() if key is None else [key]:
            path = self.path_of(k)
            if not path.exists():
                continue
            ts = _to_numpy(self._read_table(path, columns=["ts"]), "ts")
            cov = coverage_of(k, ts)
            if cov is not None:
                out.append(cov)
        return out

    def delete(self, key: SeriesKey, start_ms: int | None = None, end_ms: int | None = None) -> int:
        """Remove a series, or the bars with ``start_ms <= ts <= end_ms``. Returns rows removed."""
        path = self.path_of(key)
        if not path.exists():
            return 0
        if start_ms is None and end_ms is None:
            rows = self._row_count(path)
            self._unlink(path)
            return rows
        old = self._read_file(path)
        lo = 0 if start_ms is None else int(np.searchsorted(old.ts, start_ms, side="left"))
        hi = len(old) if end_ms is None else int(np.searchsorted(old.ts, end_ms, side="right"))
        removed = max(hi - lo, 0)
        if removed == 0:
            return 0
        if removed == len(old):
            self._unlink(path)
            return removed
        keep = np.r_[0:lo, hi : len(old)]
        self._write(path, old.take(keep))
        return removed

    def close(self) -> None:
        """Nothing to release: files are opened per call."""

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _key_of(exchange: str, symbol: str, file: Path) -> SeriesKey | None:
        name = file.name
        if not name.endswith(_SUFFIX) or name.startswith(_TMP_PREFIX) or not file.is_file():
            return None
        try:
            key = SeriesKey.of(exchange, symbol, name[: -len(_SUFFIX)])
        except AutoTraderError:
            return None  # a stray file that is not ours
        if (key.exchange, key.symbol, key.timeframe) != (exchange, symbol, name[: -len(_SUFFIX)]):
            return None
        return key

    @staticmethod
    def _merge(old: Candles, new: Candles) -> Candles:
        if len(old) == 0:
            return new
        if new.ts[0] > old.ts[-1]:  # the common case: appending newer bars
            return Candles(*(np.concatenate([getattr(old, c), getattr(new, c)]) for c in COLUMNS))
        both = Candles(*(np.concatenate([getattr(old, c), getattr(new, c)]) for c in COLUMNS))
        return _sort_last_wins(both)  # stable: for equal ts the new bar (later) is kept

    @staticmethod
    def _read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
        try:
            # ParquetFile, not read_table: read_table goes through pyarrow.dataset, whose import
            # (pandas included) cost more than the whole read of 1M bars in a fresh process
            with pq.ParquetFile(path, memory_map=True) as f:
                return f.read(columns=columns or list(COLUMNS))
        except FileNotFoundError:
            return _SCHEMA.empty_table() if columns is None else _SCHEMA.empty_table().select(columns)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot read candle file {path}: {e}") from e

    def _read_file(self, path: Path, start_ms: int | None = None, end_ms: int | None = None) -> Candles:
        table = self._read_table(path)
        ts = _to_numpy(table, "ts")
        lo = 0 if start_ms is None else int(np.searchsorted(ts, start_ms, side="left"))
        hi = len(ts) if end_ms is None else int(np.searchsorted(ts, end_ms, side="right"))
        if hi <= lo:
            return Candles.empty()
        # Copies: callers get writable arrays that do not pin the memory-mapped file.
        return Candles(
            np.array(ts[lo:hi], dtype=np.int64),
            *(np.array(_to_numpy(table, c)[lo:hi], dtype=np.float64) for c in COLUMNS[1:]),
        )

    @staticmethod
    def _row_count(path: Path) -> int:
        try:
            return int(pq.read_metadata(path).num_rows)
        except (OSError, pa.ArrowException) as e:
            raise StorageError(f"cannot read candle file {path}: {e}") from e

    @staticmethod
    def _write(path: Path, candles: Candles) -> None:
        """Write ``candles`` to a temporary file beside ``path``, then atomically replace ``path``."""
        table = pa.Table.from_arrays([pa.array(getattr(candles, c)) for c in COLUMNS], schema=_SCHEMA)
        new_dirs = [d for d in (path.parent.parent, path.parent) if not d.exists()]
        done = False
        try:
            with atomic_output(path, binary=True) as f:
                pq.write_table(table, f, **_WRITE_OPTIONS)
            done = True
        except OSError as e:
            raise StorageError(f"cannot write candle file {path}: {e.strerror or e}") from e
        finally:
            if not done:  # leave no trace: the writer dropped its temporary file; drop any folder made for it
                for folder in reversed(new_dirs):
                    with contextlib.suppress(OSError):
                        folder.rmdir()

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageError(f"cannot delete candle file {path}: {e.strerror or e}") from e
        for folder in (path.parent, path.parent.parent):  # drop emptied symbol/exchange folders
            if folder == self.root:
                break
            try:
                folder.rmdir()
            except OSError:
                break
