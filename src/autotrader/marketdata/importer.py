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

Column aliases: time ``ts, timestamp, open_time, unix, time, datetime, date`` (first present wins);
``open/o``, ``high/h``, ``low/l``, ``close/c``, ``volume/vol/v``. Other columns are ignored. Files
with one volume column per currency (``Volume BTC``, ``Volume USD``) use the base asset's, found
from the symbol. ``ImportOptions.columns`` maps any field to any column by name instead.

Vendor CSVs: lines before the header that name no column (CryptoDataDownload puts its URL there)
are skipped, up to 10 of them (``ImportOptions.skip_rows`` sets the number instead); a file whose
timestamps all decrease (newest first) is reversed. Each such decision is returned as a note.

Timestamps become bar open times in UTC epoch milliseconds. Numbers are read by magnitude (the
median of the column): below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
otherwise nanoseconds; sub-millisecond parts are rounded. Strings that are not numbers are ISO-8601
(``2024-01-01``, ``2024-01-01T04:00``, ``2024-01-01 04:00:00+02:00``); without a zone they are
UTC. Native date-time columns are converted to UTC, naive ones taken as UTC.

Every problem is a ``DataError`` with one line: ``<file>: row <n> (line <m>): <problem>``, where
``row`` is the 1-based data row as it stands in the file and ``line`` the line in a CSV file (the
header is line 1 unless lines precede it; the line part is left out for other formats). A file that
cannot be read at all (truncated gzip, nesting too deep, bad encoding) is one line too. Nothing here
writes anywhere.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from autotrader.domain.candles import COLUMNS, Candles
from autotrader.domain.errors import ConfigError, DataError
from autotrader.domain.timeframe import Timeframe
from autotrader.marketdata.verify import Finding, fmt_ts, verify_candles

_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "open_time", "unix", "unix_timestamp", "time", "datetime", "date"),
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
_MS_PER_UNIT = {unit: factor for _, factor, unit in _UNIT_BY_MAGNITUDE}
_MAX_PREAMBLE_LINES = 10
# Quote currencies: a "Volume USD" column is quote volume, never the base-asset volume we store.
_QUOTE_CURRENCIES = frozenset({"usd", "usdt", "usdc", "busd", "fdusd", "tusd", "dai", "eur", "gbp", "jpy", "try"})
# Exceptions a malformed file can raise inside pandas, pyarrow, gzip or json: all become one DataError line.
_READ_ERRORS = (
    OSError,  # includes gzip.BadGzipFile
    EOFError,  # truncated gzip
    zlib.error,
    ValueError,  # includes UnicodeDecodeError, json.JSONDecodeError, pandas' ParserError
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
    RecursionError,  # deeply nested JSON
    csv.Error,
    pa.ArrowException,
)
_FORMATS = {
    ".csv": "CSV",
    ".csv.gz": "CSV",
    ".parquet": "Parquet",
    ".pq": "Parquet",
    ".feather": "feather",
    ".json": "JSON",
    ".json.gz": "JSON",
}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How to read a file the auto-detection does not cover (all optional).

    ``columns`` maps fields (``ts, open, high, low, close, volume``) to the file's column names
    (matched like the aliases: any case, spaces or dashes as ``_``); ``skip_rows`` is the number of
    lines before a CSV header (``None``: skip a preamble that names no column); ``time_unit`` is
    ``s``, ``ms``, ``us`` or ``ns`` for numeric timestamps (``None``: by magnitude); ``symbol`` picks
    the base asset's column among per-currency volume columns.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    skip_rows: int | None = None
    time_unit: str | None = None
    symbol: str | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.columns if c not in COLUMNS]
        if unknown:
            raise ConfigError(f"--columns: unknown field {unknown[0]!r}; fields are {', '.join(COLUMNS)}")
        if self.skip_rows is not None and self.skip_rows < 0:
            raise ConfigError(f"--skip-rows {self.skip_rows}: give 0 or more lines")
        if self.time_unit is not None and self.time_unit not in _MS_PER_UNIT:
            raise ConfigError(f"--time-unit {self.time_unit!r}: choose s, ms, us or ns")


