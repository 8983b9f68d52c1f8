"""Fuzz every input boundary: ``python -m bench fuzz [--inputs N] [--seed S] [--target NAME ...]``.

Runs at least 100,000 generated inputs (default) through each target of ``tests/fuzz/fuzz_targets.py``
(signal messages and the robot's intake, candle imports in CSV/Parquet/JSON/gzip, backtest JSON read by
``analyze``, Bybit responses, configuration) and prints, per target, inputs tried, accepted, rejected
and unhandled, with up to five examples of unhandled ones. Exit status 1 if any target has an
unhandled input (an exception of an unexpected type, or stored state changed by a rejected input).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "fuzz"))

import fuzz_targets  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per target (default 100,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input generator")
    parser.add_argument("--target", action="append", choices=sorted(fuzz_targets.TARGETS), help="only these")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # rejected inputs are logged by design: millions of lines otherwise
    warnings.simplefilter("ignore")
    names = args.target or list(fuzz_targets.TARGETS)
    print(f"fuzz: {args.inputs:,} inputs per target, seed {args.seed}", flush=True)
    bad = []
    for name in names:
        started = time.perf_counter()
        tally = fuzz_targets.fuzz(fuzz_targets.TARGETS[name](), args.inputs, seed=args.seed)
        took = time.perf_counter() - started
        print(f"{tally.line()}  ({took:.0f} s, {tally.tried / took:,.0f}/s)", flush=True)
        for example in tally.examples:
            print(f"    unhandled: {example}", flush=True)
        if tally.unhandled:
            bad.append(name)
    print(f"fuzz: {'no unhandled input' if not bad else 'unhandled inputs in ' + ', '.join(bad)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
