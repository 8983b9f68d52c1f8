"""Read candle files (CSV, Parquet, freqtrade JSON and feather) into ``Candles`` and check them.

Formats, chosen by the file extension:

* ``.csv`` / ``.csv.gz``: a header row naming the columns (case-insensitive; aliases below), comma,
  semicolon or tab separated. A file whose first line holds no column name and whose 2nd to 6th
  fields are numbers is read as header-less ``ts, open, high, low, close, volume, ...`` (the
  layout of Binance's data.binance.vision dumps). Blank lines are skipped but counted for the line
  numbers in messages.
* ``.parquet`` / ``.pq`` and ``.feather``: any column names from the alias table (freqtrade feather
  files have ``date, open, high, low, close, volume``); a time index is used as a column.
* ``.json`` / ``.json.gz``: freqtrade's list of ``[ts, open, high, low, close, volume]`` rows
  (extra trailing items are ignored, values may be strings), or a list of objects with named keys.

Column aliases: time ``ts, timestamp, open_time, time, datetime, date`` (first present wins);
``open/o``, ``high/h``, ``low/l``, ``close/c``, ``volume/vol/v``. Other columns are ignored.

Timestamps become bar open times in UTC epoch milliseconds. Numbers are read by magnitude (the
median of the column): below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
otherwise nanoseconds; sub-millisecond parts are rounded. Strings that are not numbers are ISO-8601
(``2024-01-01``, ``2024-01-01T04:00``, ``2024-01-01 04:00:00+02:00``); without a zone they are
UTC. Native date-time columns are converted to UTC, naive ones taken as UTC.

Every problem is a ``DataError`` with one line: ``<file>: row <n> (line <m>): <problem>``, where
``row`` is the 1-based data row and ``line`` the line in a CSV file (the header is line 1; the
line part is left out for other formats). Nothing here writes anywhere.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from autotrader.domain.candles import COLUMNS, Candles
from autotrader.domain.errors import DataError
from autotrader.domain.timeframe import Timeframe
from autotrader.marketdata.verify import Finding, verify_candles

_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "open_time", "time", "datetime", "date"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
}
_KNOWN_NAMES = frozenset(name for names in _ALIASES.values() for name in names)
_MISSING_TEXT = frozenset({"", "nan", "null", "none", "nat"})
_MAX_ABS_MS = 10**15  # about the year 33658: anything larger is a unit or data error
# (upper bound of the median magnitude, milliseconds per unit), smallest unit first
_UNIT_BY_MAGNITUDE = ((1e11, 1_000.0, "s"), (1e14, 1.0, "ms"), (1e17, 1e-3, "us"), (np.inf, 1e-6, "ns"))
_FORMATS = {
    ".csv": "CSV",
    ".csv.gz": "CSV",
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".feather": "feather",
    ".json": "JSON",
    ".json.gz": "JSON",
}


def read_candle_file(path: Path | str) -> Candles:
    """Read a candle file into ``Candles`` (int64 UTC ms, float64 prices), as found in the file.

    Nothing is checked beyond parsing: use ``import_candles`` for a verified series.
    Raises ``DataError`` for a missing, empty, unreadable or unparseable file.
    """
    return _read(Path(path))[0]


def load_and_verify(path: Path | str, timeframe: Timeframe | str) -> tuple[Candles, list[Finding]]:
    """Read and verify a candle file: the candles and the warnings (gaps, jumps) found in them.

    Any error finding (duplicate, unsorted or off-grid timestamp, NaN, bad price or OHLC) raises
    ``DataError`` naming the file, the first bad row and the problem, plus how many more errors.
    """
    path = Path(path)
    tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
    candles, where = _read(path)
    findings = verify_candles(candles, tf.ms)
    errors = [f for f in findings if f.is_error]
    if errors:
        first = errors[0]
        more = sum(f.count for f in errors) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        row = first.row if first.row is not None else 0
        raise DataError(f"{where.at(row)}: {first.message}{suffix}")
    return candles, findings


def import_candles(path: Path | str, timeframe: Timeframe | str) -> Candles:
    """Read ``path`` and return its candles if they have no error for ``timeframe``.

    Gaps and price jumps are allowed (see ``load_and_verify`` to get them as warnings); any error
    raises ``DataError`` with one line such as ``data.csv: row 17 (line 18): NaN in close``.
    Writes nothing: store the result only after this returns, so a bad file imports nothing.
    """
    return load_and_verify(path, timeframe)[0]


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """Names a data row in messages: ``file: row n (line m)``."""

    name: str
    lines: np.ndarray | None  # file line of each data row (CSV only)

    def at(self, row: int) -> str:
        if self.lines is None or row >= len(self.lines):
            return f"{self.name}: row {row + 1}"
        return f"{self.name}: row {row + 1} (line {int(self.lines[row])})"


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise DataError(
        f"{path.name}: unsupported file type {path.suffix or '(no extension)'!r}; "
        "expected .csv, .parquet, .feather or .json"
    )


def _read(path: Path) -> tuple[Candles, _Where]:
    name = path.name
    fmt = _format_of(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        if fmt == "CSV":
            frame, lines = _read_csv(path)
        elif fmt == "JSON":
            frame, lines = _read_json(path), None
        elif fmt == "Parquet":
            frame, lines = _with_index_as_column(pd.read_parquet(path)), None
        else:
            frame, lines = _with_index_as_column(pd.read_feather(path)), None
        where = _Where(name, lines)
        return _to_candles(frame, where), where
    except DataError:
        raise
    except (OSError, ValueError, TypeError, KeyError, OverflowError, pa.ArrowException) as e:
        raise DataError(f"{name}: cannot read as {fmt}: {_one_line(e)}") from e


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def _read_csv(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    with _open_text(path) as f:
        first = f.readline().strip()
    if not first:
        raise DataError(f"{path.name}: the file is empty (or its first line is blank)")
    sep = max((",", ";", "\t"), key=first.count)
    fields = [_normalise(x) for x in first.split(sep)]
    headerless = (
        not _KNOWN_NAMES.intersection(fields) and len(fields) >= 6 and all(_is_number(x) for x in fields[1:6])
    )
    frame = pd.read_csv(
        path,
        sep=sep,
        header=None if headerless else 0,
        skip_blank_lines=False,
        encoding="utf-8-sig",
        low_memory=False,
    )
    if headerless:
        frame = frame.rename(columns=dict(enumerate(COLUMNS)))
    lines = np.arange(len(frame), dtype=np.int64) + (1 if headerless else 2)
    keep = ~frame.isna().all(axis=1).to_numpy()
    if not keep.all():
        frame, lines = frame[keep].reset_index(drop=True), lines[keep]
    return frame, lines


def _read_json(path: Path) -> pd.DataFrame:
    with _open_text(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        return pd.DataFrame(data)
    if not isinstance(data, list):
        raise DataError(f"{path.name}: expected a JSON list of candles, got {type(data).__name__}")
    if data and all(isinstance(r, dict) for r in data):
        return pd.DataFrame.from_records(data)
    for i, r in enumerate(data):
        if not isinstance(r, list) or len(r) < len(COLUMNS):
            got = json.dumps(r)[:60]
            expected = "[ts, open, high, low, close, volume]"
            raise DataError(f"{path.name}: row {i + 1}: expected {expected}, got {got}")
    return pd.DataFrame([r[: len(COLUMNS)] for r in data], columns=list(COLUMNS))


def _with_index_as_column(frame: pd.DataFrame) -> pd.DataFrame:
    if isinstance(frame.index, pd.RangeIndex):
        return frame
    return frame.reset_index()


# --- columns to arrays -----------------------------------------------------------------------------


def _to_candles(frame: pd.DataFrame, where: _Where) -> Candles:
    columns = _match_columns(frame, where.name)
    if len(frame) == 0:
        raise DataError(f"{where.name}: no data rows")
    arrays: dict[str, np.ndarray] = {"ts": _parse_ts(frame[columns["ts"]], where)}
    for name in COLUMNS[1:]:
        arrays[name] = _parse_float(frame[columns[name]], name, where)
    return Candles.from_columns(arrays)


def _normalise(label: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(label).strip().strip('"').lower())


def _match_columns(frame: pd.DataFrame, name: str) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for label in frame.columns:
        by_name.setdefault(_normalise(label), label)
    found: dict[str, Any] = {}
    for canonical, aliases in _ALIASES.items():
        match = next((a for a in aliases if a in by_name), None)
        if match is not None:
            found[canonical] = by_name[match]
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        have = ", ".join(str(c) for c in frame.columns) or "none"
        raise DataError(
            f"{name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found: {have})"
        )
    return found


def _parse_float(series: pd.Series, column: str, where: _Where) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"{where.name}: column {column} holds true/false values, not numbers")
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    text, missing = _as_text(series)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(np.isnan(numbers) & ~missing & ~text.str.lower().isin(_MISSING_TEXT).to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{where.at(row)}: cannot parse {column} value {_show(series.iloc[row])}")
    return numbers


def _as_text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Stripped strings ('' where missing) and the missing mask."""
    missing = series.isna().to_numpy()
    text = series.astype(object).where(~missing, "").astype(str).str.strip()
    return text, missing | (text == "").to_numpy()


