"""`autotrader data ...` as a user runs it: a real process, the real bundled data, both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from autotrader.domain.candles import SeriesKey
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles


def run_cli(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m autotrader ARGS`` in a fresh process, as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "autotrader", *args],
        capture_output=True, text=True, env=full_env, timeout=600, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(params=["embedded", "postgres"])
def backend_env(request, tmp_path) -> dict[str, str]:
    if request.param == "embedded":
        return {}
    dsn, schema = request.getfixturevalue("postgres_schema")
    config = tmp_path / f"pg_{schema}.toml"
    config.write_text(f'[storage]\nbackend = "postgres"\npostgres_dsn = "{dsn}"\npostgres_schema = "{schema}"\n')
    return {"AUTOTRADER_CONFIG": str(config)}


def test_data_list_shows_bundled_btc_hourly_with_gaps(backend_env):
    result = run_cli("data", "list", env=backend_env)
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "BTCUSDT" in ln and " 1h " in ln)
    # the bundled 2017-2019 history and the 2020-2024 file make one series
    assert "2017-08-17 04:00" in line
    assert "2024-12-31 23:00" in line
    assert "64,523" in line
    assert "28 (129)" in line  # gaps (missing bars)


def test_data_import_foreign_parquet_reads_back_identical(backend_env, tmp_path):
    source = read_parquet_candles(bundled_files()[SeriesKey.of("binance", "ADAUSDT", "1h")])
    path = tmp_path / "foreign.parquet"
    pd.DataFrame(source.columns()).to_parquet(path)
    result = run_cli(
        "data", "import", str(path), "--exchange", "kraken", "--symbol", "ADAUSD", "--timeframe", "1h",
        env=backend_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from autotrader.adapters.storage import open_store
    from autotrader.config import load_settings

    env = {**os.environ, **backend_env}
    store = open_store(load_settings(env=env))
    try:
        back = store.read(SeriesKey.of("kraken", "ADAUSD", "1h"))
    finally:
        store.close()
    for name, column in source.columns().items():
        assert np.array_equal(getattr(back, name), column), name


@pytest.mark.parametrize(
    ("defect", "expected"),
    [("nan", "row 3"), ("duplicate", "row 4"), ("unsorted", "row 4")],
)
def test_data_import_bad_row_exits_nonzero_names_row_and_changes_nothing(backend_env, tmp_path, defect, expected):
    ts = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000) + 3_600_000 * np.arange(6)
    frame = pd.DataFrame({"ts": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0})
    if defect == "nan":
        frame.loc[2, "close"] = np.nan
    elif defect == "duplicate":
        frame.loc[3, "ts"] = frame.loc[2, "ts"]
    else:
        frame.loc[3, "ts"], frame.loc[2, "ts"] = frame.loc[2, "ts"], frame.loc[3, "ts"]
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    before = run_cli("data", "list", env=backend_env).stdout
    result = run_cli(
        "data", "import", str(path), "--exchange", "test", "--symbol", "BADUSDT", "--timeframe", "1h", env=backend_env
    )  # fmt: skip
    assert result.returncode != 0
    assert "bad.csv" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert run_cli("data", "list", env=backend_env).stdout == before


def test_data_verify_bundled_data_has_no_hard_errors():
    result = run_cli("data", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No hard errors" in result.stdout


def test_data_resample_to_4h_stores_aggregated_series():
    result = run_cli("data", "resample", "--to", "4h", "--symbol", "BTCUSDT")
    assert result.returncode == 0, result.stderr
    listing = run_cli("data", "list").stdout
    line = next(ln for ln in listing.splitlines() if "BTCUSDT" in ln and " 4h " in ln)
    assert "2017-08-17 04:00" in line


def test_unknown_config_key_is_one_clear_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[storage]\nbackend = "embedded"\ncolour = "blue"\n')
    result = run_cli("--config", str(config), "data", "list")
    assert result.returncode == 2
    assert "storage.colour" in result.stderr
    assert "Traceback" not in result.stderr


# --- import tells the truth: gaps, jumps, vendor layouts, changed bars -------------------------------


def _hourly(n: int, start: str = "2024-03-01") -> pd.DataFrame:
    ts = pd.Timestamp(start, tz="UTC").value // 1_000_000 + 3_600_000 * np.arange(n)
    close = 100.0 + np.arange(n) * 0.25
    return pd.DataFrame(
        {"ts": ts, "open": close - 0.5, "high": close + 1.0, "low": close - 1.0, "close": close, "volume": 5.0}
    )


def _cryptodatadownload(frame: pd.DataFrame, path) -> None:
    """URL line, unix seconds, newest first, per-currency volumes: as CryptoDataDownload publishes."""
    lines = ["https://www.CryptoDataDownload.com", "Unix,Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USD"]
    for row in frame.iloc[::-1].itertuples():
        date = pd.Timestamp(row.ts, unit="ms").strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{row.ts // 1000},{date},BTC/USD,{row.open!r},{row.high!r},{row.low!r},{row.close!r},"
            f"{row.volume!r},{row.volume * row.close!r}"
        )
    path.write_text("\n".join(lines) + "\n")


def _read_back(backend_env, key: SeriesKey):
    from autotrader.adapters.storage import open_store
    from autotrader.config import load_settings

    store = open_store(load_settings(env={**os.environ, **backend_env}))
    try:
        return store.read(key)
    finally:
        store.close()


def test_data_import_cryptodatadownload_csv_exact_with_gaps_and_jumps(backend_env, tmp_path):
    frame = _hourly(48)
    frame.loc[30:, ["open", "high", "low", "close"]] *= 1.5  # one +50 % jump at row 30
    frame = frame.drop(index=[10, 11, 12]).reset_index(drop=True)  # one gap of 3 bars
    path = tmp_path / "Bitstamp_BTCUSD_1h.csv"
    _cryptodatadownload(frame, path)
    result = run_cli(
        "data", "import", str(path), "--exchange", "bitstamp", "--symbol", "BTCUSD", "--timeframe", "1h",
        env=backend_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Imported 45 bars into bitstamp:BTCUSD:1h" in out
    assert "45 new, 0 unchanged, 0 replaced" in out
    assert "rows were newest first: reversed 45 bars" in out
    assert "volume from column 'Volume BTC'" in out
    assert "Gaps: 1 (3 missing bars); largest 3 bars after 2024-03-01 09:00" in out
    assert "Jumps over 30%: 1; largest +50.3% at 2024-03-02 06:00 (107.25 -> 161.25)" in out
    back = _read_back(backend_env, SeriesKey.of("bitstamp", "BTCUSD", "1h"))
    for name in ("ts", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(back, name), frame[name].to_numpy()), name


@pytest.mark.slow
def test_data_import_changed_bars_need_overwrite_and_are_counted(backend_env, tmp_path):
    frame = _hourly(24)
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    args = ("data", "import", str(path), "--exchange", "test", "--symbol", "CHGUSDT", "--timeframe", "1h")
    assert run_cli(*args, env=backend_env).returncode == 0
    again = run_cli(*args, env=backend_env)
    assert "0 new, 24 unchanged, 0 replaced" in again.stdout, again.stderr
    doubled = frame.copy()
    doubled.loc[5:14, ["open", "high", "low", "close"]] *= 2  # 10 bars change
    doubled.to_csv(path, index=False)
    refused = run_cli(*args, env=backend_env)
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [
        "error: 10 of the file's 24 bars differ from those stored in test:CHGUSDT:1h (first 2024-03-01 05:00: "
        "open 100.75 -> 201.5, high 102.25 -> 204.5, low 100.25 -> 200.5, close 101.25 -> 202.5); nothing imported: "
        "re-run with --overwrite to replace them"
    ]
    key = SeriesKey.of("test", "CHGUSDT", "1h")
    assert np.array_equal(_read_back(backend_env, key).close, frame["close"].to_numpy())
    replaced = run_cli(*args, "--overwrite", env=backend_env)
    assert replaced.returncode == 0, replaced.stderr
    assert "0 new, 14 unchanged, 10 replaced" in replaced.stdout
    assert np.array_equal(_read_back(backend_env, key).close, doubled["close"].to_numpy())


def test_data_import_column_mapping_and_skip_rows(tmp_path):
    frame = _hourly(6).rename(columns={"ts": "Zeit", "close": "Schluss", "volume": "Menge"})
    path = tmp_path / "export.csv"
    path.write_text("Export of open/high/low/close, volume\n\n" + frame.to_csv(index=False))
    result = run_cli(
        "data", "import", str(path), "--exchange", "test", "--symbol", "MAPUSDT", "--timeframe", "1h",
        "--skip-rows", "2", "--columns", "ts=Zeit,close=Schluss,volume=Menge",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Imported 6 bars into test:MAPUSDT:1h" in result.stdout


def test_data_import_truncated_gzip_one_line(tmp_path):
    import gzip

    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(_hourly(500).to_csv(index=False).encode())[:-100])
    result = run_cli("data", "import", str(path), "--exchange", "test", "--symbol", "CUTUSDT", "--timeframe", "1h")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: cut.csv.gz: cannot read as CSV: the file is truncated")


def test_data_verify_all_lists_every_gap_of_bundled_btc():
    args = ("data", "verify", "--exchange", "binance", "--symbol", "BTCUSDT", "--timeframe", "1h")
    short = run_cli(*args)
    assert short.returncode == 0, short.stderr
    assert "'data verify --all' lists each" in short.stdout
    full = run_cli(*args, "--all")
    assert full.returncode == 0, full.stderr
    gap_lines = [ln for ln in full.stdout.splitlines() if ln.split()[:2] == ["warning", "gap"]]
    assert len(gap_lines) == 28  # as `data list` reports: 28 gaps (129 bars), 2017-2024
    assert sum(int(ln.split("gap of ")[1].split()[0]) for ln in gap_lines) == 129


def test_data_symbol_on_other_exchange_is_suggested(tmp_path):
    path = tmp_path / "kraken.csv"
    _hourly(24).to_csv(path, index=False)
    imported = run_cli("data", "import", str(path), "--exchange", "kraken", "--symbol", "BTCUSD", "--timeframe", "1h")
    assert imported.returncode == 0, imported.stderr
    backtest = run_cli(
        "backtest", "--symbols", "BTCUSD", "--strategy", "buy_and_hold", "--period", "2024-03-01:2024-03-02"
    )  # fmt: skip
    assert backtest.returncode != 0
    assert "BTCUSD 1h is stored under --exchange kraken" in backtest.stderr
    verify = run_cli("data", "verify", "--symbol", "BTCUSD", "--exchange", "binance")
    assert "BTCUSD 1h is stored under --exchange kraken" in verify.stderr
