"""Walk-forward benchmark: sma_cross, 100 Optuna trials per window, 5 years of hourly BTC, < 2 min on 2 cores.

Run ``python bench/bench_walkforward.py`` (``--trials``, ``--is-days``, ``--oos-days`` and ``--workers``
change the workload; ``--skip-serial`` times the pool only). Data: the bundled Binance BTCUSDT 1h
candles, 2020-01-01 .. 2024-12-31 (43,816 bars), read straight from the Parquet file. Search space:
``sma_cross``'s own parameter ranges (fast 1..10,000, slow 2..10,000 bars, log scale), objective
Sharpe, at least 10 in-sample trades. Windows: rolling, 365 in-sample / 90 out-of-sample days (16
windows, so 1,600 trials).

Timed: ``run_walk_forward`` end to end, in this process (``workers=1``) and on a local process pool
(``--workers``, default every CPU), alternately ``--repeats`` times (median reported), after one
small untimed run that loads the numba kernels. Printed: wall times, trials per second, the pool's
speed-up over one process, the CPU seconds each mode used and how many cores the pool actually
got, and whether both gave identical results (they must). The machine's load
average is printed too, with the speed-up a trivially parallel job gets from the same pool at the
same moment: other processes competing for the cores slow both modes and cap the speed-up. Exit
status 1 if the pool misses the goal or the results differ.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from autotrader.backtest.runner import BacktestConfig
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import SeriesKey, parse_date_ms
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles
from autotrader.validation.walkforward import WalkForwardResult, run_walk_forward

GOAL_S = 120.0
START, END = "2020-01-01", "2024-12-31"


def load_btc() -> AlignedCandles:
    """Five years of bundled hourly BTCUSDT candles."""
    path = bundled_files()[SeriesKey.of("binance", "BTCUSDT", "1h")]
    candles = read_parquet_candles(path).slice_range(parse_date_ms(START), parse_date_ms(END) + 86_400_000 - 1)
    return align({"BTCUSDT": candles})


def timed(
    config: BacktestConfig, data: AlignedCandles, workers: int, args: argparse.Namespace, cpu: list[float]
) -> tuple[float, WalkForwardResult]:
    """Wall time of one run; appends the CPU seconds it used (this process and its finished workers)."""
    before = _cpu_s()
    started = time.perf_counter()
    result = run_walk_forward(
        config, data, is_days=args.is_days, oos_days=args.oos_days, n_trials=args.trials, workers=workers
    )
    wall = time.perf_counter() - started
    cpu.append(_cpu_s() - before)
    return wall, result


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def ideal_speedup(workers: int, tasks: int = 8, n: int = 2_000_000) -> float:
    """What a trivially parallel pure-Python job gains from the same pool on this machine, now."""
    started = time.perf_counter()
    for _ in range(tasks):
        _spin(n)
    serial_s = time.perf_counter() - started
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_spin, [n] * tasks))
    return serial_s / (time.perf_counter() - started)


def _runs(times: list[float]) -> str:
    return "runs: " + ", ".join(f"{t:.1f}" for t in times) + " s"


def _load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min) / {five:.1f} (5 min)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--is-days", type=float, default=365.0)
    parser.add_argument("--oos-days", type=float, default=90.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each mode (median reported)")
    parser.add_argument("--skip-serial", action="store_true", help="time the process pool only")
    args = parser.parse_args(argv)

    config = BacktestConfig(symbols=("BTCUSDT",), strategy="sma_cross", start=START, end=END)
    data = load_btc()
    print(f"data: BTCUSDT 1h {START} .. {END}, {data.n_bars:,} bars; CPUs: {os.cpu_count()}; {_load_text()}")
    warm = BacktestConfig(symbols=("BTCUSDT",), strategy="sma_cross", start="2024-01-01", end=END)
    space = {"fast": (5.0, 20.0), "slow": (50.0, 100.0)}
    run_walk_forward(warm, data, is_days=60, oos_days=30, n_trials=3, workers=1, search_space_overrides=space)

    serial_times: list[float] = []
    pool_times: list[float] = []
    serial_cpu: list[float] = []
    pool_cpu: list[float] = []
    serial = pooled = None
    for _ in range(args.repeats):  # alternate, so a burst of load on the machine hits both
        if not args.skip_serial:
            seconds, serial = timed(config, data, 1, args, serial_cpu)
            serial_times.append(seconds)
        seconds, pooled = timed(config, data, args.workers, args, pool_cpu)
        pool_times.append(seconds)
    assert pooled is not None
    serial_s = statistics.median(serial_times) if serial_times else float("nan")
    pool_s = statistics.median(pool_times)
    windows, trials = len(pooled.windows), len(pooled.windows) * args.trials
    print(f"walk-forward: {windows} windows x {args.trials} trials = {trials:,} trials, objective sharpe")
    if serial is not None:
        print(
            f"  one process               {serial_s:6.1f} s  ({trials / serial_s:6.1f} trials/s)  {_runs(serial_times)}"
        )
    print(
        f"  {pooled.execution:<25} {pool_s:6.1f} s  ({trials / pool_s:6.1f} trials/s)  {_runs(pool_times)}  "
        f"goal < {GOAL_S:.0f} s"
    )
    status = 0
    if serial is not None:
        same = serial.to_dict(include_returns=True) == pooled.to_dict(include_returns=True)
        print(f"  speed-up of the pool over one process: {serial_s / pool_s:.2f}x; identical results: {same}")
        cores = [c / t for c, t in zip(pool_cpu, pool_times, strict=True)]
        print(
            f"  CPU seconds per run: one process {statistics.median(serial_cpu):.1f}, pool "
            f"{statistics.median(pool_cpu):.1f}; cores the pool got: {statistics.median(cores):.2f} of {args.workers}"
        )
        print(
            f"  (a trivially parallel job gains {ideal_speedup(args.workers):.2f}x from {args.workers} "
            "workers here, now)"
        )
        status |= int(not same)
    print(
        f"  walk-forward efficiency {pooled.efficiency:.2f}, OOS Sharpe {pooled.oos_summary['sharpe_ratio']:.2f}, "
        f"{pooled.n_trials_run:,} valid trials ({pooled.n_invalid_trials:,} rejected: fast >= slow)"
    )
    print(f"  {_load_text()} (other processes on the machine slow both runs and cap the speed-up)")
    if pool_s >= GOAL_S:
        print(f"GOAL MISSED: {pool_s:.1f} s >= {GOAL_S:.0f} s")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