def _parse_ts(series: pd.Series, where: _Where) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        return _datetimes_to_ms(series, where)
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"{where.name}: the time column holds true/false values, not timestamps")
    if pd.api.types.is_numeric_dtype(series):
        return _numbers_to_ms(series.to_numpy(), series, where)
    text, missing = _as_text(series)
    _raise_if_missing(missing, where)
    numbers = pd.to_numeric(text, errors="coerce")
    not_numbers = numbers.isna().to_numpy()
    if not not_numbers.any():
        return _numbers_to_ms(numbers.to_numpy(), series, where)
    if not_numbers.mean() < 0.5:  # mostly numbers: the strings are the odd ones out
        bad = np.flatnonzero(not_numbers)
        raise DataError(f"{where.at(int(bad[0]))}: cannot parse timestamp {_show(series.iloc[int(bad[0])])}")
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{where.at(row)}: cannot parse timestamp {_show(series.iloc[row])}")
    return _datetimes_to_ms(parsed, where)


def _datetimes_to_ms(series: pd.Series, where: _Where) -> np.ndarray:
    _raise_if_missing(series.isna().to_numpy(), where)
    if getattr(series.dt, "tz", None) is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return series.to_numpy().astype("datetime64[ms]").astype(np.int64)


def _numbers_to_ms(values: np.ndarray, series: pd.Series, where: _Where) -> np.ndarray:
    finite = np.isfinite(values.astype(np.float64))
    _raise_if_missing(~finite, where)
    magnitude = float(np.median(np.abs(values.astype(np.float64))))
    ms_per_unit = next(factor for bound, factor, _ in _UNIT_BY_MAGNITUDE if magnitude < bound)
    out_of_range = np.flatnonzero(np.abs(values.astype(np.float64)) * ms_per_unit > _MAX_ABS_MS)
    if len(out_of_range):
        row = int(out_of_range[0])
        raise DataError(
            f"{where.at(row)}: timestamp {_show(series.iloc[row])} is out of range for this file "
            "(mixed units?)"
        )
    if values.dtype.kind in "iu":
        ints = values.astype(np.int64)
        if ms_per_unit >= 1:
            return ints * int(ms_per_unit)
        per_ms = round(1 / ms_per_unit)
        return (ints + per_ms // 2) // per_ms
    return np.rint(values.astype(np.float64) * ms_per_unit).astype(np.int64)


def _raise_if_missing(missing: np.ndarray, where: _Where) -> None:
    rows = np.flatnonzero(missing)
    if len(rows):
        raise DataError(f"{where.at(int(rows[0]))}: missing timestamp")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _show(value: object) -> str:
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
