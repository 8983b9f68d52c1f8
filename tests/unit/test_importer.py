"""Specification of ``autotrader.marketdata.importer``: every format gives the same candles, and a
bad file is one ``DataError`` line naming the file and the row."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autotrader.domain.candles import COLUMNS, Candles, SeriesKey, parse_date_ms
from autotrader.domain.errors import ConfigError, DataError
from autotrader.domain.timeframe import Timeframe
from autotrader.marketdata.importer import (
    ImportOptions,
    compare_with_stored,
    import_candles,
    load_and_verify,
    load_file,
    parse_column_mapping,
    read_candle_file,
)
from autotrader.marketdata.store import missing_series_hint

H = 3_600_000
T0 = parse_date_ms("2024-01-01")
TF = Timeframe.parse("1h")

EXPECTED = Candles.from_columns(
    {
        "ts": T0 + np.arange(4) * H,
        "open": [100.0, 101.5, 102.0, 101.0],
        "high": [102.0, 103.0, 102.5, 104.25],
        "low": [99.5, 101.0, 100.0, 100.5],
        "close": [101.5, 102.0, 101.0, 104.0],
        "volume": [12.5, 8.0, 0.0, 30.125],
    }
)
ISO = ["2024-01-01T00:00:00Z", "2024-01-01 01:00", "2024-01-01T03:00:00+01:00", "2024-01-01T03:00:00.000"]


def assert_same(actual: Candles, expected: Candles = EXPECTED) -> None:
    for name in COLUMNS:
        got, want = getattr(actual, name), getattr(expected, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def frame(ts: object = None, names: tuple[str, ...] = COLUMNS) -> pd.DataFrame:
    data = {c: getattr(EXPECTED, c) for c in COLUMNS[1:]}
    data["ts"] = EXPECTED.ts if ts is None else ts
    return pd.DataFrame({new: data[old] for old, new in zip(COLUMNS, names, strict=True)})


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.lstrip("\n"), encoding="utf-8")
    return path


GOOD_CSV = """
ts,open,high,low,close,volume
1704067200000,100,102,99.5,101.5,12.5
1704070800000,101.5,103,101,102,8
1704074400000,102,102.5,100,101,0
1704078000000,101,104.25,100.5,104,30.125
"""


def csv_with(row_index: int, line: str) -> str:
    """GOOD_CSV with data row ``row_index`` (0-based) replaced by ``line``."""
    lines = GOOD_CSV.strip().splitlines()
    lines[row_index + 1] = line
    return "\n".join(lines) + "\n"


# --- every format and time encoding gives the same candles ---------------------------------------


@pytest.mark.parametrize(
    ("label", "ts"),
    [
        ("seconds", EXPECTED.ts // 1000),
        ("milliseconds", EXPECTED.ts),
        ("microseconds", EXPECTED.ts * 1000),
        ("nanoseconds", EXPECTED.ts * 1_000_000),
        ("float seconds", EXPECTED.ts / 1000.0),
        ("iso strings", ISO),
    ],
)
def test_read_csv_timestamp_encodings_identical_candles(tmp_path, label, ts):
    path = tmp_path / "data.csv"
    frame(ts).to_csv(path, index=False)
    assert_same(read_candle_file(path))


def test_read_csv_aliases_any_case_identical_candles(tmp_path):
    path = tmp_path / "data.csv"
    names = ("Open Time", "O", "HIGH", "l", "Close", "Vol")
    frame(EXPECTED.ts // 1000, names).assign(extra="x").to_csv(path, index=False)
    assert_same(read_candle_file(path))


@pytest.mark.parametrize("alias", ["timestamp", "time", "date", "datetime", "open_time"])
def test_read_csv_time_column_alias_identical_candles(tmp_path, alias):
    path = tmp_path / "data.csv"
    frame(ISO, (alias, *COLUMNS[1:])).to_csv(path, index=False)
    assert_same(read_candle_file(path))


def test_read_csv_semicolon_separated_identical_candles(tmp_path):
    path = tmp_path / "data.csv"
    frame().to_csv(path, index=False, sep=";")
    assert_same(read_candle_file(path))


def test_read_csv_headerless_binance_layout_identical_candles(tmp_path):
    path = tmp_path / "BTCUSDT-1h-2024-01.csv"
    data = frame(EXPECTED.ts * 1000).assign(close_time=0, quote_volume=1.0)
    data.to_csv(path, index=False, header=False)
    assert_same(read_candle_file(path))


def test_read_csv_gzip_identical_candles(tmp_path):
    path = tmp_path / "data.csv.gz"
    path.write_bytes(gzip.compress(GOOD_CSV.lstrip().encode()))
    assert_same(read_candle_file(path))


def test_read_parquet_ms_column_identical_candles(tmp_path):
    path = tmp_path / "data.parquet"
    frame().to_parquet(path, index=False)
    assert_same(read_candle_file(path))


def test_read_parquet_datetime_index_identical_candles(tmp_path):
    path = tmp_path / "data.parquet"
    data = frame(pd.to_datetime(EXPECTED.ts, unit="ms"), ("date", *COLUMNS[1:])).set_index("date")
    data.to_parquet(path)
    assert_same(read_candle_file(path))


def test_read_freqtrade_feather_tz_aware_date_identical_candles(tmp_path):
    path = tmp_path / "BTC_USDT-1h.feather"
    dates = pd.to_datetime(EXPECTED.ts, unit="ms", utc=True)
    frame(dates, ("date", *COLUMNS[1:])).to_feather(path)
    assert_same(read_candle_file(path))


def test_read_feather_other_time_zone_converted_to_utc(tmp_path):
    path = tmp_path / "data.feather"
    dates = pd.to_datetime(EXPECTED.ts, unit="ms", utc=True).tz_convert("Asia/Tokyo")
    frame(dates, ("date", *COLUMNS[1:])).to_feather(path)
    assert_same(read_candle_file(path))


def test_read_freqtrade_json_identical_candles(tmp_path):
    path = tmp_path / "BTC_USDT-1h.json"
    rows = [[int(t), o, h, lo, c, v] for t, o, h, lo, c, v in zip(*EXPECTED.columns().values(), strict=True)]
    path.write_text(json.dumps(rows))
    assert_same(read_candle_file(path))


def test_read_json_iso_timestamps_and_string_prices_identical_candles(tmp_path):
    path = tmp_path / "data.json.gz"
    rows = [
        [iso, str(o), str(h), str(lo), str(c), str(v), "ignored"]
        for iso, o, h, lo, c, v in zip(ISO, *(getattr(EXPECTED, n) for n in COLUMNS[1:]), strict=True)
    ]
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    assert_same(read_candle_file(path))


def test_read_json_records_identical_candles(tmp_path):
    path = tmp_path / "data.json"
    frame().to_json(path, orient="records")
    assert_same(read_candle_file(path))


def test_import_candles_clean_file_returns_candles(tmp_path):
    path = write_csv(tmp_path / "data.csv", GOOD_CSV)
    assert_same(import_candles(path, TF))
    assert_same(import_candles(str(path), "1h"))


def test_import_candles_writes_nothing(tmp_path):
    path = write_csv(tmp_path / "data.csv", csv_with(1, "1704067200000,1,2,0.5,1.5,1"))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(DataError):
        import_candles(path, TF)
    import_candles(write_csv(tmp_path / "good.csv", GOOD_CSV), TF)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [*before, "good.csv"]


# --- bad rows: one line naming the file, the row and the line -------------------------------------


def test_import_candles_nan_row_names_file_row_and_line(tmp_path):
    path = write_csv(tmp_path / "data.csv", csv_with(2, "1704074400000,102,102.5,100,NaN,0"))
    with pytest.raises(DataError, match=r"^data\.csv: row 3 \(line 4\): NaN in close$"):
        import_candles(path, TF)


def test_import_candles_empty_cell_reported_as_nan(tmp_path):
    path = write_csv(tmp_path / "data.csv", csv_with(1, "1704070800000,101.5,103,,102,8"))
    with pytest.raises(DataError, match=r"^data\.csv: row 2 \(line 3\): NaN in low$"):
        import_candles(path, TF)


def test_import_candles_duplicate_row_names_earlier_row(tmp_path):
    path = write_csv(tmp_path / "data.csv", csv_with(2, "1704070800000,102,102.5,100,101,0"))
    with pytest.raises(
        DataError,
        match=r"^data\.csv: row 3 \(line 4\): duplicate timestamp 2024-01-01 01:00 \(same as row 2\)$",
    ):
        import_candles(path, TF)


def test_import_candles_unsorted_row_names_previous_row(tmp_path):
    path = write_csv(tmp_path / "data.csv", csv_with(3, "1704063600000,101,104.25,100.5,104,30.125"))
    with pytest.raises(
        DataError,
        match=r"^data\.csv: row 4 \(line 5\): unsorted timestamp 2023-12-31 23:00 earlier than row 3 ",
    ):
        import_candles(path, TF)


def test_import_candles_nan_duplicate_unsorted_first_error_and_count(tmp_path):
    text = """
