"""Candle-store benchmark: measured figures against AutoTrader's storage and start-up goals.

Run ``python bench/bench_store.py`` (``--repeats N`` for more samples). It uses a temporary folder
for the embedded store and a temporary schema in PostgreSQL (``AUTOTRADER_BENCH_POSTGRES_DSN``,
default ``postgresql://postgres@127.0.0.1:5432/test``), both removed afterwards. Every figure is
the median of warm runs (one untimed warm-up first). Exit status 1 if any goal is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql

from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.adapters.storage.postgres_store import PostgresCandleStore
from autotrader.domain.candles import Candles, SeriesKey
from autotrader.domain.errors import StorageError
from autotrader.marketdata.bundled import bundled_dir, read_parquet_candles
from autotrader.marketdata.store import CandleStore, read_aligned

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
EXCHANGE = "binance"
READ_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "SYNUSDT")
IMPORT_ROWS = 1_000_000


@dataclass(frozen=True)
class Result:
    measure: str
    workload: str
    seconds: float | None  # None: could not be measured
    goal_s: float
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.seconds is None:
            return "n/a"
        return "PASS" if self.seconds < self.goal_s else "FAIL"


def median_seconds(action: Callable[[], object], repeats: int, before: Callable[[], object] | None = None) -> float:
    """Median wall time of ``action`` over ``repeats`` runs after one untimed warm-up (``before`` untimed)."""
    samples: list[float] = []
    for i in range(repeats + 1):
        if before is not None:
            before()
        start = time.perf_counter()
        action()
        elapsed = time.perf_counter() - start
        if i:
            samples.append(elapsed)
    return statistics.median(samples)


def read_workload() -> dict[SeriesKey, Candles]:
    """Five symbols x five years of hourly bars: the bundled BTC/ETH/BNB/ADA plus a synthetic fifth."""
    series = {
        SeriesKey.of(EXCHANGE, s, "1h"): read_parquet_candles(bundled_dir() / f"{EXCHANGE}_{s}_1h.parquet")
        for s in READ_SYMBOLS[:-1]
    }
    btc = series[SeriesKey.of(EXCHANGE, "BTCUSDT", "1h")]
    series[SeriesKey.of(EXCHANGE, READ_SYMBOLS[-1], "1h")] = Candles(
        btc.ts, btc.open * 0.5, btc.high * 0.5, btc.low * 0.5, btc.close * 0.5, btc.volume * 3.0
    )
    return series


def synthetic_minutes(n: int, seed: int = 7) -> Candles:
    """``n`` one-minute bars of a random walk starting 2020-01-01."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0.0, 3e-4, n))
    return Candles(
        ts=1_577_836_800_000 + np.arange(n, dtype=np.int64) * 60_000,
        open=open_,
        high=np.maximum(open_, close) * (1.0 + spread),
        low=np.minimum(open_, close) * (1.0 - spread),
        close=close,
        volume=rng.gamma(2.0, 5.0, n),
    )


def bench_backend(name: str, store: CandleStore, goals: tuple[float, float], repeats: int) -> list[Result]:
    read_goal, import_goal = goals
    series = read_workload()
    for key, candles in series.items():
        store.upsert(key, candles)
    rows = sum(len(c) for c in series.values())
    read_s = median_seconds(lambda: read_aligned(store, EXCHANGE, READ_SYMBOLS, "1h"), repeats)

    # Each run imports a new series (as a real import does); re-importing into a just-deleted
    # series would also time PostgreSQL stepping over the dead index entries of the previous run.
    # "bench" sorts before "binance": the rows land mid-index, the slower (realistic) case.
    minutes = synthetic_minutes(IMPORT_ROWS)
    import_keys = iter(SeriesKey.of("bench", f"SYN{i}USDT", "1m") for i in range(repeats + 2))
    imported: list[SeriesKey] = []

    def import_once() -> None:
        imported.append(next(import_keys))
        store.upsert(imported[-1], minutes)

    import_s = median_seconds(import_once, max(repeats - 1, 1))
    for key in imported:
        store.delete(key)
    return [
        Result(f"read_aligned, {name}", f"5 symbols x 1h, {rows:,} rows", read_s, read_goal),
        Result(f"import (upsert), {name}", f"{IMPORT_ROWS:,} rows of 1m bars", import_s, import_goal),
    ]


def bench_embedded(repeats: int) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="autotrader-bench-") as tmp:
        store = ParquetCandleStore(Path(tmp) / "store")
        try:
            return bench_backend("embedded", store, (0.2, 5.0), repeats)
        finally:
            store.close()


def bench_postgres(dsn: str, repeats: int) -> list[Result]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    try:
        store = PostgresCandleStore(dsn, schema=schema)
    except StorageError as e:
        return [
            Result("read_aligned, postgres", "5 symbols x 1h", None, 2.0, str(e)),
            Result("import (upsert), postgres", f"{IMPORT_ROWS:,} rows of 1m bars", None, 15.0, str(e)),
        ]
    try:
        return bench_backend("postgres", store, (2.0, 15.0), repeats)
    finally:
        store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def bench_cli(repeats: int) -> Result:
    """Wall time of ``autotrader --help`` in a fresh process (interpreter start-up included)."""
    measure, workload, goal = "CLI start-up", "autotrader --help", 0.5
    if importlib.util.find_spec("autotrader.cli") is None:
        return Result(measure, workload, None, goal, "the autotrader.cli package does not exist yet")
    script = Path(sys.executable).with_name("autotrader")
    command = [str(script), "--help"] if script.exists() else [sys.executable, "-m", "autotrader", "--help"]
    env = {**os.environ, "AUTOTRADER_HOME": tempfile.gettempdir() + "/autotrader-bench-home"}

    def run() -> None:
        done = subprocess.run(command, capture_output=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"exit {done.returncode}: {done.stderr.decode(errors='replace').strip()[-200:]}")

    try:
        return Result(measure, workload, median_seconds(run, max(repeats, 5)), goal)
    except RuntimeError as e:
        return Result(measure, workload, None, goal, f"`autotrader --help` failed ({e})")


def render(results: list[Result]) -> str:
    header = ("measure", "workload", "median", "goal", "result")
    rows = [
        (
            r.measure,
            r.workload,
            "n/a" if r.seconds is None else f"{r.seconds:.3f} s",
            f"< {r.goal_s:g} s",
            r.verdict,
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    out += [f"note: {r.measure}: {r.note}" for r in results if r.note]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table; 0 if every goal is met, else 1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (median reported)")
    parser.add_argument(
        "--postgres-dsn",
        default=os.environ.get("AUTOTRADER_BENCH_POSTGRES_DSN", DEFAULT_DSN),
        help="server to use",
    )
    args = parser.parse_args(argv)
    repeats = max(args.repeats, 1)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    results = [*bench_embedded(repeats), *bench_postgres(args.postgres_dsn, repeats), bench_cli(repeats)]
    print(render(results))
    if hasattr(os, "getloadavg"):  # figures on a busy machine are not comparable with a quiet one
        print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")
    return 1 if any(r.verdict == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
