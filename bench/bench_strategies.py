"""League table: every built-in strategy out of sample 2021-2024, parameters chosen by walk-forward only.

Run ``python -m bench strategies`` (or ``python bench/bench_strategies.py``; ``--trials``,
``--workers``, ``--symbols``, ``--strategies`` change the workload). Data: the bundled Binance 1h
candles of BTC, ETH, BNB, ADA and STRK, with the bundled 2017-2019 history as warm-up and training data.

For ``ml``, ``sma_cross``, ``donchian_breakout`` and ``rsi_reversion``: a rolling walk-forward
(``run_walk_forward``) over 2020-01-01 .. 2024-12-31 with 366 in-sample days and 16 out-of-sample
windows of 1461/16 days, so that the out-of-sample windows tile 2021-01-01 .. 2024-12-31 exactly. Each
window's parameters are the best of ``--trials`` Optuna trials (objective: in-sample Sharpe, at least
10 trades) on the 366 days before it: no parameter is ever chosen on the data it is scored on. ``ml``
searches only its trading rule (``threshold``, ``min_edge``) over walk-forward model forecasts fitted
once (each forecast uses only labels known before its bar). The reported record is the stitched
out-of-sample equity, net of fees (Bybit spot 0.1 % a side) and 2 bps slippage a fill, under the medium
risk level (5 % of equity a position, 2 % stop) on one portfolio of all symbols.

Buy & hold: the equal-weight basket of the same symbols, each bought at its first 2021 open (its
listing, for STRK) and valued at the last close, fully invested, with a fee and slippage on the buy and
on the final sale.

Columns: total return; Sharpe (daily returns, 365-day year); deflated Sharpe (Bailey & López de Prado)
for having picked the best of the table's rows: the probability that the row's true Sharpe exceeds
the expected best Sharpe of that many unskilled strategies with the rows' Sharpe variance; max
drawdown; trades; costs (fees + estimated slippage) as a share of gross profit (the winning trades'
profit before costs); win rate (trades with a net profit); accuracy (``ml`` only: share of traded
signals whose direction was right over the forecast horizon).

Exit status 1 when ``ml`` misses the goal (a positive return and a Sharpe above the best rule-based
strategy's); the closing line names the best performer either way.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from autotrader.analytics import metrics
from autotrader.backtest.runner import BacktestConfig, equal_weight_buy_and_hold
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles, SeriesKey, parse_date_ms
from autotrader.marketdata.bundled import bundled_files, bundled_history, read_parquet_candles
from autotrader.validation.overfitting import deflated_sharpe_ratio
from autotrader.validation.walkforward import WalkForwardResult, run_walk_forward

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "STRKUSDT")
STRATEGIES = ("ml", "sma_cross", "donchian_breakout", "rsi_reversion")
START, OOS_START, END = "2020-01-01", "2021-01-01", "2024-12-31"
IS_DAYS = 366.0  # 2020 is a leap year: the first OOS window starts on 2021-01-01
OOS_DAYS = 1461.0 / 16  # 16 windows tile 2021-01-01 .. 2024-12-31 exactly


@dataclass
class Row:
    name: str
    total_return: float
    sharpe: float
    max_drawdown: float
    trades: int
    costs_share: float
    win_rate: float
    accuracy: float | None
    daily_returns: np.ndarray
    seconds: float
    dsr: float = math.nan


def load(symbols: tuple[str, ...]) -> AlignedCandles:
    """Bundled 1h candles, pre-2020 history first, up to the end of 2024."""
    series: dict[str, Candles] = {}
    end_ms = parse_date_ms(END) + 86_400_000 - 1
    for symbol in symbols:
        key = SeriesKey.of("binance", symbol, "1h")
        parts = [read_parquet_candles(p) for p in (bundled_history().get(key), bundled_files()[key]) if p is not None]
        columns = {
            n: np.concatenate([getattr(c, n) for c in parts]) for n in ("ts", "open", "high", "low", "close", "volume")
        }
        series[symbol] = Candles.from_columns(columns).slice_range(0, end_ms)
    return align(series)


def _costs_share(trades: np.ndarray, slippage: float) -> float:
    slip = trades["qty"] * (trades["entry_price"] + trades["exit_price"]) * slippage
    costs = trades["entry_fee"] + trades["exit_fee"] + slip
    gross = trades["pnl"] + costs
    profit = float(np.sum(gross[gross > 0]))
    return float(np.sum(costs)) / profit if profit > 0 else math.nan


def walk_forward_row(name: str, data: AlignedCandles, args: argparse.Namespace) -> tuple[Row, WalkForwardResult]:
    config = BacktestConfig(symbols=tuple(data.symbols), start=START, end=END, strategy=name)
    started = time.perf_counter()
    wf = run_walk_forward(
        config, data, is_days=IS_DAYS, oos_days=OOS_DAYS, n_trials=args.trials, workers=args.workers,
        seed=args.seed, status=lambda text: print(f"  {text}", flush=True),
        progress=lambda w, done, total: print(
            f"  {name}: window {done}/{total} (OOS {w.window.oos_label}) {time.perf_counter() - started:.0f} s",
            flush=True,
        ),
    )  # fmt: skip
    seconds = time.perf_counter() - started
    trades = np.concatenate([w.oos_trades for w in wf.windows])
    s = wf.oos_summary
    row = Row(
        name=name,
        total_return=s["total_return"],
        sharpe=s["sharpe_ratio"],
        max_drawdown=s["max_drawdown"],
        trades=len(trades),
        costs_share=_costs_share(trades, config.slippage_bps / 10_000),
        win_rate=float(np.mean(trades["pnl"] > 0)) if len(trades) else math.nan,
        accuracy=wf.oos_accuracy,
        daily_returns=wf.oos_daily_returns(),
        seconds=seconds,
    )
    return row, wf


def buy_and_hold_row(data: AlignedCandles) -> Row:
    config = BacktestConfig(symbols=tuple(data.symbols), start=OOS_START, end=END)
    lo = int(np.searchsorted(data.ts, parse_date_ms(OOS_START)))
    oos = AlignedCandles(
        data.symbols, *(getattr(data, n)[lo:] for n in ("ts", "open", "high", "low", "close", "volume", "present"))
    )
    cost = config.fee_rate + config.slippage_bps / 10_000
    capital = config.initial_capital
    equity = equal_weight_buy_and_hold(oos, capital * (1 - cost))  # the buy's costs come off the start
    equity = np.concatenate(([capital], equity))
    equity[-1] *= 1 - cost  # and the final sale's
    ts = np.concatenate((oos.ts[:1], oos.ts))
    s = metrics.summary(ts, equity, np.empty(0))
    m = len(data.symbols)
    gross_profit = float(equity[-1] / (1 - cost) - capital * (1 - cost)) + capital * cost
    costs = capital * cost + equity[-1] / (1 - cost) * cost
    _, day_eq = metrics.daily_equity(ts, equity)
    return Row(
        name="buy & hold",
        total_return=s["total_return"],
        sharpe=s["sharpe_ratio"],
        max_drawdown=s["max_drawdown"],
        trades=m,
        costs_share=costs / gross_profit if gross_profit > 0 else math.nan,
        win_rate=math.nan,
        accuracy=None,
        daily_returns=metrics.daily_returns(day_eq),
        seconds=0.0,
    )


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:+.{digits}f}%"


def _num(x: float, digits: int = 2) -> str:
    return "—" if not math.isfinite(x) else f"{x:.{digits}f}"


def print_table(rows: list[Row]) -> None:
    header = ("strategy", "return", "Sharpe", "DSR", "max DD", "trades", "costs/gross profit", "win rate", "accuracy")
    lines = [
        (r.name, _pct(r.total_return), _num(r.sharpe), _num(r.dsr), _pct(r.max_drawdown), str(r.trades),
         _pct(r.costs_share, 0).lstrip("+"), _pct(r.win_rate, 0).lstrip("+"),
         "—" if r.accuracy is None else _pct(r.accuracy, 1).lstrip("+"))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(line[k]) for line in lines)) for k, h in enumerate(header)]
    print("  ".join(h.ljust(w) if k == 0 else h.rjust(w) for k, (h, w) in enumerate(zip(header, widths, strict=True))))
    for line in lines:
        print(
            "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(line, widths, strict=True)))
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="Optuna trials per walk-forward window")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: every CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--symbols", default=",".join(SYMBOLS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args(argv)
    symbols = tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip())
    data = load(symbols)
    print(
        f"Out of sample {OOS_START} .. {END}, {', '.join(symbols)} 1h, walk-forward {IS_DAYS:g} IS days / "
        f"{OOS_DAYS:g} OOS days, {args.trials} trials per window, net of fees and slippage",
        flush=True,
    )
    rows: list[Row] = []
    for name in (s.strip() for s in args.strategies.split(",") if s.strip()):
        row, wf = walk_forward_row(name, data, args)
        chosen = "; ".join(
            f"w{w.window.index + 1} " + ",".join(f"{k}={v:.3g}" for k, v in w.best_params.items()) for w in wf.windows
        )
        print(f"  {name}: {row.seconds:.0f} s ({wf.execution}); chosen parameters: {chosen}", flush=True)
        rows.append(row)
    rows.append(buy_and_hold_row(data))
    sharpes = np.array([r.sharpe if math.isfinite(r.sharpe) else 0.0 for r in rows])
    for r in rows:
        if r.daily_returns.size > 2 and len(rows) > 1:
            r.dsr = deflated_sharpe_ratio(r.daily_returns, sharpes).dsr
    print()
    print_table(rows)
    print(f"(DSR: deflated for picking the best of these {len(rows)} rows; Sharpe of daily returns, 365-day year.)")
    rules = [r for r in rows if r.name not in ("ml", "buy & hold")]
    best = max(rows, key=lambda r: r.sharpe if math.isfinite(r.sharpe) else -math.inf)
    ml = next((r for r in rows if r.name == "ml"), None)
    if ml is None or not rules:
        print(f"Best performer by Sharpe: {best.name}.")
        return 0
    best_rule = max(rules, key=lambda r: r.sharpe if math.isfinite(r.sharpe) else -math.inf)
    met = ml.total_return > 0 and ml.sharpe > best_rule.sharpe
    print(
        f"Goal (ml positive with a Sharpe above the best rule-based strategy, {best_rule.name} "
        f"{_num(best_rule.sharpe)}): {'MET' if met else 'NOT MET'} (ml {_pct(ml.total_return)}, Sharpe "
        f"{_num(ml.sharpe)}). Best performer by Sharpe: {best.name}."
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
