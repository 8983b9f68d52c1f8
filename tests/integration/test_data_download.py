"""``data download`` against exchange-sim: stored candles equal the served ones; resumes without gaps."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
from autotrader.adapters.exchange.download import DownloadProgress, download_candles
from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.domain.candles import COLUMNS, SeriesKey
from autotrader.exchange_sim import SimConfig, SimServer, sim_candles_from_store, synthetic_candles

MINUTE = 60_000
SOURCE_KEY = SeriesKey.of("binance", "BTCUSDT", "1m")
BARS = 4_500


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The candles the simulator replays, read from a candle store like the CLI does."""
    store = ParquetCandleStore(tmp_path_factory.mktemp("source"))
    store.upsert(SOURCE_KEY, synthetic_candles(BARS, MINUTE, seed=5))
    store.upsert(SeriesKey.of("binance", "ETHUSDT", "1m"), synthetic_candles(BARS, MINUTE, seed=6, start_price=2500))
    candles = sim_candles_from_store(store, "binance", "1m")
    store.close()
    return candles


def start_sim(candles, **options):
    btc = candles["BTCUSDT"]
    # the market clock stands 30 s into the bar after the last stored one: every stored bar is closed
    config = SimConfig(
        candles=candles, timeframe="1m", speed=0.0, admin=True, start_ms=int(btc.ts[-1]) + MINUTE + 30_000, **options
    )
    return SimServer(config).start()


@pytest.fixture(scope="module")
def sim(source):
    with start_sim(source) as server:
        yield server


def download(sim_url, store, start_ms, end_ms, progress=None, page_bars=1000, **options):
    async def go():
        async with BybitExchange(BybitConfig.custom(sim_url, **options)) as ex:
            return await download_candles(
                ex,
                store,
                SeriesKey.of("bybit", "BTCUSDT", "1m"),
                "spot",
                start_ms,
                end_ms,
                page_bars=page_bars,
                progress=progress,
            )

    return asyncio.run(go())


def assert_identical(stored, served):
    for column in COLUMNS:
        assert np.array_equal(getattr(stored, column), getattr(served, column)), column


def test_download_stores_exactly_the_served_candles(sim, source, tmp_path):
    served = source["BTCUSDT"]
    store = ParquetCandleStore(tmp_path)
    seen: list[DownloadProgress] = []
    result = download(sim.url, store, int(served.ts[0]), int(served.ts[-1]) + 10 * MINUTE, progress=seen.append)
    stored = store.read(SeriesKey.of("bybit", "BTCUSDT", "1m"))
    assert_identical(stored, served)
    assert result.bars_written == BARS and result.requests == 1 + 5  # latest-bar probe + 5 pages of 1000
    assert [p.bars_done for p in seen] == [1000, 2000, 3000, 4000, 4500]
    assert seen[-1].bars_total == BARS


def test_interrupted_download_resumes_without_gaps_or_duplicates(sim, source, tmp_path):
    served = source["BTCUSDT"]
    store = ParquetCandleStore(tmp_path)
    key = SeriesKey.of("bybit", "BTCUSDT", "1m")

    def stop_after_two_pages(p: DownloadProgress) -> None:
        if p.bars_done >= 2 * 700:
            raise Interrupted

    with pytest.raises(Interrupted):
        download(sim.url, store, int(served.ts[0]), int(served.ts[-1]), progress=stop_after_two_pages, page_bars=700)
    partial = store.read(key)
    assert len(partial) == 1400
    resumed = download(sim.url, store, int(served.ts[0]), int(served.ts[-1]), page_bars=700)
    assert resumed.resumed_from == int(partial.ts[-1]) + MINUTE
    assert resumed.bars_written == BARS - 1400
    [coverage] = store.coverage(key)
    assert coverage.gaps == () and coverage.rows == BARS
    assert_identical(store.read(key), served)
    again = download(sim.url, store, int(served.ts[0]), int(served.ts[-1]))
    assert again.up_to_date


def test_download_survives_a_server_page_cap_and_transient_errors(source, tmp_path):
    served = source["BTCUSDT"]
    with start_sim(source, kline_max_limit=150) as capped:  # the server returns at most 150 bars a page
        capped.admin.fault("http_error", path="/v5/market/kline", count=2, status=502)
        store = ParquetCandleStore(tmp_path)
        result = download(capped.url, store, int(served.ts[0]), int(served.ts[-1]))
    assert_identical(store.read(SeriesKey.of("bybit", "BTCUSDT", "1m")), served)
    assert result.requests > 1 + 5  # the parts the cap left out were asked for again


def test_download_clips_to_closed_bars_and_the_requested_period(sim, source, tmp_path):
    served = source["BTCUSDT"]
    store = ParquetCandleStore(tmp_path)
    start, end = int(served.ts[100]) + 1, int(served.ts[299])
    download(sim.url, store, start, end)
    stored = store.read(SeriesKey.of("bybit", "BTCUSDT", "1m"))
    assert int(stored.ts[0]) == int(served.ts[101]) and int(stored.ts[-1]) == end
    assert len(stored) == 199


def test_cli_download_writes_to_the_store_and_reports(sim, source, tmp_path, isolated_home):
    from autotrader.cli import app

    config = tmp_path / "config.toml"
    config.write_text("[storage]\nseed_bundled = false\n")
    served = source["ETHUSDT"]
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "data",
            "download",
            "--symbols",
            "ETHUSDT",
            "--timeframe",
            "1m",
            "--period",
            "2024-01-01:2024-01-04",
            "--exchange-url",
            sim.url,
            "--config",
            str(config),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bybit:ETHUSDT:1m: 4,500 bars" in result.output
    store = ParquetCandleStore(isolated_home / "data")
    assert_identical(store.read(SeriesKey.of("bybit", "ETHUSDT", "1m")), served)
    again = runner.invoke(
        app,
        [
            "data",
            "download",
            "--symbols",
            "ETHUSDT",
            "--timeframe",
            "1m",
            "--period",
            "2024-01-01:2024-01-04",
            "--exchange-url",
            sim.url,
            "--config",
            str(config),
        ],
    )
    assert "already up to date" in again.output
    assert "progress: downloaded bybit:ETHUSDT:1m" in again.output  # not a terminal: plain progress lines


def test_cli_unknown_symbol_is_one_clear_line(sim, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[storage]\nseed_bundled = false\n")
    env = {**os.environ, "AUTOTRADER_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "autotrader",
            "data",
            "download",
            "--symbols",
            "BTCUSTD",
            "--timeframe",
            "1m",
            "--period",
            "2024-01-01:2024-01-02",
            "--exchange-url",
            sim.url,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown symbol 'BTCUSTD' on Bybit spot; did you mean BTCUSDT?"
    assert "Traceback" not in proc.stderr + proc.stdout