ts,open,high,low,close,volume
1704067200000,100,102,99.5,101.5,12.5
1704070800000,101.5,103,101,nan,8
1704070800000,102,102.5,100,101,0
1704063600000,101,104.25,100.5,104,30.125
"""
    path = write_csv(tmp_path / "mixed.csv", text)
    with pytest.raises(DataError) as info:
        import_candles(path, TF)
    assert str(info.value) == "mixed.csv: row 2 (line 3): NaN in close (and 2 more errors)"


def test_import_candles_blank_lines_counted_in_line_number(tmp_path):
    text = GOOD_CSV.replace("\n1704074400000", "\n\n\n1704074400000").replace(",101,0\n", ",nan,0\n")
    path = write_csv(tmp_path / "data.csv", text)
    with pytest.raises(DataError, match=r"^data\.csv: row 3 \(line 6\): NaN in close$"):
        import_candles(path, TF)


def test_import_candles_off_grid_for_timeframe_error(tmp_path):
    path = write_csv(tmp_path / "data.csv", GOOD_CSV)
    with pytest.raises(
        DataError,
        match=r"^data\.csv: row 2 \(line 3\): timestamp 2024-01-01 01:00 is not on the 1d grid "
        r"\(and 2 more errors\)$",
    ):
        import_candles(path, Timeframe.parse("1d"))


def test_import_candles_inconsistent_ohlc_error(tmp_path):
    path = write_csv(tmp_path / "data.csv", csv_with(0, "1704067200000,100,99,99.5,101.5,12.5"))
    with pytest.raises(DataError, match=r"^data\.csv: row 1 \(line 2\): high 99 below max\(open, close\)"):
        import_candles(path, TF)


def test_import_candles_parquet_error_has_row_without_line(tmp_path):
    path = tmp_path / "data.parquet"
    data = frame()
    data.loc[1, "volume"] = -3.0
    data.to_parquet(path, index=False)
    with pytest.raises(DataError, match=r"^data\.parquet: row 2: negative volume -3$"):
        import_candles(path, TF)


def test_load_and_verify_gaps_and_jumps_returned_as_warnings(tmp_path):
    text = csv_with(3, "1704099600000,150,160,149,155,1")  # 6 hours later and +53%
    candles, warnings = load_and_verify(write_csv(tmp_path / "data.csv", text), TF)
    assert len(candles) == 4
    assert sorted(f.kind for f in warnings) == ["gap", "jump"]
    assert all(f.severity == "warning" for f in warnings)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1704074400000,102,102.5,100,abc,0", r"row 3 \(line 4\): cannot parse close value 'abc'$"),
        ("yesterday,102,102.5,100,101,0", r"row 3 \(line 4\): cannot parse timestamp 'yesterday'$"),
        (",102,102.5,100,101,0", r"row 3 \(line 4\): missing timestamp$"),
        ("1704074400000000000000,102,102.5,100,101,0", r"row 3 \(line 4\): timestamp .* is out of range"),
    ],
)
def test_read_csv_unparseable_value_names_row(tmp_path, line, message):
    path = write_csv(tmp_path / "data.csv", csv_with(2, line))
    with pytest.raises(DataError, match=r"^data\.csv: " + message):
        read_candle_file(path)


def test_read_csv_missing_columns_lists_them(tmp_path):
    path = write_csv(tmp_path / "data.csv", "time,open,high\n1,2,3\n")
    with pytest.raises(
        DataError,
        match=r"^data\.csv: missing columns low, close, volume \(found: time, open, high; map them with --columns",
    ):
        read_candle_file(path)


def test_read_csv_empty_file_error(tmp_path):
    path = write_csv(tmp_path / "data.csv", "")
    with pytest.raises(DataError, match=r"^data\.csv: the file is empty"):
        read_candle_file(path)


def test_read_csv_header_only_no_data_rows(tmp_path):
    path = write_csv(tmp_path / "data.csv", "ts,open,high,low,close,volume\n")
    with pytest.raises(DataError, match=r"^data\.csv: no data rows$"):
        read_candle_file(path)


def test_read_unknown_extension_error(tmp_path):
    path = write_csv(tmp_path / "data.xlsx", GOOD_CSV)
    with pytest.raises(DataError, match=r"^data\.xlsx: unsupported file type '\.xlsx'"):
        read_candle_file(path)


def test_read_missing_file_error(tmp_path):
    with pytest.raises(DataError, match=r"no such file$"):
        read_candle_file(tmp_path / "nothing.csv")


def test_read_corrupt_parquet_error_one_line(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match=r"^data\.parquet: cannot read as Parquet: ") as info:
        read_candle_file(path)
    assert "\n" not in str(info.value)


def test_read_invalid_json_error(tmp_path):
    path = write_csv(tmp_path / "data.json", "[[1704067200000, 1, 2, 0.5")
    with pytest.raises(DataError, match=r"^data\.json: cannot read as JSON: "):
        read_candle_file(path)


def test_read_json_short_row_names_row(tmp_path):
    path = write_csv(tmp_path / "data.json", "[[1704067200000, 1, 2, 0.5, 1.5, 10], [1704070800000, 1, 2]]")
    with pytest.raises(DataError, match=r"^data\.json: row 2: expected \[ts, open, high, low, close, volume\]"):
        read_candle_file(path)


# --- vendor layouts: preamble, newest first, per-currency volume, column mapping ----------------------


def cryptodatadownload_csv(path: Path, candles: Candles = EXPECTED) -> Path:
    """A CryptoDataDownload-style file: URL line, unix seconds, newest first, Volume BTC / Volume USD."""
    lines = ["https://www.CryptoDataDownload.com", "unix,date,symbol,open,high,low,close,Volume BTC,Volume USD"]
    for i in range(len(candles) - 1, -1, -1):
        ts = int(candles.ts[i])
        date = pd.Timestamp(ts, unit="ms").strftime("%Y-%m-%d %H:%M:%S")
        o, h, lo, c, v = (float(getattr(candles, n)[i]) for n in COLUMNS[1:])
        lines.append(f"{ts // 1000},{date},BTC/USD,{o!r},{h!r},{lo!r},{c!r},{v!r},{v * c!r}")
    return write_csv(path, "\n".join(lines) + "\n")


def test_load_file_cryptodatadownload_layout_imported_exactly(tmp_path):
    path = cryptodatadownload_csv(tmp_path / "Bitstamp_BTCUSD_1h.csv")
    loaded = load_file(path, TF, ImportOptions(symbol="BTCUSD"))
    assert_same(loaded.candles)
    notes = " | ".join(loaded.notes)
    assert "skipped 1 line before the header ('https://www.CryptoDataDownload.com')" in notes
    assert "reversed 4 bars" in notes
    assert "volume from column 'Volume BTC'" in notes


def test_load_file_newest_first_error_names_row_as_in_file(tmp_path):
    broken = Candles.from_columns({**EXPECTED.columns(), "close": np.array([101.5, 102.0, np.nan, 104.0])})
    path = cryptodatadownload_csv(tmp_path / "cdd.csv", broken)
    # The NaN bar is the 3rd oldest, so the 2nd data row of the newest-first file, on line 4.
    with pytest.raises(DataError, match=r"^cdd\.csv: row 2 \(line 4\): NaN in close$"):
        load_file(path, TF, ImportOptions(symbol="BTCUSD"))


def test_load_file_ambiguous_volume_columns_asks_for_mapping(tmp_path):
    text = "ts,open,high,low,close,Volume BTC,Volume ETH\n1704067200000,1,2,0.5,1.5,1,2\n"
    path = write_csv(tmp_path / "data.csv", text)
    with pytest.raises(DataError, match=r"cannot tell which volume column .* use --columns volume=COLUMN$"):
        read_candle_file(path)
    candles = read_candle_file(path, ImportOptions(symbol="ETHBTC"))
    assert candles.volume.tolist() == [2.0]


def test_load_file_column_mapping_any_names_identical_candles(tmp_path):
    renamed = ("Zeit", "Eroeffnung", "Hoch", "Tief", "Schluss", "Menge")
    path = tmp_path / "data.csv"
    frame(names=renamed).to_csv(path, index=False)
    mapping = parse_column_mapping("ts=Zeit,open=Eroeffnung,high=Hoch,low=Tief,close=Schluss,volume=Menge")
    assert_same(read_candle_file(path, ImportOptions(columns=mapping)))


def test_load_file_column_mapping_wins_over_alias(tmp_path):
    text = "ts,open,high,low,close,volume,Volume USD\n1704067200000,1,2,0.5,1.5,7,70\n"
    path = write_csv(tmp_path / "data.csv", text)
    assert read_candle_file(path).volume.tolist() == [7.0]
    assert read_candle_file(path, ImportOptions(columns={"volume": "volume usd"})).volume.tolist() == [70.0]


def test_load_file_column_mapping_unknown_column_lists_found(tmp_path):
    path = write_csv(tmp_path / "data.csv", GOOD_CSV)
    with pytest.raises(DataError, match=r"--columns volume=Qty: no such column \(found: ts, open"):
        read_candle_file(path, ImportOptions(columns={"volume": "Qty"}))


@pytest.mark.parametrize(
    ("text", "message"),
    [("ts", "expected FIELD=COLUMN"), ("ts=a,ts=b", "given twice"), ("price=Close", "unknown field 'price'")],
)
def test_parse_column_mapping_bad_text_config_error(text, message):
    with pytest.raises(ConfigError, match=message):
        ImportOptions(columns=parse_column_mapping(text))


def test_load_file_skip_rows_explicit_preamble_naming_columns(tmp_path):
    # A title line that itself names columns defeats auto-detection; --skip-rows says how many lines to skip.
    text = "open,high,low,close are in USD\nexported 2024-01-02\n" + GOOD_CSV.lstrip("\n")
    path = write_csv(tmp_path / "data.csv", text)
    with pytest.raises(DataError):
        read_candle_file(path)
    loaded = load_file(path, TF, ImportOptions(skip_rows=2))
    assert_same(loaded.candles)
    bad = write_csv(tmp_path / "bad.csv", text.replace("1704070800000,101.5", "1704070800000,x"))
    with pytest.raises(DataError, match=r"^bad\.csv: row 2 \(line 5\): cannot parse open value 'x'$"):
        load_file(bad, TF, ImportOptions(skip_rows=2))


def test_load_file_time_unit_overrides_magnitude(tmp_path):
    path = tmp_path / "data.csv"
    frame(ts=EXPECTED.ts // 1000).to_csv(path, index=False)
    assert_same(read_candle_file(path, ImportOptions(time_unit="s")))
    as_ms = read_candle_file(path, ImportOptions(time_unit="ms"))
    assert as_ms.ts.tolist() == (EXPECTED.ts // 1000).tolist()  # taken literally: 1970, as asked


def test_import_options_bad_values_config_error():
    with pytest.raises(ConfigError, match="--time-unit 'min'"):
        ImportOptions(time_unit="min")
    with pytest.raises(ConfigError, match="--skip-rows -1"):
        ImportOptions(skip_rows=-1)


# --- malformed files: always one DataError line -------------------------------------------------------


def _gz(rows: str) -> bytes:
    return gzip.compress(rows.encode(), mtime=0)  # deterministic bytes: the same test ids on every worker


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cut.csv.gz", _gz(GOOD_CSV * 50)[:-40], "truncated"),
        ("cut.json.gz", gzip.compress(json.dumps([[1, 2, 3, 4, 5, 6]] * 500).encode(), mtime=0)[:60], "truncated"),
        ("noise.csv.gz", b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4, "cannot read as CSV"),
        ("plain.csv.gz", GOOD_CSV.encode(), "cannot read as CSV"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (
            "latin1.csv",
            "ts,open,high,low,close,volume\n1704067200000,1,2,0.5,1.5,1 \xe9\xff\n".encode("latin-1"),
            "cannot read as CSV",
        ),
        ("cut.parquet", b"PAR1" + b"\x00" * 64, "cannot read as Parquet"),
        ("cut.feather", b"ARROW1\x00\x00" + b"\x01" * 32, "cannot read as feather"),
    ],
)
def test_read_malformed_file_one_data_error_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_file(path, TF)
    text = str(info.value)
    assert text.startswith(f"{name}: ")
    assert message in text
    assert "\n" not in text and len(text) < 300


# --- re-importing: what would change -----------------------------------------------------------------


def test_compare_with_stored_counts_new_unchanged_changed():
    stored = EXPECTED.take(np.arange(3))
    incoming = Candles.from_columns({**EXPECTED.columns(), "close": EXPECTED.close * np.array([1, 1, 2, 1])})
    changes = compare_with_stored(stored, incoming)
    assert (changes.new, changes.unchanged, changes.changed) == (1, 2, 1)
    assert changes.first_changed == "2024-01-01 02:00: close 101 -> 202"
    same = compare_with_stored(EXPECTED, EXPECTED)
    assert (same.new, same.unchanged, same.changed, same.first_changed) == (0, 4, 0, None)
    empty = compare_with_stored(Candles.empty(), EXPECTED)
    assert (empty.new, empty.unchanged, empty.changed) == (4, 0, 0)


def test_compare_with_stored_volume_only_change_counts():
    incoming = Candles.from_columns({**EXPECTED.columns(), "volume": EXPECTED.volume + np.array([0, 0, 0, 1])})
    changes = compare_with_stored(EXPECTED, incoming)
    assert changes.changed == 1
    assert changes.first_changed == "2024-01-01 03:00: volume 30.125 -> 31.125"


# --- where a missing series may be ---------------------------------------------------------------------


def _keys(*specs: str) -> list[SeriesKey]:
    return [SeriesKey.of(*spec.split(":")) for spec in specs]


@pytest.mark.parametrize(
    ("wanted", "hint"),
    [
        ("binance:BTCUSD:1h", "; BTCUSD 1h is stored under --exchange bitstamp or kraken"),
        ("binance:ETHUSDT:4h", "; ETHUSDT is stored as binance 1h (see --exchange and --timeframe)"),
        ("binance:BTCUSDX:1h", "; did you mean BTCUSDT?"),
        ("bybit:ETHUSD:1h", "; did you mean ETHUSDT (binance 1h)?"),
        ("binance:XRPEUR:1h", ""),
    ],
)
def test_missing_series_hint_prefers_other_exchanges(wanted, hint):
    keys = _keys("binance:BTCUSDT:1h", "binance:ETHUSDT:1h", "kraken:BTCUSD:1h", "bitstamp:BTCUSD:1h")
    assert missing_series_hint(keys, SeriesKey.of(*wanted.split(":"))) == hint