def parse_column_mapping(text: str | None) -> dict[str, str]:
    """``"ts=Unix,volume=Volume BTC"`` -> ``{"ts": "Unix", "volume": "Volume BTC"}``; ``ConfigError`` if malformed."""
    mapping: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, column = item.partition("=")
        name = name.strip().lower()
        if not sep or not column.strip():
            raise ConfigError(f"--columns {text!r}: expected FIELD=COLUMN pairs, e.g. ts=Unix,volume='Volume BTC'")
        if name in mapping:
            raise ConfigError(f"--columns {text!r}: field {name!r} given twice")
        mapping[name] = column.strip().strip("'\"")
    return mapping


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A verified candle file: its candles (oldest first), the warnings found and how it was read."""

    candles: Candles
    findings: list[Finding]
    notes: tuple[str, ...]


def read_candle_file(path: Path | str, options: ImportOptions | None = None) -> Candles:
    """Read a candle file into ``Candles`` (int64 UTC ms, float64 prices), oldest bar first.

    Nothing is checked beyond parsing: use ``import_candles`` for a verified series.
    Raises ``DataError`` for a missing, empty, unreadable or unparseable file.
    """
    return _read(Path(path), options or ImportOptions())[0]


def load_file(path: Path | str, timeframe: Timeframe | str, options: ImportOptions | None = None) -> LoadedFile:
    """Read and verify a candle file: the candles, the warnings (gaps, jumps) and notes on the reading.

    Any error finding (duplicate, unsorted or off-grid timestamp, NaN, bad price or OHLC) raises
    ``DataError`` naming the file, the first bad row and the problem, plus how many more errors.
    """
    path = Path(path)
    tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
    candles, where, notes = _read(path, options or ImportOptions())
    findings = verify_candles(candles, tf.ms)
    errors = [f for f in findings if f.is_error]
    if errors:
        first = errors[0]
        more = sum(f.count for f in errors) - 1
        suffix = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
        row = first.row if first.row is not None else 0
        raise DataError(f"{where.at(row)}: {first.message}{suffix}")
    return LoadedFile(candles, findings, tuple(notes))


def load_and_verify(
    path: Path | str, timeframe: Timeframe | str, options: ImportOptions | None = None
) -> tuple[Candles, list[Finding]]:
    """``load_file`` without the notes: the candles and the warnings found in them."""
    loaded = load_file(path, timeframe, options)
    return loaded.candles, loaded.findings


def import_candles(path: Path | str, timeframe: Timeframe | str, options: ImportOptions | None = None) -> Candles:
    """Read ``path`` and return its candles if they have no error for ``timeframe``.

    Gaps and price jumps are allowed (see ``load_file`` to get them as warnings); any error
    raises ``DataError`` with one line such as ``data.csv: row 17 (line 18): NaN in close``.
    Writes nothing: store the result only after this returns, so a bad file imports nothing.
    """
    return load_file(path, timeframe, options).candles


@dataclass(frozen=True, slots=True)
class BarChanges:
    """How incoming bars compare with the stored ones at the same timestamps."""

    new: int
    unchanged: int
    changed: int
    first_changed: str | None  # e.g. "2024-01-01 04:00: close 101.5 -> 203" (stored -> incoming)


def compare_with_stored(stored: Candles, incoming: Candles) -> BarChanges:
    """Count incoming bars that are new, identical to the stored bar, or different from it."""
    _, at_stored, at_incoming = np.intersect1d(stored.ts, incoming.ts, assume_unique=True, return_indices=True)
    differs = np.zeros(len(at_incoming), dtype=bool)
    for name in COLUMNS[1:]:
        differs |= getattr(stored, name)[at_stored] != getattr(incoming, name)[at_incoming]
    first: str | None = None
    if differs.any():
        k = int(np.flatnonzero(differs)[0])
        i, j = int(at_stored[k]), int(at_incoming[k])
        parts = [
            f"{name} {getattr(stored, name)[i]:g} -> {getattr(incoming, name)[j]:g}"
            for name in COLUMNS[1:]
            if getattr(stored, name)[i] != getattr(incoming, name)[j]
        ]
        first = f"{fmt_ts(int(incoming.ts[j]))}: {', '.join(parts)}"
    changed = int(differs.sum())
    return BarChanges(len(incoming) - len(at_incoming), len(at_incoming) - changed, changed, first)


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """Names a data row in messages: ``file: row n (line m)``, as the row stands in the file."""

    name: str
    lines: np.ndarray | None  # file line of each data row (CSV only)
    order: np.ndarray | None = None  # file row of each candle when the candles were reordered

    def at(self, row: int) -> str:
        if self.order is not None and row < len(self.order):
            row = int(self.order[row])
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


def _read(path: Path, options: ImportOptions) -> tuple[Candles, _Where, list[str]]:
    name = path.name
    fmt = _format_of(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    notes: list[str] = []
    try:
        if fmt == "CSV":
            frame, lines = _read_csv(path, options, notes)
        elif fmt == "JSON":
            frame, lines = _read_json(path), None
        elif fmt == "Parquet":
            frame, lines = _with_index_as_column(pd.read_parquet(path)), None
        else:
            frame, lines = _with_index_as_column(pd.read_feather(path)), None
        where = _Where(name, lines)
        candles = _to_candles(frame, where, options, notes)
    except DataError:
        raise
    except RecursionError as e:
        raise DataError(f"{name}: cannot read as {fmt}: nested too deeply") from e
    except EOFError as e:
        raise DataError(f"{name}: cannot read as {fmt}: the file is truncated ({_one_line(e)})") from e
    except _READ_ERRORS as e:
        raise DataError(f"{name}: cannot read as {fmt}: {_one_line(e)}") from e
    if len(candles) > 1 and bool(np.all(np.diff(candles.ts) < 0)):
        order = np.arange(len(candles) - 1, -1, -1)
        candles = candles.take(order)
        where = _Where(name, where.lines, order)
        notes.append(f"rows were newest first: reversed {len(candles):,} bars")
    return candles, where, notes


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open(encoding="utf-8-sig")


def _read_csv(path: Path, options: ImportOptions, notes: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    with _open_text(path) as f:
        head = [f.readline() for _ in range(_MAX_PREAMBLE_LINES + 1)]
    skip = options.skip_rows if options.skip_rows is not None else _preamble_lines(head, options)
    if skip < len(head):
        first = head[skip].strip()
    else:  # an explicit --skip-rows beyond the lines read here
        with _open_text(path) as f:
            for _ in range(skip):
                f.readline()
            first = f.readline().strip()
    if not first:
        problem = "the file is empty (or its first line is blank)" if skip == 0 else f"line {skip + 1} is blank"
        raise DataError(f"{path.name}: {problem}")
    if skip and options.skip_rows is None:
        notes.append(f"skipped {skip} line{'s' if skip > 1 else ''} before the header ({_show(head[0].strip())})")
    sep = max((",", ";", "\t"), key=first.count)
    fields = [_normalise(x) for x in first.split(sep)]
    headerless = _is_headerless(fields, options)
    frame = pd.read_csv(
        path,
        sep=sep,
        header=None if headerless else 0,
        skiprows=skip,
        skip_blank_lines=False,
        encoding="utf-8-sig",
        low_memory=False,
    )
    if headerless:
        frame = frame.rename(columns=dict(enumerate(COLUMNS)))
    lines = np.arange(len(frame), dtype=np.int64) + skip + (1 if headerless else 2)
    keep = ~frame.isna().all(axis=1).to_numpy()
    if not keep.all():
        frame, lines = frame[keep].reset_index(drop=True), lines[keep]
    return frame, lines


def _is_headerless(fields: list[str], options: ImportOptions) -> bool:
    named = _KNOWN_NAMES.union(_normalise(c) for c in options.columns.values())
    return not named.intersection(fields) and len(fields) >= 6 and all(_is_number(x) for x in fields[1:6])


def _preamble_lines(head: list[str], options: ImportOptions) -> int:
    """How many leading lines name no column and hold no data (a vendor's URL or title), else 0."""
    named = _KNOWN_NAMES.union(_normalise(c) for c in options.columns.values())
    for i, raw in enumerate(head[:_MAX_PREAMBLE_LINES]):
        line = raw.strip()
        if not line:
            continue
        sep = max((",", ";", "\t"), key=line.count)
        fields = [_normalise(x) for x in line.split(sep)]
        volumes = [f for f in fields if f.startswith("volume_")]
        if len(named.intersection(fields)) + len(volumes) >= 2 or _is_headerless(fields, options):
            return i
    return 0


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


def _to_candles(frame: pd.DataFrame, where: _Where, options: ImportOptions, notes: list[str]) -> Candles:
    columns = _match_columns(frame, where.name, options, notes)
    if len(frame) == 0:
        raise DataError(f"{where.name}: no data rows")
    arrays: dict[str, np.ndarray] = {"ts": _parse_ts(frame[columns["ts"]], where, options.time_unit)}
    for name in COLUMNS[1:]:
        arrays[name] = _parse_float(frame[columns[name]], name, where)
    return Candles.from_columns(arrays)


def _normalise(label: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(label).strip().strip('"').lower())


def _match_columns(frame: pd.DataFrame, name: str, options: ImportOptions, notes: list[str]) -> dict[str, Any]:
    by_name: dict[str, Any] = {}
    for label in frame.columns:
        by_name.setdefault(_normalise(label), label)
    have = ", ".join(" ".join(str(c).split()) for c in frame.columns)[:300] or "none"  # one line, bounded
    found: dict[str, Any] = {}
    for canonical, column in options.columns.items():
        if _normalise(column) not in by_name:
            raise DataError(f"{name}: --columns {canonical}={column}: no such column (found: {have})")
        found[canonical] = by_name[_normalise(column)]
    for canonical, aliases in _ALIASES.items():
        match = next((a for a in aliases if a in by_name), None)
        if canonical not in found and match is not None:
            found[canonical] = by_name[match]
    if "volume" not in found:
        volume = _base_volume_column(by_name, options.symbol, name)
        if volume is not None:
            found["volume"] = volume
            notes.append(f"volume from column {str(volume)!r} (the base asset's)")
    missing = [c for c in COLUMNS if c not in found]
    if missing:
        raise DataError(
            f"{name}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (found: {have}; "
            "map them with --columns FIELD=COLUMN)"
        )
    return found


def _base_volume_column(by_name: dict[str, Any], symbol: str | None, name: str) -> Any:
    """Among per-currency volume columns (``Volume BTC``, ``Volume USD``) the base asset's, if clear."""
    per_currency = {key[len("volume_") :]: label for key, label in by_name.items() if key.startswith("volume_")}
    if not per_currency:
        return None
    if symbol:
        sym = symbol.lower()
        base = [c for c in per_currency if sym.startswith(c) and sym != c and c not in _QUOTE_CURRENCIES]
    else:
        base = [c for c in per_currency if c not in _QUOTE_CURRENCIES]
    if len(base) == 1:
        return per_currency[base[0]]
    labels = ", ".join(str(v) for v in per_currency.values())
    raise DataError(
        f"{name}: cannot tell which volume column is the base asset's ({labels}): use --columns volume=COLUMN"
    )


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


def _parse_ts(series: pd.Series, where: _Where, unit: str | None = None) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        return _datetimes_to_ms(series, where)
    if pd.api.types.is_bool_dtype(series):
        raise DataError(f"{where.name}: the time column holds true/false values, not timestamps")
    if pd.api.types.is_numeric_dtype(series):
        return _numbers_to_ms(series.to_numpy(), series, where, unit)
    text, missing = _as_text(series)
    _raise_if_missing(missing, where)
    numbers = pd.to_numeric(text, errors="coerce")
    not_numbers = numbers.isna().to_numpy()
    if not not_numbers.any():
        return _numbers_to_ms(numbers.to_numpy(), series, where, unit)
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


def _numbers_to_ms(values: np.ndarray, series: pd.Series, where: _Where, unit: str | None = None) -> np.ndarray:
    finite = np.isfinite(values.astype(np.float64))
    _raise_if_missing(~finite, where)
    if unit is not None:
        ms_per_unit = _MS_PER_UNIT[unit]
    else:
        magnitude = float(np.median(np.abs(values.astype(np.float64)))) if len(values) else math.nan
        found = next((factor for bound, factor, _ in _UNIT_BY_MAGNITUDE if magnitude < bound), None)
        if found is None:  # NaN (no rows) or beyond every unit
            raise DataError(f"{where.at(0)}: timestamps are not epoch seconds, ms, µs or ns (median {magnitude:g})")
        ms_per_unit = found
    out_of_range = np.flatnonzero(np.abs(values.astype(np.float64)) * ms_per_unit > _MAX_ABS_MS)
    if len(out_of_range):
        row = int(out_of_range[0])
        raise DataError(
            f"{where.at(row)}: timestamp {_show(series.iloc[row])} is out of range for this file (mixed units?)"
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
