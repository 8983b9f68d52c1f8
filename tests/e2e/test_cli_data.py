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
    )


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
    assert "28 (129 bars)" in line


def test_data_import_foreign_parquet_reads_back_identical(backend_env, tmp_path):
    source = read_parquet_candles(bundled_files()[SeriesKey.of("binance", "ADAUSDT", "1h")])
    path = tmp_path / "foreign.parquet"
    pd.DataFrame(source.columns()).to_parquet(path)
    result = run_cli(
        "data", "import", str(path), "--exchange", "kraken", "--symbol", "ADAUSD", "--timeframe", "1h",
        env=backend_env,
    )
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
    )
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
