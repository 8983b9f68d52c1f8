"""Run the benchmark modules: ``python -m bench [NAME ...] [--quick] [--repeats N]``.

``python -m bench strategies`` runs only ``bench/bench_strategies.py`` (any module by the name after
``bench_``); without names every module runs except the on-demand ones (``strategies``: the league
table of walk-forward strategies, many minutes).

Each ``bench/bench_*.py`` runs as its own script in a fresh process (so one module's memory and
imports cannot skew another's figures), in name order; ``--repeats N`` goes to the modules that
take it and ``--quick`` to those with a quick mode (the backtest bench). A module that fails is reported and the
others still run. Exit status 1 if any module misses a goal or fails.

``python -m bench fuzz [--inputs N] [--seed S] [--target NAME]`` runs ``bench/fuzz.py`` instead: at least
100,000 inputs per fuzz target, with tried / accepted / rejected / unhandled per target.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ON_DEMAND = ("strategies",)  # run only when named


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["fuzz"]:
        return subprocess.run([sys.executable, str(HERE / "fuzz.py"), *argv[1:]], check=False).returncode
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads where a module supports it")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs per figure (median reported)")
    parser.add_argument("names", nargs="*", help="modules to run, e.g. strategies (default: all but on-demand ones)")
    args, extra = parser.parse_known_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    known = {s.stem.removeprefix("bench_") for s in scripts}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; known: {', '.join(sorted(known))}")
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    else:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") not in ON_DEMAND]
    failed = []
    for script in scripts:
        source = script.read_text()
        module_args = ["--repeats", str(args.repeats)] if '"--repeats"' in source else []
        if args.quick and '"--quick"' in source:
            module_args.append("--quick")
        print(f"\n===== {script.stem} {' '.join(module_args)} =====", flush=True)
        done = subprocess.run([sys.executable, str(script), *module_args, *extra], check=False)
        if done.returncode != 0:
            failed.append(f"{script.stem} (exit {done.returncode})")
    print(
        f"\n===== summary: {'every module met its goals' if not failed else 'missed or failed: ' + ', '.join(failed)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
