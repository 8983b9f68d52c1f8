"""Monte Carlo benchmark: 10,000 simulations of 1,000 trades against the goal of < 1 s.

Run ``python bench/bench_validation.py`` (``--repeats N`` for more samples, ``--simulations``
and ``--trades`` to change the workload). Each figure is the median wall time of warm runs
after one untimed warm-up (which also compiles the numba kernels), with one thread and with
every CPU. The daily block bootstrap of five years of days is timed too, for information.
Exit status 1 if the trade permutation or the trade bootstrap misses the goal with every CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from autotrader.validation import montecarlo as mc

GOAL_S = 1.0


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``action`` over ``repeats`` runs after one untimed warm-up."""
    action()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--simulations", type=int, default=mc.DEFAULT_SIMULATIONS)
    parser.add_argument("--trades", type=int, default=1000)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(2024)
    trades = np.expm1(rng.normal(0.001, 0.02, args.trades))
    days = np.expm1(rng.normal(0.0005, 0.03, 5 * 365 + 1))
    cpus = os.cpu_count() or 1
    cases = (
        (
            "trade permutation",
            lambda w: mc.permute_trades(trades, n_simulations=args.simulations, workers=w),
            True,
        ),
        (
            "trade bootstrap",
            lambda w: mc.bootstrap_trades(trades, n_simulations=args.simulations, workers=w),
            True,
        ),
        (
            f"daily block bootstrap ({days.size} days)",
            lambda w: mc.bootstrap_daily_returns(days, n_simulations=args.simulations, workers=w),
            False,
        ),
    )
    workload = f"{args.simulations:,} simulations of {args.trades:,} trades"
    print(f"Monte Carlo: {workload}, goal < {GOAL_S:g} s ({cpus} CPUs)")
    print(f"{'method':<36} {'1 thread':>10} {f'{cpus} threads':>11}  verdict")
    missed = False
    for name, run, judged in cases:
        one = median_seconds(lambda run=run: run(1), args.repeats)
        all_cpus = median_seconds(lambda run=run: run(None), args.repeats)
        verdict = ("PASS" if all_cpus < GOAL_S else "FAIL") if judged else "(info)"
        missed |= judged and all_cpus >= GOAL_S
        print(f"{name:<36} {one:>9.3f}s {all_cpus:>10.3f}s  {verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
